"""The one shipped-model format: a folder with ``config.json`` and ``weights.npz``.

``config.json``::

    {"format": "opbayes-model", "format_version": 2, "package": "pfn",
     "config": {...everything the package needs to rebuild the model...},
     "trained": {...where it came from: run, step, data...}}

``weights.npz`` holds plain arrays only (read with ``allow_pickle=False``): ``params/<path>``
for every ``nnx.Param`` of the model (path parts joined by ``/``) and ``arrays/<name>`` for
the package's extra arrays (e.g. a PFN's bucket borders). Both files are written atomically and
world-readable. Exports go where the user says (default ``./exports/NAME``), never into an
installed package, and never over an existing export without ``overwrite``.

Version 1 folders (the first PFN exports, and the unversioned neural-process exports) still
load: :func:`read` maps them onto version 2.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pde_data.runs.folder import atomic_write_bytes, jsonable

FORMAT = "opbayes-model"
FORMAT_VERSION = 2
CONFIG, WEIGHTS = "config.json", "weights.npz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ModelFileError(ValueError):
    """A folder that is not a usable shipped model: missing, corrupt, foreign or mismatched."""


@dataclass
class Shipped:
    """A shipped model as read from disk, before the package rebuilds it."""

    folder: Path
    package: str
    config: dict
    params: dict[str, np.ndarray]  # "path/to/param" -> array
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    trained: dict = field(default_factory=dict)


def check_name(name: str) -> str:
    """``name`` if it is a plain model name (letters, digits, ``.``, ``_``, ``-``; no path)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(no path separators)")
    return name


def export_folder(name: str, dest: str | Path | None = None) -> Path:
    """Where ``export NAME [--dest DIR]`` writes: ``dest`` as given, else ``./exports/NAME``."""
    check_name(name)
    return Path(dest) if dest is not None else Path.cwd() / "exports" / name


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a/0/b": array}`` of a nested dict (NNX pure dicts have str / int keys)."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = np.asarray(value)
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """Inverse of :func:`flatten` (numeric path parts become int keys, as NNX lists use)."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        parts = [int(p) if p.isdigit() else p for p in path.split("/")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def write(folder: str | Path, *, package: str, config: dict, params: dict,
          arrays: dict[str, Any] | None = None, trained: dict | None = None,
          overwrite: bool = False) -> Path:
    """Write a shipped model into ``folder``; ``params`` is the model's NNX pure dict of
    ``nnx.Param`` values. An existing model folder is kept unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass --overwrite to replace it, or "
                              "choose another --dest")
    data = {f"params/{k}": v for k, v in flatten(params).items()}
    data.update({f"arrays/{k}": np.asarray(v) for k, v in (arrays or {}).items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "package": package,
            "config": config, "trained": trained or {}}
    atomic_write_bytes(folder / WEIGHTS, buf.getvalue())
    atomic_write_bytes(folder / CONFIG,
                       (json.dumps(jsonable(meta), indent=2, sort_keys=True) + "\n").encode())
    for name in (WEIGHTS, CONFIG):  # temporary files are 0600; shipped files are read by all
        (folder / name).chmod(0o644)
    return folder


def resolve(name_or_folder: str | Path, shipped_dir: Path) -> Path:
    """The folder of a model given by folder path or by the name of one shipped in
    ``shipped_dir`` (a package's ``checkpoints/``)."""
    folder = Path(name_or_folder)
    if (folder / CONFIG).exists():
        return folder
    names = available(shipped_dir)
    if isinstance(name_or_folder, str) and name_or_folder in names:
        return shipped_dir / name_or_folder
    raise ModelFileError(f"{str(name_or_folder)!r} is neither a model folder (with {CONFIG}) nor "
                         f"a shipped model; shipped: {', '.join(names) or '(none)'}")


def available(shipped_dir: Path) -> list[str]:
    """Names of the models shipped in ``shipped_dir``."""
    if not shipped_dir.exists():
        return []
    return sorted(p.name for p in shipped_dir.iterdir()
                  if (p / CONFIG).exists() and (p / WEIGHTS).exists())


def read(folder: str | Path, package: str) -> Shipped:
    """Read a shipped model written for ``package``; a ``ModelFileError`` names what is wrong
    (missing file, corrupt JSON or npz, another package's model, an unknown format version)."""
    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder / name} is missing: {folder} is not a shipped model")
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{folder / CONFIG} is corrupt: {err}") from err
    if not isinstance(meta, dict):
        raise ModelFileError(f"{folder / CONFIG} does not hold a JSON object")
    try:
        with np.load(folder / WEIGHTS, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as err:  # zip / format / pickle-refused errors of a corrupt file
        raise ModelFileError(f"{folder / WEIGHTS} is corrupt or not an npz of arrays: {err}"
                             ) from err
    meta, data = _upgrade(meta, data, package, folder)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{folder}: model format {meta.get('format')!r} version "
                             f"{meta.get('format_version')!r} is not supported (this opbayes "
                             f"reads {FORMAT!r} version {FORMAT_VERSION})")
    if meta.get("package") != package:
        raise ModelFileError(f"{folder} holds a {meta.get('package')!r} model, not a "
                             f"{package!r} one")
    if not isinstance(meta.get("config"), dict):
        raise ModelFileError(f"{folder / CONFIG} has no model config")
    params = {k[len("params/"):]: v for k, v in data.items() if k.startswith("params/")}
    arrays = {k[len("arrays/"):]: v for k, v in data.items() if k.startswith("arrays/")}
    return Shipped(folder, package, meta["config"], params, arrays, meta.get("trained") or {})


