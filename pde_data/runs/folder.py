"""A training run is a folder (docs/design.md, "Run folders"): ``config.json``, orbax
checkpoints, ``metrics.jsonl`` and plots. Re-running the same command on the same folder resumes.

The one run folder every training command shares (through :mod:`pde_data.runs.loop`): atomic
config and array files, an append-only metrics log, and orbax checkpoints. A checkpoint holds
one orbax item per top-level key of the saved dict (the engine saves ``params`` and ``opt``), so
a reader restores the parameters alone without rebuilding the optimiser.

Several processes (``--distributed``, :mod:`pde_data.runs.distributed`): process 0 alone writes
the config, the arrays, the metrics and JSON files; :meth:`Run.ensure_config` decides "new run
or resume" from what every process saw before process 0 wrote anything, and the others wait
for its write. Checkpoints are saved and restored by all processes together (orbax, global
arrays).
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


def jsonable(value: Any) -> Any:
    """Plain JSON types for numpy / jax scalars and arrays, tuples and paths."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan" / "inf": JSON has no literal for them
    return value


class Run:
    """One run folder. ``Run(path)`` creates it if missing (a writer: training); nothing else is
    written until asked. Readers (evaluate, predict, export) use :meth:`open`, which never
    creates anything and refuses a path that is not a run folder."""

    def __init__(self, path: str | os.PathLike, keep: int = 2, *, must_exist: bool = False):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep!r}")
        self.path = Path(path)
        if must_exist:
            if not self.path.is_dir():
                raise RunError(f"{self.path} does not exist: give the folder of a trained run "
                               "(the --out of a train command)")
            if not (self.path / CONFIG).is_file():
                raise RunError(f"{self.path} is not a run folder: it has no {CONFIG}")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._manager = None

    @classmethod
    def open(cls, path: str | os.PathLike, keep: int = 2) -> Run:
        """An existing run folder (with ``config.json``), for reading; nothing is created. A
        missing folder or one without a config is a :class:`RunError`."""
        return cls(path, keep, must_exist=True)

    # -- config ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    def has_config(self) -> bool:
        return self.config_path.exists()

    def check_data_unchanged(self, config: dict) -> None:
        """Refuse to resume on a data file whose content changed since the run started: the
        stored and the new ``config`` name the same ``data`` with another ``data_fingerprint``
        (the batches before the checkpoint, and any normalisers, came from the old file). Runs
        from before fingerprints were recorded resume unchecked (the key is dropped)."""
        if not self.has_config():
            return
        stored = self.read_config()
        if "data_fingerprint" not in stored:
            config.pop("data_fingerprint", None)
            return
        if (stored.get("data") == config.get("data")
                and stored["data_fingerprint"] != config.get("data_fingerprint")):
            if not self._holds_results():
                # an earlier attempt stopped before anything came from the data (e.g. a corrupt
                # chunk met while fitting the normalisers): the repaired file starts the run
                self.write_config({**stored, "data_fingerprint": config.get("data_fingerprint")})
                return
            raise RunError(
                f"{config['data']} has changed since the run in {self.path} started (its content "
                "fingerprint differs): resuming would continue on other data; restore the "
                "original file or train into a new --out folder")

    def _holds_results(self) -> bool:
        """Whether anything computed from the data is here: checkpoints, arrays or metrics."""
        ckpts = self.path / CHECKPOINTS
        return ((ckpts.exists() and any(ckpts.iterdir())) or any(self.path.glob("*.npz"))
                or (self.path / METRICS).exists())

    def write_config(self, config: dict) -> None:
        """Write ``config.json`` atomically (everything needed to rebuild model and transforms);
        process 0 only."""
        if not _primary():
            return
        text = json.dumps(jsonable(config), indent=2, sort_keys=True)
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

    def ensure_config(self, config: dict, extendable: tuple[str, ...] = ()) -> bool:
        """First call: write ``config`` and return False. On resume: check it equals the stored
        one (a ``RunError`` names the keys that differ) and return True.

        ``extendable`` names budget keys (``"epochs"``, ``"steps"``) that may grow on resume:
        the same command with a larger budget continues a run, and the stored config is updated.
        """
        from pde_data.runs import distributed

        new_run = not self.has_config()
        distributed.barrier("opbayes-run-config-seen")  # all decided before process 0 writes
        if new_run:
            self.write_config(config)
            distributed.barrier("opbayes-run-config-written")
            return False
        stored = self.read_config()
        new = json.loads(json.dumps(jsonable(config), sort_keys=True))
        grown = [k for k in extendable if k in stored and k in new and stored[k] != new[k]]
        shrunk = [k for k in grown if not new[k] > stored[k]]
        if shrunk:
            detail = ", ".join(f"{k}: {stored[k]!r} -> {new[k]!r}" for k in shrunk)
            raise RunError(f"{self.path} holds a longer run ({detail}); a budget can grow on "
                           "resume, not shrink: use a new --out folder")
        if grown and {k: v for k, v in stored.items() if k not in grown} == {
                k: v for k, v in new.items() if k not in grown}:
            self.write_config(new)  # the same run with a larger budget: continue it
            return True
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
        """Append one JSON object to ``metrics.jsonl`` (flushed and synced, so it survives a kill);
        process 0 only, so a distributed run has one row per event."""
        if not _primary():
            return
        line = json.dumps(jsonable(metrics), sort_keys=True)
        with open(self.path / METRICS, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def drop_metrics_after(self, step: int) -> int:
        """Drop the training rows (those with a ``step``, no ``event``) logged after ``step``:
        a run resumed from its checkpoint at ``step`` logs them again. Returns how many went;
        the log is rewritten atomically (process 0 only)."""
        path = self.path / METRICS
        if not _primary() or not path.exists():
            return 0
        keep, dropped = [], 0
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1  # a torn last line (killed mid-write)
                continue
            if (isinstance(row, dict) and "event" not in row
                    and isinstance(row.get("step"), (int, float)) and row["step"] > step):
                dropped += 1
                continue
            keep.append(line)
        if dropped:
            atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())
        return dropped

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
        """Write ``name.npz`` atomically (no pickled objects: plain numeric arrays only);
        process 0 only (every process computed the same arrays)."""
        import io

        if not _primary():
            return
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

    def save(self, step: int, state: dict[str, Any], extra: dict | None = None) -> None:
        """Checkpoint ``state`` at ``step``: one orbax item per key (each a pytree of arrays) and
        ``extra`` as JSON. Orbax writes to a temporary folder and renames it, so a kill mid-save
        leaves the previous checkpoint usable."""
        import orbax.checkpoint as ocp

        if not isinstance(state, dict) or "extra" in state:
            raise TypeError("Run.save takes a dict of named pytrees (not named 'extra')")
        items = {k: ocp.args.StandardSave(v) for k, v in state.items()}
        args = ocp.args.Composite(**items, extra=ocp.args.JsonSave(jsonable(extra or {})))
        self.manager.save(int(step), args=args, force=True)
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        if not (self.path / CHECKPOINTS).exists():
            return None
        self.manager.reload()
        return self.manager.latest_step()

    def restore(self, target: dict[str, Any], step: int | None = None) -> tuple[dict, dict]:
        """Restore the items named by ``target``'s keys from the checkpoint at ``step`` (default:
        latest) into their structures, shardings and dtypes. Returns ``(state, extra)``; items
        not named are not read (e.g. the optimiser state when only parameters are needed)."""
        import jax
        import orbax.checkpoint as ocp

        step = self.latest_step() if step is None else step
        if step is None:
            raise RunError(f"{self.path} has no checkpoint to restore")
        folder = self.path / CHECKPOINTS / str(int(step))
        missing = [k for k in target if folder.exists() and not (folder / k).exists()]
        if missing:
            raise RunError(
                f"{folder} has no item(s) {missing} (it holds "
                f"{sorted(p.name for p in folder.iterdir() if p.is_dir())}): the run was written "
                "by an older checkpoint layout of opbayes; train it again in a new --out folder")
        args = {k: ocp.args.StandardRestore(jax.tree_util.tree_map(
            ocp.utils.to_shape_dtype_struct, v)) for k, v in target.items()}
        try:
            restored = self.manager.restore(
                int(step), args=ocp.args.Composite(**args, extra=ocp.args.JsonRestore()))
        except (ValueError, KeyError) as err:
            raise RunError(f"{folder} does not fit the model of {self.config_path}: {err}") from err
        return {k: restored[k] for k in target}, dict(restored["extra"] or {})

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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (numpy / jax values made plain); process 0
    only."""
    if not _primary():
        return
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def _primary() -> bool:
    """True unless this is a process other than 0 of a ``jax.distributed`` run (checked
    without starting JAX in processes that never imported it)."""
    if "jax" not in sys.modules:
        return True
    from pde_data.runs.distributed import is_primary

    return is_primary()
