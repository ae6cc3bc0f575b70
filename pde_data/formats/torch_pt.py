"""neuraloperator ``.pt`` dictionaries of tensors, read WITHOUT torch and without running code
from the file.

``torch.save`` writes a zip: ``<name>/data.pkl`` (a pickle whose tensors point, through
persistent ids, at raw storages ``<name>/data/<key>``). The pickle is read by a restricted
unpickler that resolves only the handful of globals a tensor dictionary needs and refuses any
other, naming it; tensors are rebuilt with numpy from (storage, offset, size, stride).

Keys map to variables: ``x``/``y`` -> ``input``/``output`` (``a``/``u`` for Darcy), Burgers'
``input``/``output``/``visc`` -> ``u0``/``u`` and attr ``nu``; other tensors keep their names,
plain numbers become attributes.

What a file can make the reader allocate is bounded by the file: a tensor may not hold more
elements than its storage (a stride-0 "expanded" tensor of a few bytes is refused), and the
storages read plus the tensors built may not exceed :data:`ALLOC_FACTOR` times the file's size
(plus :data:`ALLOC_SLACK`), so a small file cannot expand into a large allocation (many
tensors viewing one storage, a storage entry that decompresses far beyond its size).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np

from pde_data.errors import DataFormatError
from pde_data.formats._build import (
    PERIODIC_PDES,
    build,
    pde_from_name,
    safe_name,
    spatial_names,
    time_last,
)
from pde_data.schema import SAMPLE, TIME


class _Storage:
    """Marker for a ``torch.<Type>Storage`` class: only its element dtype matters."""

    def __init__(self, name: str, dtype: str | None):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"torch.{self.name}"


class _DType:
    """Marker for a ``torch.<dtype>`` object (as pickled in tensor metadata)."""

    def __init__(self, name: str):
        self.name = name


_STORAGES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}
_DTYPES = (
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "double",
    "float",
    "half",
    "long",
    "int",
    "short",
)


#: the storages read and tensors built from a file may take at most this many times its size
ALLOC_FACTOR = 4
#: ... plus this many bytes (small files)
ALLOC_SLACK = 1 << 20


class AllocationLimit(pickle.UnpicklingError):
    """The file declares more data than it can hold (a bound on what the reader allocates)."""


class _Budget:
    """Bytes the reader may still allocate for one file."""

    def __init__(self, file_size: int):
        self.total = ALLOC_FACTOR * int(file_size) + ALLOC_SLACK
        self.left = self.total

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise AllocationLimit(
                f"{what} needs {nbytes} bytes, more than the {self.total} bytes a file of this "
                f"size may expand to ({ALLOC_FACTOR} x its size + {ALLOC_SLACK}): it declares "
                "more data than it holds")
        self.left -= nbytes


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest, budget=None):
    """``torch._utils._rebuild_tensor_v2`` with numpy: a strided view of the storage, copied."""
    arr = storage
    if not isinstance(arr, np.ndarray):
        raise pickle.UnpicklingError(f"a tensor's storage is a {type(arr).__name__}, not a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"invalid tensor geometry size={size} stride={stride}")
    offset = int(storage_offset)
    if 0 in size:
        return np.zeros(size, dtype=arr.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= arr.size:
        raise pickle.UnpicklingError(
            f"tensor of size {size}, stride {stride}, offset {offset} reaches element {last} "
            f"of a storage of {arr.size} elements (truncated or corrupt file)"
        )
    numel = math.prod(size)
    if numel > arr.size:
        raise AllocationLimit(
            f"a tensor of size {size} (stride {stride}) declares {numel} elements, but its "
            f"storage holds {arr.size}: a tensor cannot hold more values than its storage")
    if budget is not None:
        budget.take(numel * arr.dtype.itemsize, f"a tensor of size {size}")
    item = arr.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        arr[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return np.array(view)  # owns its memory, C-contiguous


def _rebuild_parameter(data, *_rest):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its data here."""
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", k): _Storage(k, v) for k, v in _STORAGES.items()},
    ("torch.storage", "UntypedStorage"): _Storage("UntypedStorage", "uint8"),
    **{("torch", k): _DType(k) for k in _DTYPES},
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle referenced a global outside the tensor-dictionary allow-list."""

    def __init__(self, module: str, name: str):
        super().__init__(f"forbidden global '{module}.{name}'")
        self.qualname = f"{module}.{name}"


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages, budget: _Budget | None = None):
        super().__init__(io.BytesIO(data))
        self._storages = storages
        self._budget = budget

    def find_class(self, module, name):
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(module, name) from None
        if found is _rebuild_tensor:
            budget = self._budget

            def rebuild(*args):
                return _rebuild_tensor(*args, budget=budget)

            return rebuild
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _Storage):
            raise pickle.UnpicklingError(
                f"persistent id names {storage_type!r}, not a torch storage type"
            )
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"invalid storage size {numel!r}")
        return self._storages(key, storage_type.dtype, numel)


def _np_dtype(name: str, byteorder: str) -> np.dtype:
    if name == "bfloat16":
        return np.dtype(np.uint16).newbyteorder("<" if byteorder == "little" else ">")
    return np.dtype(name).newbyteorder("<" if byteorder == "little" else ">")


def load_tensor_dict(path) -> dict:
    """The object ``torch.save`` wrote to ``path`` with tensors as numpy arrays, read safely."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        hint = " (legacy non-zip torch.save format, not supported)" if head[:1] == b"\x80" else ""
        raise DataFormatError(f"{path}: not a torch.save zip archive{hint}")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or [
            n for n in names if n == "data.pkl"
        ]
        if len(pkls) != 1:
            raise DataFormatError(
                f"{path}: no unique '<archive>/data.pkl' in the zip (entries: {names[:8]})"
            )
        prefix = pkls[0][: -len("data.pkl")]
        budget = _Budget(path.stat().st_size)
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = zf.read(f"{prefix}byteorder").decode().strip() or "little"
        cache: dict[str, np.ndarray] = {}

        def storage(key: str, dtype: str, numel: int) -> np.ndarray:
            if key not in cache:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise pickle.UnpicklingError(f"storage {entry!r} missing from the archive")
                dt = _np_dtype(dtype, byteorder)
                want = numel if dtype == "uint8" else numel * dt.itemsize
                size = zf.getinfo(entry).file_size  # checked before reading: no zip bombs
                if size < want or want % dt.itemsize:
                    raise pickle.UnpicklingError(
                        f"storage {entry!r} has {size} bytes, expected {want} "
                        "(truncated or corrupt file)"
                    )
                budget.take(want, f"storage {entry!r}")
                with zf.open(entry) as fh:
                    raw = fh.read(want)
                if len(raw) != want:
                    raise pickle.UnpicklingError(
                        f"storage {entry!r} ends after {len(raw)} of {want} bytes (truncated file)"
                    )
                arr = np.frombuffer(raw, dtype=dt)
                if dtype == "bfloat16":
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                cache[key] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
            return cache[key]

        try:
            budget.take(zf.getinfo(pkls[0]).file_size, f"the pickle {pkls[0]!r}")
            obj = _Unpickler(zf.read(pkls[0]), storage, budget).load()
        except AllocationLimit as e:
            raise DataFormatError(f"{path}: refusing to load: {e}") from None
        except ForbiddenGlobal as e:
            raise DataFormatError(
                f"{path}: refusing to load: the pickle references the forbidden global "
                f"'{e.qualname}' "
                "(only dictionaries of tensors and numbers are read; no code from the file is run)"
            ) from None
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
            zipfile.BadZipFile,
            OSError,
        ) as e:
            raise DataFormatError(
                f"{path}: corrupt torch archive: {type(e).__name__}: {e}"
            ) from None
    return obj