def _upgrade(meta: dict, data: dict, package: str, folder: Path) -> tuple[dict, dict]:
    """Map the version-1 layouts onto version 2 (same arrays, other keys)."""
    if "format" in meta:
        return meta, data
    if package == "pfn" and meta.get("format_version") == 1 and "config" in meta:
        arrays = {f"arrays/{k}": v for k, v in data.items() if not k.startswith("params/")}
        params = {k: v for k, v in data.items() if k.startswith("params/")}
        return ({"format": FORMAT, "format_version": FORMAT_VERSION, "package": "pfn",
                 "config": meta["config"],
                 "trained": {"name": meta.get("name"), "step": meta.get("trained_steps")}},
                {**params, **arrays})
    if package == "neural_processes" and "model" in meta and "format_version" not in meta:
        return ({"format": FORMAT, "format_version": FORMAT_VERSION,
                 "package": "neural_processes", "config": meta["model"],
                 "trained": meta.get("trained") or {}},
                {f"params/{k}": v for k, v in data.items()})
    return meta, data


def assign(model, shipped: Shipped):
    """Put ``shipped.params`` into ``model``'s ``nnx.Param`` leaves; every path and shape must
    match the model the config describes."""
    from flax import nnx

    state = nnx.state(model, nnx.Param)
    expected = flatten(nnx.to_pure_dict(state))
    got = shipped.params
    if set(expected) != set(got):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise ModelFileError(f"{shipped.folder / WEIGHTS} does not match its config: missing "
                             f"{missing[:4]}, unexpected {extra[:4]}")
    for path, want in expected.items():
        if got[path].shape != want.shape:
            raise ModelFileError(f"{shipped.folder / WEIGHTS}: {path} has shape "
                                 f"{got[path].shape}, the config's model has {want.shape}")
    cast = {k: np.asarray(v, dtype=expected[k].dtype) for k, v in got.items()}
    nnx.replace_by_pure_dict(state, unflatten(cast))
    nnx.update(model, state)
    return model


def copy(src: str | Path, dest: str | Path, overwrite: bool = False) -> Path:
    """Copy a shipped model folder (both files) to ``dest``."""
    src, dest = Path(src), Path(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass --overwrite to replace it")
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS):
        shutil.copyfile(src / name, dest / name)
    return dest
