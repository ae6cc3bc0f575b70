"""Atomic saving and schema-checked loading of datasets (docs/design.md, "Stored datasets").

``save`` writes netCDF (``.nc``, h5netcdf engine) or zarr (``.zarr``) through a temporary path
in the destination folder and a rename, so an interrupted save never leaves half a file.
``load`` reads those two plus the foreign formats of :mod:`pde_data.formats` (FNO ``.mat``,
PDEBench ``.h5``, neuraloperator ``.pt``) into the same schema, with ``source_format`` set.

``save`` writes the schema's CF-style metadata (``Conventions``, the ``sample`` coordinate,
``long_name`` / ``units`` on the coordinates) where the dataset lacks it, and stores
``input_vars`` / ``output_vars`` as lists of strings. ``load`` also reads files of the first
schema (names as one string, no ``sample`` coordinate) and gives them a ``sample`` coordinate.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from pde_data.errors import DataFormatError
from pde_data.schema import SAMPLE, SchemaError, validate, var_names, with_cf_metadata

__all__ = ["NATIVE_SUFFIXES", "SUFFIXES", "DataFormatError", "detect_format", "load", "save"]

NATIVE_SUFFIXES = (".nc", ".zarr")
SUFFIXES = {
    ".nc": "netcdf",
    ".zarr": "zarr",
    ".mat": "mat",
    ".h5": "pdebench",
    ".hdf5": "pdebench",
    ".pt": "torch",
    ".pth": "torch",
}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZARR_CHUNK_BYTES = 4 << 20  # target size of one zarr chunk (whole samples along `sample`)
ZARR_WRITE_BYTES = 256 << 20  # samples written per append when saving a large dataset to zarr


def detect_format(path: str | os.PathLike) -> str:
    """The reader for ``path`` from its extension: one of the values of :data:`SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFormatError(
            f"{path}: unknown dataset extension {suffix or '(none)'!r}; "
            f"supported: {', '.join(sorted(SUFFIXES))}"
        )
    return SUFFIXES[suffix]


# --------------------------------------------------------------------------------------- save


def save(dataset, path: str | os.PathLike) -> Path:
    """Validate ``dataset`` against the schema and write it to ``path`` (``.nc`` or ``.zarr``)
    atomically: the old file stays intact until the new one is complete. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in NATIVE_SUFFIXES:
        raise DataFormatError(
            f"{path}: cannot save with extension {suffix or '(none)'!r}; use .nc (netCDF) or .zarr"
        )
    try:
        validate(dataset)
    except SchemaError as e:
        raise SchemaError(f"not saving {path}: {e}") from None
    ds = _prepare(dataset, netcdf=suffix == ".nc")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".nc":
        if path.is_dir():
            raise DataFormatError(f"{path}: is a directory; cannot replace it with a netCDF file")
        _save_netcdf(ds, path)
    else:
        _save_zarr(ds, path)
    return path


def _prepare(dataset, netcdf: bool):
    """A shallow copy with the CF-style metadata of the schema, storable attributes (name lists
    as lists, bools as ints for netCDF) and no encodings inherited from the file it came from."""
    ds = with_cf_metadata(dataset)
    for var in ds.variables.values():
        var.encoding = {}
    attrs = {}
    for key, value in ds.attrs.items():
        if key in ("input_vars", "output_vars"):
            attrs[key] = var_names(value)
        else:
            attrs[key] = _attr_value(key, value, netcdf)
    ds.attrs = attrs
    return ds


def _attr_value(key, value, netcdf: bool):
    if isinstance(value, (bool, np.bool_)):
        return int(value) if netcdf else bool(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = np.asarray(value).tolist()
        flat = items if isinstance(items, list) else [items]
        if all(isinstance(v, str) for v in flat) or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat
        ):
            return list(flat)
        if all(isinstance(v, bool) for v in flat):
            return [int(v) for v in flat] if netcdf else list(flat)
    raise SchemaError(
        f"attribute {key!r} = {value!r} ({type(value).__name__}) cannot be stored; "
        "use a string, a number, or a list of strings or numbers"
    )


def _tmp_sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def _save_netcdf(ds, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _zarr_encoding(ds) -> dict:
    """Chunk every sample-leading variable as whole samples of about ZARR_CHUNK_BYTES, so a
    batch reads a few chunks and a larger-than-memory dataset streams."""
    enc = {}
    for name, var in ds.data_vars.items():
        if var.ndim and var.dims[0] == SAMPLE:
            row = var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64))
            n = max(1, min(var.shape[0], ZARR_CHUNK_BYTES // max(row, 1)))
            enc[name] = {"chunks": (n, *var.shape[1:])}
    return enc


def _save_zarr(ds, path: Path) -> None:
    tmp = _tmp_sibling(path, "tmp")
    try:
        _write_zarr_blocks(ds, tmp)
        if path.exists() or path.is_symlink():
            old = _tmp_sibling(path, "old")
            os.replace(path, old)  # move the old store aside, then the new one in
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_zarr_blocks(ds, tmp: Path) -> None:
    """Write in blocks of samples (append along ``sample``) so saving a lazily backed dataset
    never holds more than ~ZARR_WRITE_BYTES of it in memory."""
    enc = _zarr_encoding(ds)
    n = ds.sizes.get(SAMPLE, 0)
    sample_vars = [v for v in ds.data_vars.values() if v.ndim and v.dims[0] == SAMPLE]
    row = sum(v.dtype.itemsize * int(np.prod(v.shape[1:], dtype=np.int64)) for v in sample_vars)
    step = max(1, ZARR_WRITE_BYTES // max(row, 1))
    if (
        n <= step
        or not sample_vars
        or any(SAMPLE in v.dims and v.dims[0] != SAMPLE for v in ds.variables.values())
    ):
        ds.load().to_zarr(tmp, mode="w", encoding=enc, consolidated=False)
        return
    static = [k for k, v in ds.data_vars.items() if SAMPLE not in v.dims]
    first = ds.isel({SAMPLE: slice(0, step)}).load()
    first.to_zarr(tmp, mode="w", encoding=enc, consolidated=False)
    for i in range(step, n, step):
        block = ds.isel({SAMPLE: slice(i, i + step)}).drop_vars(static).load()
        block.to_zarr(tmp, append_dim=SAMPLE, consolidated=False)


# --------------------------------------------------------------------------------------- load


def load(path: str | os.PathLike):
    """Read a dataset file into the schema of docs/design.md (an ``xarray.Dataset``): ``.nc``,
    ``.zarr`` (lazily: values are read on access), FNO ``.mat`` (v5 and v7.3), PDEBench
    ``.h5``/``.hdf5`` and neuraloperator ``.pt`` (without torch, never running code from the
    file). Raises :class:`DataFormatError` naming the file and the problem."""
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if fmt == "netcdf":
        ds = _load_netcdf(path)
    elif fmt == "zarr":
        ds = _load_zarr(path)
    else:
        from pde_data import formats

        reader = formats.reader(fmt)
        try:
            ds = reader(path)
        except (DataFormatError, SchemaError, MemoryError):
            raise
        except Exception as e:  # corrupt content surfaces as many kinds of error
            raise DataFormatError(
                f"{path}: corrupt or truncated {fmt} file: {type(e).__name__}: {e}"
            ) from e
    ds.attrs = {k: _plain(v) for k, v in ds.attrs.items()}
    ds.attrs["input_vars"] = var_names(ds.attrs.get("input_vars"))
    ds.attrs["output_vars"] = var_names(ds.attrs.get("output_vars"))
    ds.attrs["source_format"] = _SOURCE_NAMES.get(fmt, ds.attrs.get("source_format", fmt))
    if SAMPLE in ds.dims and SAMPLE not in ds.coords:  # files of the first schema, foreign formats
        ds = ds.assign_coords({SAMPLE: np.arange(ds.sizes[SAMPLE], dtype=np.int64)})
    try:
        validate(ds, check_values=False)
    except SchemaError as e:
        raise DataFormatError(f"{path}: does not follow the dataset schema: {e}") from None
    return ds


_SOURCE_NAMES = {"netcdf": "netcdf", "zarr": "zarr"}


def _plain(value):
    """Attribute values as plain Python (netCDF hands back numpy scalars and arrays)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _load_netcdf(path: Path):
    import xarray as xr

    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory, not a netCDF file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:3] == b"CDF":
        engine = "scipy"  # netCDF3 classic / 64-bit offset
    elif head == HDF5_MAGIC or _hdf5_userblock(path):
        engine = "h5netcdf"
    else:
        raise DataFormatError(f"{path}: not a netCDF file (no netCDF/HDF5 signature; got {head!r})")
    try:
        with xr.open_dataset(path, engine=engine) as ds:
            return ds.load()
    except Exception as e:
        raise DataFormatError(
            f"{path}: corrupt or truncated netCDF file: {type(e).__name__}: {e}"
        ) from e


def _hdf5_userblock(path: Path) -> bool:
    """HDF5 may start after a user block of 512, 1024, 2048, ... bytes (MATLAB v7.3 uses 512)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        off = 512
        while off + 8 <= size and off <= 1 << 20:
            f.seek(off)
            if f.read(8) == HDF5_MAGIC:
                return True
            off *= 2
    return False


def _load_zarr(path: Path):
    import xarray as xr

    if not path.is_dir():
        raise DataFormatError(f"{path}: a .zarr store must be a directory")
    try:
        # chunks=None, cache=False: lazily indexed arrays; only the indexed chunks are read.
        return xr.open_dataset(path, engine="zarr", chunks=None, cache=False, consolidated=False)
    except Exception as e:
        raise DataFormatError(
            f"{path}: cannot open as a zarr dataset: {type(e).__name__}: {e}"
        ) from e
