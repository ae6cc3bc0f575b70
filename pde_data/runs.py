"""A training run is a folder (DESIGN.md): ``config.json``, orbax checkpoints,
``metrics.jsonl`` and plots. Re-running the same command on the same folder resumes.

This is the one helper every training loop (operators, pfn, neural_processes) shares:
atomic config and array files, an append-only metrics log, and orbax checkpoints of any
pytree of arrays (for NNX: ``{"model": nnx.state(model), "opt": nnx.state(opt), ...}``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


class RunError(ValueError):
    """A run folder that cannot be used: missing or corrupt config, changed configuration."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + ``os.replace``,
    so a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make shared files unreadable to others
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    """Plain JSON types for numpy / jax scalars and arrays, tuples and paths."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan" / "inf": JSON has no literal for them
    return value


class Run:
    """One run folder. ``Run(path)`` creates it if missing; nothing else is written until asked."""

    def __init__(self, path: str | os.PathLike, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._manager = None

    # -- config ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    def has_config(self) -> bool:
        return self.config_path.exists()

    def write_config(self, config: dict) -> None:
        """Write ``config.json`` atomically (everything needed to rebuild model and transforms)."""
        text = json.dumps(_jsonable(config), indent=2, sort_keys=True)
        atomic_write_bytes(self.config_path, (text + "\n").encode())

    def read_config(self) -> dict:
        """Read ``config.json``; a missing or corrupt file is a ``RunError`` naming it."""
        if not self.config_path.exists():
            raise RunError(f"{self.path} is not a run folder: it has no {CONFIG}")
        try:
            config = json.loads(self.config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(f"{self.config_path} is corrupt: {err}") from err
        if not isinstance(config, dict):
            raise RunError(f"{self.config_path} does not hold a JSON object")
        return config

    def ensure_config(self, config: dict) -> bool:
        """First call: write ``config`` and return False. On resume: check it equals the stored
        one (a ``RunError`` names the keys that differ) and return True."""
        if not self.has_config():
            self.write_config(config)
            return False
        stored = self.read_config()
        new = json.loads(json.dumps(_jsonable(config), sort_keys=True))
        if stored != new:
            keys = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
            detail = ", ".join(f"{k}: {stored.get(k)!r} -> {new.get(k)!r}" for k in keys)
            raise RunError(
                f"{self.path} holds a run with another configuration ({detail}); "
                "use a new --out folder or the same arguments to resume"
            )
        return True

    # -- metrics ----------------------------------------------------------------------------
    def log(self, **metrics: Any) -> None:
        """Append one JSON object to ``metrics.jsonl`` (flushed and synced, so it survives a kill)."""
        line = json.dumps(_jsonable(metrics), sort_keys=True)
        with open(self.path / METRICS, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """Every logged object, in order; a torn last line (killed mid-write) is skipped."""
        path = self.path / METRICS
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    # -- arrays (normalisers, small statistics) ------------------------------------------------
    def save_arrays(self, name: str, arrays: dict[str, Any]) -> None:
        """Write ``name.npz`` atomically (no pickled objects: plain numeric arrays only)."""
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        atomic_write_bytes(self.path / f"{name}.npz", buf.getvalue())

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        path = self.path / f"{name}.npz"
        if not path.exists():
            raise RunError(f"{path} is missing from the run folder")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception as err:  # zipfile / value errors from a corrupt file
            raise RunError(f"{path} is corrupt: {err}") from err

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def manager(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True)
            self._manager = ocp.CheckpointManager(
                (self.path / CHECKPOINTS).absolute(), options=options
            )
        return self._manager

    def save(self, step: int, state: Any, extra: dict | None = None) -> None:
        """Checkpoint ``state`` (a pytree of arrays) at ``step``; orbax writes to a temporary
        folder and renames it, so a kill mid-save leaves the previous checkpoint usable."""
        import orbax.checkpoint as ocp

        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            extra=ocp.args.JsonSave(_jsonable(extra or {})),
        )
        self.manager.save(int(step), args=args, force=True)
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        if not (self.path / CHECKPOINTS).exists():
            return None
        self.manager.reload()
        return self.manager.latest_step()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore the checkpoint at ``step`` (default: latest) into ``target``'s structure,
        shardings and dtypes. Returns ``(state, extra)``."""
        import jax
        import orbax.checkpoint as ocp

        step = self.latest_step() if step is None else step
        if step is None:
            raise RunError(f"{self.path} has no checkpoint to restore")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["extra"] or {})

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None


def progress(total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0, **kw):
    """A tqdm bar with rate and ETA on stderr; ``OPBAYES_PROGRESS=0`` silences it."""
    from tqdm.auto import tqdm

    disable = os.environ.get("OPBAYES_PROGRESS", "1") == "0"
    return tqdm(
        total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr,
        dynamic_ncols=True, disable=disable, **kw,
    )