def read(path):
    path = Path(path)
    obj = load_tensor_dict(path)
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path}: expected a dict of tensors, the file holds a {type(obj).__name__}"
        )
    ds = from_dict(obj, path)
    ds.attrs["source_format"] = "torch-pt"
    return ds


def from_dict(d: dict, path: Path):
    """Map a neuraloperator tensor dictionary to a schema dataset."""
    arrays = {str(k): v for k, v in d.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    attrs = {
        str(k): v
        for k, v in d.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }
    attrs.update(
        {str(k): v.item() for k, v in d.items() if isinstance(v, np.ndarray) and v.ndim == 0}
    )
    pde = pde_from_name(path)
    if "x" in arrays or "y" in arrays:
        pair = ("x", "y")
    elif "input" in arrays or "output" in arrays:
        pair = ("input", "output")
    else:
        raise DataFormatError(
            f"{path}: no input/output tensors: expected keys 'x'/'y' or 'input'/'output', "
            f"found {sorted(map(str, d))}"
        )
    missing = [k for k in pair if k not in arrays]
    if missing:
        raise DataFormatError(
            f"{path}: missing variable {missing[0]!r} (keys: {sorted(map(str, d))})"
        )
    inp, out = arrays[pair[0]], arrays[pair[1]]
    if inp.ndim < 2:
        raise DataFormatError(f"{path}: {pair[0]!r} has shape {inp.shape}; expected (N, *spatial)")
    if out.shape[0] != inp.shape[0]:
        raise DataFormatError(
            f"{path}: {pair[0]!r} has {inp.shape[0]} samples, {pair[1]!r} has {out.shape[0]}"
        )
    if "visc" in attrs:
        attrs["nu"] = attrs.pop("visc")
        pde = pde or "burgers"
    if (
        pde is None
        and pair == ("x", "y")
        and inp.ndim == 3
        and np.unique(inp[: min(len(inp), 8)]).size <= 3
    ):
        pde = "darcy"  # piecewise-constant two-phase coefficient: the neuraloperator Darcy data
    names = {"darcy": ("a", "u"), "burgers": ("u0", "u"), "navier_stokes": ("input", "output")}.get(
        pde, ("input", "output")
    )
    spatial = tuple(inp.shape[1:])
    sp = (SAMPLE, *spatial_names(len(spatial), str(path)))
    if out.shape[1:] == spatial:
        out_dims = sp
    elif out.ndim == inp.ndim + 1:
        out = time_last(out, spatial, str(path))
        out_dims = (*sp, TIME)
    else:
        raise DataFormatError(
            f"{path}: {pair[1]!r} {out.shape} does not match {pair[0]!r} {inp.shape} "
            "(same grid, optionally with a time axis)"
        )
    fields = {names[0]: (sp, inp), names[1]: (out_dims, out)}
    skipped = []
    for k, v in arrays.items():
        if k in pair:
            continue
        if v.shape[:1] == inp.shape[:1] and v.shape[1:] == spatial:
            fields[safe_name(k)] = (sp, v)
        else:
            skipped.append(k)
    if skipped:
        attrs["skipped_vars"] = skipped
    return build(
        fields,
        pde=pde,
        inputs=[names[0]],
        outputs=[names[1]],
        periodic=PERIODIC_PDES.get(pde),
        attrs=attrs,
        path=path,
    )
