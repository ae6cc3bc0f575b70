"""Bad-input probes of issue 16, re-run: ~150 inputs an adversarial user would try against the
command lines, the Python APIs and the file readers, each outcome classified.

    .venv/bin/python bench/probes_bad_input.py [--out bench/probes_bad_input.json] [--only AREA]

Outcome classes (the issue's table):

- ``named``: the input was refused with an error that names it: a command exits 2 with one
  ``PROG: error: ...`` line; an API raises a documented error type (``ValueError`` and its
  subclasses ``DataFormatError`` / ``SchemaError`` / ``RunError``, ``TypeError``,
  ``FileNotFoundError``, ``FileExistsError``) with a message;
- ``correct``: the input is valid (or has one sensible meaning) and the answer was checked
  against an independent expectation (e.g. ``burgers.solve(t=0) == u0``);
- ``silent_wrong``: an answer came back that is not right (NaN / inf / a wrong value, a valid
  input refused, an error the user cannot act on because it names an internal failure);
- ``traceback``: an exception escaped (an API raised an internal type: ``ZeroDivisionError``,
  ``IndexError``, ``AttributeError``, a codec ``RuntimeError``; a command printed a traceback)
  or a command's one line names an internal exception type instead of the problem;
- ``data_lost``: a file that existed before the probe changed or vanished;
- ``debris``: the refusal left something behind (an empty run folder, a partial file).

Every probe runs in this process (the commands through their ``main(argv)``, so the policy of
``pde_data.runs.cli.run_command`` is what is probed), in a fresh temporary folder, with a
60 s alarm. The tiny fixtures (datasets, point-set files, one small trained run per package)
are made first (about a minute on 2 CPU cores). The table goes to the JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPBAYES_PROGRESS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))

import numpy as np

CLASSES = ("named", "correct", "silent_wrong", "traceback", "data_lost", "debris")
# API exception types that name the problem (the documented errors of the library)
NAMED_TYPES = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError, KeyError, FloatingPointError)
# exception types that, named in a command's one error line, mean nobody checked the input
INTERNAL = ("ZeroDivisionError", "IndexError", "AttributeError", "RuntimeError",
            "AssertionError", "UnboundLocalError", "NameError", "RecursionError",
            "UnicodeDecodeError", "OverflowError", "StopIteration", "NotImplementedError",
            "XlaRuntimeError", "JaxRuntimeError", "ScopeParamShapeError", "ConcretizationTypeError")
# TypeError messages of Python itself (not of a check in the library)
PY_TYPE_ERRORS = ("unsupported operand", "object is not", "takes ", "positional argument",
                  "unhashable", "not subscriptable", "NoneType", "cannot unpack")


# ------------------------------------------------------------------------------ the harness


@dataclass
class Probe:
    area: str
    name: str
    run: Callable[[Path], Any]  # -> a Result (command) or the API's return value
    expect: str | Callable[[Any], bool] = "error"  # "error": refusing is right; else a check
    guard: Callable[[Path], list[Path]] | None = None  # files that must survive unchanged
    no_debris: Callable[[Path], list[Path]] | None = None  # paths a refusal must not create
    refusal_ok: bool = False  # a named refusal is as right as a checked answer
    names: str | None = None  # a refusal must name this (else it blames the wrong input)


@dataclass
class Result:
    """A command's outcome: exit status, stdout, stderr."""
    code: int
    out: str
    err: str


@dataclass
class Outcome:
    area: str
    name: str
    outcome: str
    detail: str
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


BASELINE: dict[Path, str | None] = {}  # digests of the files a probe made in its set-up


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("no answer within the probe's time limit")


def command(module: str, *argv) -> Result:
    """``python -m MODULE ARGV`` in process: its ``main`` under the one error policy."""
    import importlib

    main = importlib.import_module(f"{module}.__main__").main if module != "opbayes" else \
        importlib.import_module("pde_data.cli").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return Result(int(code or 0), out.getvalue(), err.getvalue())


def _digest(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path) if p != path else "").encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _internal(message: str) -> bool:
    first = message.split(":", 1)[0].strip()
    if any(first.endswith(t) for t in INTERNAL):
        return True
    return first.endswith("TypeError") and any(p in message for p in PY_TYPE_ERRORS)


def classify(probe: Probe, value: Any = None, exc: BaseException | None = None) -> tuple[str, str]:
    """The outcome class of one probe and a one-line detail."""
    outcome, detail = _classify(probe, value, exc)
    if outcome == "named" and probe.names and probe.names not in detail:
        return "silent_wrong", f"refused for another reason than {probe.names!r}: {detail}"
    return outcome, detail


def _classify(probe: Probe, value: Any, exc: BaseException | None) -> tuple[str, str]:
    if isinstance(exc, Hang):
        return "traceback", "hang: no answer within 60 s"
    if exc is not None:
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        if isinstance(exc, NAMED_TYPES) and not _internal(text) and str(exc).strip():
            if probe.expect == "error" or probe.refusal_ok:
                return "named", text
            return "silent_wrong", "valid input refused: " + text
        return "traceback", text
    if isinstance(value, Result):
        lines = [ln for ln in value.err.splitlines() if ln.strip()]
        if "Traceback (most recent call last)" in value.err:
            return "traceback", (lines[-1] if lines else "")[:300]
        if value.code != 0:
            line = lines[-1] if lines else ""
            message = line.split("error:", 1)[-1].strip()
            ok = value.code == 2 and len(lines) == 1 and "error:" in line
            if not ok:
                return "traceback", f"exit {value.code}, {len(lines)} stderr lines: {line[:200]}"
            if _internal(message):
                return "traceback", f"one line, internal error: {message[:250]}"
            if probe.expect == "error" or probe.refusal_ok:
                return "named", message[:300]
            return "silent_wrong", "valid input refused: " + message[:280]
        if probe.expect == "error":
            return "silent_wrong", f"exit 0: {value.out.strip()[-200:]}"
        return ("correct", "checked") if probe.expect(value) else (
            "silent_wrong", f"exit 0, wrong answer: {value.out.strip()[-200:]}")
    if probe.expect == "error":
        return "silent_wrong", f"returned {_short(value)}"
    try:
        good = probe.expect(value)
    except Exception as e:  # noqa: BLE001 - the check failed on the value: a wrong answer
        good, value = False, f"{value!r:.100} ({type(e).__name__}: {e})"
    return ("correct", "checked") if good else ("silent_wrong", f"returned {_short(value)}")


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if arr is not None and arr.dtype.kind in "fc" and arr.size:
        return (f"array{arr.shape} finite={bool(np.isfinite(arr).all())} "
                f"range=[{np.nanmin(arr) if np.isfinite(arr).any() else np.nan:.3g}, "
                f"{np.nanmax(arr) if np.isfinite(arr).any() else np.nan:.3g}]")
    return repr(value)[:200]


def run_probe(probe: Probe, work: Path) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix="probe-", dir=work))
    guarded = probe.guard(folder) if probe.guard else []
    before = {p: _digest(p) for p in guarded}
    watched = probe.no_debris(folder) if probe.no_debris else []
    t0 = time.perf_counter()
    value, exc = None, None
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        value = probe.run(folder)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        exc = e
        if os.environ.get("PROBE_DEBUG"):
            traceback.print_exc()
    finally:
        signal.alarm(0)
    seconds = time.perf_counter() - t0
    outcome, detail = classify(probe, value, exc)
    lost = [str(p.name) for p, d in before.items() if _digest(p) != BASELINE.get(p, d)]
    if lost:
        outcome, detail = "data_lost", f"changed or removed: {lost}; {detail}"
    elif outcome == "named":
        left = [p.name for p in watched if p.exists()]
        if left:
            outcome, detail = "debris", f"left behind: {left}; {detail}"
    return Outcome(probe.area, probe.name, outcome, detail, round(seconds, 2))


# ------------------------------------------------------------------------------ fixtures


class Fixtures:
    """Small files every probe may read (never write): made once in ``root``."""

    def __init__(self, root: Path):
        import xarray as xr

        import pde_data

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.train = pde_data.save(pde_data.darcy.generate(0, 24, 16), root / "train.nc")
        self.test = pde_data.save(pde_data.darcy.generate(1, 4, 16), root / "test.nc")
        self.zarr = pde_data.save(pde_data.load(self.train).load(), root / "train.zarr")
        ds = pde_data.load(self.train).load()
        a = ds["a"].values.copy()
        a[0, 3, 3] = np.nan
        self.nan = root / "nan.nc"  # pde_data.save refuses NaN: written by xarray itself
        ds.assign(a=(ds["a"].dims, a)).to_netcdf(self.nan, engine="h5netcdf")
        big = ds["a"].values * 1e30
        self.huge = pde_data.save(ds.assign(a=(ds["a"].dims, big)), root / "huge.nc")
        self.inputs_only = root / "inputs.nc"  # its output_vars name the absent "u"
        ds.drop_vars("u").to_netcdf(self.inputs_only, engine="h5netcdf")
        # a zarr store with one chunk overwritten by garbage
        self.bad_chunk = root / "badchunk.zarr"
        shutil.copytree(self.zarr, self.bad_chunk)
        chunk = next(p for p in sorted((self.bad_chunk / "u").rglob("*"))
                     if p.is_file() and not p.name.startswith((".", "zarr")))
        chunk.write_bytes(os.urandom(chunk.stat().st_size))
        # foreign formats
        import scipy.io

        self.mat = root / "fno.mat"
        scipy.io.savemat(self.mat, {"coeff": ds["a"].values, "sol": ds["u"].values})
        self.pt_dir = ROOT / "tests" / "pde_data" / "fixtures"
        # point sets
        from pde_data.points import save_point_sets

        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (12, 16, 1)).astype(np.float32)
        y = np.sin(6 * x[..., 0]) + 0.05 * rng.normal(size=(12, 16))
        self.points = save_point_sets(x, y, root / "points.nc")
        xr.Dataset({"x": (("task", "point", "feature"), x),
                    "y": (("task", "point"), np.where(np.arange(16) < 8, y, np.nan))}
                   ).to_netcdf(root / "points_nan.nc", engine="h5netcdf")
        self.points_nan = root / "points_nan.nc"
        xr.Dataset({"x": (("task", "point"), x[..., 0])}).to_netcdf(root / "points_bad.nc",
                                                                     engine="h5netcdf")
        self.points_bad = root / "points_bad.nc"
        self.text = root / "notes.txt"
        self.text.write_text("not a dataset\n")
        self.runs = {}

    def train_runs(self) -> None:
        """One tiny trained run per package (for the evaluate / predict / export probes)."""
        op = self.root / "op_run"
        assert command("operators", "train", "--data", self.train, "--model", "fno", "--out", op,
                       "--epochs", "1", "--batch-size", "4", "--n-val", "4", "--no-progress",
                       "--hparam", "width=8", "--hparam", "modes=4",
                       "--hparam", "n_layers=2").code == 0
        pf = self.root / "pfn_run"
        assert command("pfn", "train", "--prior", "gp-rbf", "--out", pf, "--quiet", *PFN_TINY
                       ).code == 0
        npr = self.root / "np_run"
        assert command("neural_processes", "train", "--out", npr, *NP_TINY).code == 0
        self.runs = {"operators": op, "pfn": pf, "np": npr}

    def copy_run(self, which: str, dest: Path) -> Path:
        shutil.copytree(self.runs[which], dest)
        return dest


PFN_TINY = ["--steps", "4", "--checkpoint-every", "2", "--d-model", "16", "--n-heads", "2",
            "--n-layers", "1", "--d-ff", "16", "--n-buckets", "20", "--border-samples", "2000",
            "--max-context", "12", "--n-targets", "4", "--batch-size", "4", "--log-every", "2"]
NP_TINY = ["--model", "cnp", "--data", "rbf", "--steps", "4", "--batch-size", "4",
           "--log-every", "2", "--ckpt-every", "2", "--no-progress", "--width", "16",
           "--enc-depth", "2", "--dec-depth", "2", "--heads", "2"]
OP_TINY = ["--model", "fno", "--epochs", "1", "--batch-size", "4", "--n-val", "4",
           "--no-progress", "--hparam", "width=8", "--hparam", "modes=4", "--hparam", "n_layers=2"]


def _copy(src: Path, dst: Path) -> Path:
    """A copy made in a probe's set-up (its digest is the probe's baseline)."""
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    BASELINE[dst] = _digest(dst)
    return dst


def _mutated(src: Path, dst: Path, how: str, seed: int = 0) -> Path:
    """A copy of ``src`` truncated to half, with bytes flipped, or empty."""
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        rng = np.random.default_rng(seed)
        for i in rng.integers(len(data) // 4, len(data), 64):
            data[i] ^= 0xFF
    elif how == "empty":
        data = bytearray()
    elif how == "random":
        data = bytearray(np.random.default_rng(seed).bytes(4096))
    dst.write_bytes(bytes(data))
    return dst


# ------------------------------------------------------------------------------ checks


def _finite(*arrays) -> bool:
    return all(np.isfinite(np.asarray(a)).all() for a in arrays)


def _ok(result: Result) -> bool:
    return result.code == 0


# ------------------------------------------------------------------------------ the probes


def probes(fx: Fixtures) -> list[Probe]:
    import pde_data

    P: list[Probe] = []

    def cli(area, name, module, *argv, expect="error", guard=None, no_debris=None,
            refusal_ok=False):
        def run(d):
            return command(module, *[a(d) if callable(a) else a for a in argv])
        P.append(Probe(area, name, run, expect, guard, no_debris, refusal_ok))

    def api(area, name, fn, expect="error", guard=None, no_debris=None, refusal_ok=False,
            names=None):
        P.append(Probe(area, name, fn, expect, guard, no_debris, refusal_ok, names))

    def existing(name, text="keep me\n"):
        """An existing output: a folder (``name/`` or ``.zarr``) holding a file, or a file."""
        def make(d):
            p = d / name.rstrip("/")
            if p.suffix == ".zarr" or name.endswith("/"):
                p.mkdir()
                (p / "keep.txt").write_text(text)
                BASELINE[p / "keep.txt"] = _digest(p / "keep.txt")
            else:
                p.write_text(text)
            BASELINE[p] = _digest(p)
            return p
        return make

    def out_of(name):
        return lambda d: d / name

    gen = ["generate", "darcy", "--no-progress"]
    base = [*gen, "--n", "2", "--resolution", "9", "--seed", "0"]

    # ---- pde_data generate ---------------------------------------------------------------
    area = "cli: pde_data generate"
    cli(area, "--n 0", "pde_data", *gen, "--n", "0", "--resolution", "9", "--out", out_of("x.nc"))
    cli(area, "--n -3", "pde_data", *gen, "--n", "-3", "--resolution", "9", "--out", out_of("x.nc"))
    cli(area, "--n 2.5", "pde_data", *gen, "--n", "2.5", "--resolution", "9", "--out", out_of("x.nc"))
    cli(area, "--resolution 1", "pde_data", *gen, "--n", "2", "--resolution", "1", "--out", out_of("x.nc"))
    cli(area, "--resolution 0", "pde_data", *gen, "--n", "2", "--resolution", "0", "--out", out_of("x.nc"))
    cli(area, "--resolution abc", "pde_data", *gen, "--n", "2", "--resolution", "abc", "--out", out_of("x.nc"))
    cli(area, "--chunk-size 0", "pde_data", *base, "--chunk-size", "0", "--out", out_of("x.nc"))
    cli(area, "--solve-resolution below --resolution", "pde_data", *base,
        "--solve-resolution", "5", "--out", out_of("x.nc"))
    cli(area, "--solve-resolution not a refinement", "pde_data", *base,
        "--solve-resolution", "12", "--out", out_of("x.nc"))
    cli(area, "unknown pde", "pde_data", "generate", "heat", "--n", "2", "--resolution", "9",
        "--out", out_of("x.nc"))
    cli(area, "--out .txt", "pde_data", *base, "--out", out_of("x.txt"),
        no_debris=lambda d: [d / "x.txt", d / "x.txt.partial"])
    cli(area, "--out .h5 (refused before solving)", "pde_data", *base, "--out", out_of("x.h5"),
        no_debris=lambda d: [d / "x.h5", d / "x.h5.partial"])
    cli(area, "--out existing .nc without --overwrite", "pde_data", *base, "--out",
        existing("old.nc"), guard=lambda d: [d / "old.nc"])
    cli(area, "--out existing .zarr without --overwrite", "pde_data", *base, "--out",
        existing("old.zarr"), guard=lambda d: [d / "old.zarr"])
    cli(area, "--out existing directory named .nc", "pde_data", *base, "--out",
        existing("dir.nc/"), guard=lambda d: [d / "dir.nc"])
    cli(area, "burgers --nu -1", "pde_data", "generate", "burgers", "--n", "2", "--resolution",
        "16", "--nu", "-1", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "burgers --nu nan", "pde_data", "generate", "burgers", "--n", "2", "--resolution",
        "16", "--nu", "nan", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "burgers --times decreasing", "pde_data", "generate", "burgers", "--n", "2",
        "--resolution", "16", "--times", "1,0.5", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "burgers --times garbage", "pde_data", "generate", "burgers", "--n", "2",
        "--resolution", "16", "--times", "a:b", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "burgers --dt 0", "pde_data", "generate", "burgers", "--n", "2", "--resolution",
        "16", "--dt", "0", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "burgers odd resolution", "pde_data", "generate", "burgers", "--n", "2",
        "--resolution", "15", "--no-progress", "--out", out_of("b.nc"))
    cli(area, "--shard 2/2", "pde_data", *base, "--shard", "2/2", "--out", out_of("x.zarr"))
    cli(area, "--shard 1/0", "pde_data", *base, "--shard", "1/0", "--out", out_of("x.zarr"))
    cli(area, "--shard on .nc", "pde_data", *base, "--shard", "0/2", "--out", out_of("x.nc"))
    cli(area, "--out into a missing folder (created)", "pde_data", *base, "--out",
        out_of("new/sub/x.nc"), expect=_ok)
    # ---- pde_data info / convert ---------------------------------------------------------
    area = "cli: pde_data info/convert"
    cli(area, "info missing file", "pde_data", "info", out_of("none.nc"))
    cli(area, "info empty .nc", "pde_data", "info", lambda d: _mutated(fx.train, d / "e.nc", "empty"))
    cli(area, "info .txt", "pde_data", "info", fx.text)
    cli(area, "info a folder named .nc", "pde_data", "info", existing("dir.nc/"))
    cli(area, "info corrupt zarr chunk", "pde_data", "info", fx.bad_chunk)
    cli(area, "info file with NaN shows it", "pde_data", "info", fx.nan,
        expect=lambda r: _ok(r) and "nan" in r.out.lower())
    cli(area, "info malicious .pt", "pde_data", "info", fx.pt_dir / "malicious.pt")
    cli(area, "convert to an existing file", "pde_data", "convert", fx.train, existing("o.nc"),
        guard=lambda d: [d / "o.nc"])
    cli(area, "convert onto itself", "pde_data", "convert", lambda d: _copy(fx.train, d / "s.nc"),
        lambda d: d / "s.nc", guard=lambda d: [d / "s.nc"])
    cli(area, "convert to .txt", "pde_data", "convert", fx.train, out_of("o.txt"),
        no_debris=lambda d: [d / "o.txt"])
    cli(area, "convert missing input", "pde_data", "convert", out_of("none.nc"), out_of("o.nc"),
        no_debris=lambda d: [d / "o.nc"])
    cli(area, "convert corrupt zarr chunk", "pde_data", "convert", fx.bad_chunk, out_of("o.nc"),
        no_debris=lambda d: [d / "o.nc"])
    cli(area, "convert .mat -> .nc (correct)", "pde_data", "convert", fx.mat, out_of("m.nc"),
        expect=_ok)
    cli(area, "convert bool darcy .pt -> .zarr (correct)", "pde_data", "convert",
        fx.pt_dir / "darcy_tiny.pt", out_of("p.zarr"), expect=_ok)
    cli(area, "unknown verb", "pde_data", "solve")

    # ---- readers (pde_data.load) ---------------------------------------------------------
    area = "api: pde_data.load"
    sources = {".nc": fx.train, ".mat": fx.mat, ".pt": fx.pt_dir / "darcy_tiny.pt",
               ".h5": None}
    for suffix, src in sources.items():
        for how in ("empty", "random", "truncated", "flipped"):
            if src is None and how in ("truncated", "flipped"):
                continue

            def run(d, suffix=suffix, src=src, how=how):
                source = src if src is not None else fx.train  # an HDF5 file (netCDF-4)
                return pde_data.load(_mutated(source, d / f"f{suffix}", how)).load()
            # a flipped file may still hold a readable dataset: then the values must be finite
            # or differ visibly; a named error is right too
            api(area, f"{how} {suffix}", run, refusal_ok=True,
                expect="error" if how != "flipped" else (lambda ds: ds is not None))
    api(area, "missing file", lambda d: pde_data.load(d / "none.nc"))
    api(area, "unknown extension", lambda d: pde_data.load(fx.text))
    api(area, "corrupt zarr chunk", lambda d: pde_data.load(fx.bad_chunk).load())
    api(area, "zarr folder without metadata", lambda d: pde_data.load(existing("x.zarr")(d)))
    api(area, "malicious .pt runs no code", lambda d: pde_data.load(fx.pt_dir / "malicious.pt"))
    api(area, "stride-0 .pt bounded", lambda d: pde_data.load(_stride0_pt(d)).load())
    api(area, "zip bomb .pt bounded", lambda d: pde_data.load(_zip_bomb_pt(d)).load())
    api(area, "bool darcy .pt reads as bool (correct)",
        lambda d: pde_data.load(fx.pt_dir / "darcy_tiny.pt"),
        expect=lambda ds: ds["a"].dtype == bool or set(np.unique(ds["a"].values)) <= {0, 1})
    api(area, "NaN data loads as stored (correct)", lambda d: pde_data.load(fx.nan).load(),
        expect=lambda ds: int(np.isnan(ds["a"].values).sum()) == 1)
    api(area, "save to .txt", lambda d: pde_data.save(pde_data.load(fx.train), d / "x.txt"),
        no_debris=lambda d: [d / "x.txt"])
    api(area, "save a non-dataset", lambda d: pde_data.save({"a": 1}, d / "x.nc"),
        no_debris=lambda d: [d / "x.nc"])

    # ---- point-set files -----------------------------------------------------------------
    area = "api: pde_data.points"
    from pde_data.points import load_point_sets, save_point_sets

    api(area, "x without a feature axis", lambda d: load_point_sets(fx.points_bad))
    api(area, "y missing", lambda d: load_point_sets(fx.points_bad))
    api(area, "NaN targets", lambda d: load_point_sets(fx.points_nan))
    api(area, "save NaN x", lambda d: save_point_sets(np.full((2, 3, 1), np.nan),
                                                       np.zeros((2, 3)), d / "p.nc"))
    api(area, "save mismatched tasks", lambda d: save_point_sets(np.zeros((2, 3, 1)),
                                                                  np.zeros((3, 3)), d / "p.nc"))
    api(area, "save .txt", lambda d: save_point_sets(np.zeros((2, 3, 1)), np.zeros((2, 3)),
                                                      d / "p.txt"))

    # ---- solvers -------------------------------------------------------------------------
    area = "api: solvers"
    from pde_data import burgers, darcy, navier_stokes

    ones = np.ones((9, 9))
    api(area, "darcy a with NaN", lambda d: darcy.solve(np.where(np.eye(9) > 0, np.nan, 1.0)))
    api(area, "darcy a = 0", lambda d: darcy.solve(np.zeros((9, 9))))
    api(area, "darcy a < 0", lambda d: darcy.solve(-ones))
    api(area, "darcy a = inf", lambda d: darcy.solve(np.full((9, 9), np.inf)))
    api(area, "darcy a = 1e-300 (u = u1 * 1e300)", lambda d: darcy.solve(np.full((9, 9), 1e-300)),
        expect=lambda u: _finite(u) and np.allclose(u * 1e-300, darcy.solve(ones), rtol=1e-10))
    api(area, "darcy a = 1e300 (u = u1 / 1e300)", lambda d: darcy.solve(np.full((9, 9), 1e300)),
        expect=lambda u: _finite(u) and np.allclose(u * 1e300, darcy.solve(ones), rtol=1e-10))
    api(area, "darcy f = 1e308", lambda d: darcy.solve(ones, f=1e308))
    api(area, "darcy 2x2 grid", lambda d: darcy.solve(np.ones((2, 2))))
    api(area, "darcy 1-D a", lambda d: darcy.solve(np.ones(9)))
    api(area, "darcy non-square a", lambda d: darcy.solve(np.ones((9, 7))))
    api(area, "darcy string a", lambda d: darcy.solve("a"))
    api(area, "darcy a = 2 halves u (correct)", lambda d: darcy.solve(2 * ones),
        expect=lambda u: np.allclose(2 * u, darcy.solve(ones), rtol=1e-12))
    u0 = np.sin(2 * np.pi * np.arange(16) / 16)
    api(area, "burgers u0 with NaN", lambda d: burgers.solve(np.where(u0 > 0.9, np.nan, u0)))
    api(area, "burgers u0 = 1e30", lambda d: burgers.solve(u0 * 1e30))
    api(area, "burgers nu = 0", lambda d: burgers.solve(u0, nu=0.0))
    api(area, "burgers t < 0", lambda d: burgers.solve(u0, t=-1.0))
    api(area, "burgers t = nan", lambda d: burgers.solve(u0, t=float("nan")))
    api(area, "burgers odd grid", lambda d: burgers.solve(u0[:15]))
    api(area, "burgers t = 0 returns u0 (correct)", lambda d: burgers.solve(u0, t=0.0),
        expect=lambda u: np.allclose(u, u0, atol=1e-12))
    w0 = np.sin(2 * np.pi * np.arange(16) / 16)[:, None] * np.ones(16)
    api(area, "navier_stokes w0 = inf", lambda d: navier_stokes.solve(np.full((16, 16), np.inf)))
    api(area, "navier_stokes w0 = 1e30", lambda d: navier_stokes.solve(w0 * 1e30, t=0.1))
    api(area, "navier_stokes nu < 0", lambda d: navier_stokes.solve(w0, nu=-1e-3))
    api(area, "navier_stokes dt = 0", lambda d: navier_stokes.solve(w0, dt=0.0))
    api(area, "navier_stokes 1-D w0", lambda d: navier_stokes.solve(np.ones(16)))
    api(area, "darcy.generate n = 0", lambda d: pde_data.darcy.generate(0, 0, 9))
    api(area, "darcy.generate resolution 2", lambda d: pde_data.darcy.generate(0, 2, 2))
    api(area, "grf negative alpha", lambda d: pde_data.grf.sample(0, 2, 16, dim=2, alpha=-1.0,
                                                                   tau=3.0))

    # ---- operators train -----------------------------------------------------------------
    area = "cli: operators train"

    def op(name, *extra, expect="error", data=None, guard=None, debris_ok=False):
        cli(area, name, "operators", "train", "--data", data or fx.train, "--out",
            out_of("run"), *OP_TINY, *extra, expect=expect, guard=guard,
            no_debris=None if debris_ok else (lambda d: [d / "run"]))

    op("--batch-size 0", "--batch-size", "0")
    op("--batch-size -4", "--batch-size", "-4")
    op("--lr nan", "--lr", "nan")
    op("--lr -1", "--lr", "-1")
    op("--lr 0", "--lr", "0")
    op("--lr 1e30 (diverges: no NaN checkpoint)", "--lr", "1e30", "--schedule", "constant",
       debris_ok=True)
    op("--epochs 0", "--epochs", "0")
    op("--epochs -1", "--epochs", "-1")
    op("--weight-decay inf", "--weight-decay", "inf")
    op("--n-val 24 (all samples)", "--n-val", "24")
    op("--n-val -1", "--n-val", "-1")
    op("--n-train 0", "--n-train", "0")
    op("--n-train 100 of 24", "--n-train", "100")
    op("--checkpoint-every 0", "--checkpoint-every", "0")
    op("--max-steps 0", "--max-steps", "0")
    op("--plot-samples -1", "--plot-samples", "-1")
    op("unknown model", "--model", "resnet")
    op("--hparam bad JSON", "--hparam", "width=[")
    op("--hparam unknown key", "--hparam", "depth=3")
    op("--hparam width=-8", "--hparam", "width=-8")
    op("--hparam modes=0", "--hparam", "modes=0")
    op("--hparam width=nan", "--hparam", "width=NaN")
    op("--inputs unknown variable", "--inputs", "q")
    op("--outputs = --inputs (an identity map: valid)", "--outputs", "a", expect=_ok)
    op("--test missing file (before training)", "--test", str(fx.root / "none.nc"))
    op("--test .txt", "--test", str(fx.text))
    op("--data missing", data=fx.root / "none.nc")
    op("--data .txt", data=fx.text)
    op("--data with NaN", data=fx.nan)
    op("--data 1e30 inputs (normalised: valid)", data=fx.huge, expect=_ok)
    op("--data corrupt zarr chunk", data=fx.bad_chunk)
    op("--data inputs only", data=fx.inputs_only)
    cli(area, "--out is an existing file", "operators", "train", "--data", fx.train, "--out",
        existing("file.run"), *OP_TINY, guard=lambda d: [d / "file.run"])
    cli(area, "--out is a folder of other files (kept)", "operators", "train", "--data",
        fx.train, "--out", existing("mine/"), *OP_TINY, guard=lambda d: [d / "mine" / "keep.txt"],
        expect=_ok)
    cli(area, "changed arguments on an existing run", "operators", "train", "--data", fx.train,
        "--out", lambda d: fx.copy_run("operators", d / "run"), *OP_TINY[:-6],
        "--hparam", "width=12", "--hparam", "modes=4", "--hparam", "n_layers=2")
    cli(area, "resume after the data file was replaced", "operators", "train", "--data",
        lambda d: _replaced_data(fx, d), "--out", lambda d: _op_run_on(fx, d), *OP_TINY)
    cli(area, "bool darcy .pt trains (correct)", "operators", "train", "--data",
        fx.pt_dir / "darcy_tiny.pt", "--out", out_of("run"), "--model", "fno", "--epochs", "1",
        "--batch-size", "2", "--n-val", "1", "--no-progress", "--hparam", "width=8",
        "--hparam", "modes=2", "--hparam", "n_layers=1", expect=_ok)

    area = "cli: operators evaluate/predict"
    cli(area, "evaluate a missing run", "operators", "evaluate", "--run", out_of("none"),
        "--data", fx.test, no_debris=lambda d: [d / "none"])
    cli(area, "evaluate a folder that is not a run", "operators", "evaluate", "--run",
        existing("folder/"), "--data", fx.test)
    cli(area, "evaluate with --batch-size 0", "operators", "evaluate", "--run",
        lambda d: fx.runs["operators"], "--data", fx.test, "--batch-size", "0")
    cli(area, "evaluate data without targets", "operators", "evaluate", "--run",
        lambda d: fx.runs["operators"], "--data", fx.inputs_only)
    cli(area, "evaluate --plot existing", "operators", "evaluate", "--run",
        lambda d: fx.runs["operators"], "--data", fx.test, "--plot", existing("p.png"),
        guard=lambda d: [d / "p.png"])
    cli(area, "predict --out existing", "operators", "predict", "--run",
        lambda d: fx.runs["operators"], "--data", fx.inputs_only, "--out", existing("p.nc"),
        guard=lambda d: [d / "p.nc"])
    cli(area, "predict --out .txt", "operators", "predict", "--run",
        lambda d: fx.runs["operators"], "--data", fx.inputs_only, "--out", out_of("p.txt"))
    cli(area, "predict data with NaN", "operators", "predict", "--run",
        lambda d: fx.runs["operators"], "--data", fx.nan, "--out", out_of("p.nc"),
        no_debris=lambda d: [d / "p.nc"])
    cli(area, "predict inputs only (correct)", "operators", "predict", "--run",
        lambda d: fx.runs["operators"], "--data", fx.inputs_only, "--out", out_of("p.nc"),
        expect=_ok)

    area = "api: operators"
    from flax import nnx

    import operators

    api(area, "build unknown model", lambda d: operators.build_model("resnet", in_channels=1,
                                                                     out_channels=1,
                                                                     rngs=nnx.Rngs(0)))
    api(area, "build fno in_channels=0", lambda d: operators.build_model(
        "fno", in_channels=0, out_channels=1, rngs=nnx.Rngs(0)))
    api(area, "fno on a batch of 0 samples", lambda d: _tiny_fno()(np.zeros((0, 8, 8, 1),
                                                                          np.float32)),
        expect=lambda y: np.asarray(y).shape[0] == 0, refusal_ok=True)
    api(area, "fno on wrong channels", lambda d: _tiny_fno()(np.zeros((1, 8, 8, 3), np.float32)))
    api(area, "fno on wrong rank", lambda d: _tiny_fno()(np.zeros((8, 8), np.float32)))
    api(area, "load_run of a missing folder", lambda d: operators.load_run(d / "none"),
        no_debris=lambda d: [d / "none"])

    # ---- pfn -----------------------------------------------------------------------------
    area = "cli: pfn train"

    def pfn_train(name, *extra, expect="error"):
        cli(area, name, "pfn", "train", "--prior", "gp-rbf", "--out", out_of("run"), "--quiet",
            *PFN_TINY, *extra, expect=expect, no_debris=lambda d: [d / "run"])

    pfn_train("--batch-size 0", "--batch-size", "0")
    pfn_train("--steps 0", "--steps", "0")
    pfn_train("--steps -5", "--steps", "-5")
    pfn_train("--lr nan", "--lr", "nan")
    pfn_train("--lr -1", "--lr", "-1")
    pfn_train("--n-heads 3 of d-model 16", "--n-heads", "3")
    pfn_train("--n-buckets 1", "--n-buckets", "1")
    pfn_train("--log-every 0", "--log-every", "0")
    pfn_train("--checkpoint-every 0", "--checkpoint-every", "0")
    pfn_train("--max-context 0", "--max-context", "0")
    pfn_train("--min-context > --max-context", "--min-context", "20")
    pfn_train("--warmup -1", "--warmup", "-1")
    cli(area, "--lr 1e30 (diverges: no NaN checkpoint)", "pfn", "train", "--prior", "gp-rbf",
        "--out", out_of("run"), "--quiet", *PFN_TINY, "--lr", "1e30", "--warmup", "0")
    pfn_train("--clip nan", "--clip", "nan")
    pfn_train("--prior-option bad JSON", "--prior-option", "lengthscale=[")
    pfn_train("--prior-option unknown key", "--prior-option", "colour=1")
    pfn_train("--prior-option lengthscale=-1", "--prior-option", "lengthscale=-1")
    pfn_train("--prior-option lengthscale=nan", "--prior-option", "lengthscale=NaN")
    cli(area, "unknown prior", "pfn", "train", "--prior", "gp-xyz", "--out", out_of("run"),
        "--quiet", *PFN_TINY, no_debris=lambda d: [d / "run"])
    cli(area, "--data missing", "pfn", "train", "--data", out_of("none.nc"), "--out",
        out_of("run"), "--quiet", *PFN_TINY, no_debris=lambda d: [d / "run"])
    cli(area, "--data NaN targets", "pfn", "train", "--data", fx.points_nan, "--out",
        out_of("run"), "--quiet", *PFN_TINY, no_debris=lambda d: [d / "run"])
    cli(area, "changed arguments on an existing run", "pfn", "train", "--prior", "gp-rbf",
        "--out", lambda d: fx.copy_run("pfn", d / "run"), "--quiet", *PFN_TINY[:-2],
        "--log-every", "1")

    area = "cli: pfn export/evaluate"
    cli(area, "export with a traversal name", "pfn", "export", lambda d: fx.runs["pfn"],
        "../../escape", no_debris=lambda d: [d.parent / "escape", ROOT / "escape"])
    cli(area, "export with an absolute name", "pfn", "export", lambda d: fx.runs["pfn"],
        lambda d: str(d / "abs"), no_debris=lambda d: [d / "abs"])
    cli(area, "export over an existing export", "pfn", "export", lambda d: fx.runs["pfn"],
        "m", "--dest", existing("m/"), guard=lambda d: [d / "m"])
    cli(area, "export of a missing run", "pfn", "export", out_of("none"), "m", "--dest",
        out_of("m"), no_debris=lambda d: [d / "none", d / "m"])
    cli(area, "evaluate a missing model", "pfn", "evaluate", "--model", out_of("none"),
        no_debris=lambda d: [d / "none"])
    cli(area, "evaluate --n-datasets 0", "pfn", "evaluate", "--model", "gp-rbf",
        "--n-datasets", "0")
    cli(area, "evaluate --contexts garbage", "pfn", "evaluate", "--model", "gp-rbf",
        "--contexts", "a,b")

    area = "api: pfn estimators"
    import pfn

    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 1, (8, 1)), np.sin(6 * rng.uniform(0, 1, 8))

    def reg():
        return pfn.PFNRegressor(model="gp-rbf")

    api(area, "fit NaN X", lambda d: reg().fit(np.full((8, 1), np.nan), y))
    api(area, "fit NaN y", lambda d: reg().fit(X, np.where(y > 0, np.nan, y)))
    api(area, "fit 0 rows", lambda d: reg().fit(np.zeros((0, 1)), np.zeros(0)))
    api(area, "fit 1e30 X", lambda d: reg().fit(X * 1e30, y).predict(X * 1e30))
    api(area, "fit 1e30 y", lambda d: reg().fit(X, y * 1e30).predict(X), names=" y")
    api(area, "fit 500 rows (> 100)", lambda d: reg().fit(rng.uniform(0, 1, (500, 1)),
                                                          rng.normal(size=500)).predict(X))
    api(area, "fit 3 features on a 1-D model", lambda d: reg().fit(rng.uniform(0, 1, (8, 3)), y)
        .predict(rng.uniform(0, 1, (4, 3))))
    api(area, "predict with other features", lambda d: reg().fit(X, y).predict(np.zeros((2, 2))))
    api(area, "fit X/y length mismatch", lambda d: reg().fit(X, y[:5]))
    api(area, "unknown model name", lambda d: reg().set_params(model="gp-xyz").fit(X, y))
    api(area, "model name with traversal", lambda d: pfn.from_pretrained("../../etc"))
    api(area, "constant y (correct: finite, mean ~ y)", lambda d: reg().fit(X, np.full(8, 3.0))
        .predict(X), expect=lambda m: _finite(m) and np.allclose(m, 3.0, atol=0.5))
    api(area, "duplicate rows (correct: finite)", lambda d: reg().fit(np.repeat(X[:4], 2, 0),
                                                                       np.repeat(y[:4], 2))
        .predict(X), expect=_finite)
    api(area, "classifier mixed label types", lambda d: pfn.PFNClassifier(model="tabular").fit(
        rng.uniform(0, 1, (6, 2)), np.array([1, "a", 1, "a", 2, 2], dtype=object)))
    api(area, "classifier one class (correct: always it)", lambda d: pfn.PFNClassifier(
        model="tabular").fit(rng.uniform(0, 1, (6, 2)), np.ones(6, int)).predict(
        rng.uniform(0, 1, (3, 2))), expect=lambda p: (np.asarray(p) == 1).all())
    api(area, "classifier 30 classes (> 10)", lambda d: pfn.PFNClassifier(model="tabular").fit(
        rng.uniform(0, 1, (60, 2)), np.arange(60) % 30))
    api(area, "classifier inf X", lambda d: pfn.PFNClassifier(model="tabular").fit(
        np.full((6, 2), np.inf), np.arange(6) % 2))

    # ---- neural processes ----------------------------------------------------------------
    area = "cli: neural_processes train"

    def np_train(name, *extra, expect="error"):
        cli(area, name, "neural_processes", "train", "--out", out_of("run"), *NP_TINY, *extra,
            expect=expect, no_debris=lambda d: [d / "run"])

    np_train("--steps 0", "--steps", "0")
    np_train("--batch-size 0", "--batch-size", "0")
    np_train("--batch-size -1", "--batch-size", "-1")
    np_train("--lr nan", "--lr", "nan")
    np_train("--lr -1", "--lr", "-1")
    cli(area, "--lr 1e30 (diverges: no NaN checkpoint)", "neural_processes", "train", "--out",
        out_of("run"), *NP_TINY, "--lr", "1e30")
    np_train("--log-every 0", "--log-every", "0")
    np_train("--ckpt-every 0", "--ckpt-every", "0")
    np_train("--width 0", "--width", "0")
    np_train("--heads 3 of width 16 (anp)", "--model", "anp", "--heads", "3")
    np_train("--min-std -1", "--min-std", "-1")
    np_train("--train-samples 0", "--train-samples", "0")
    np_train("--time-limit -1", "--time-limit", "-1")
    np_train("--data unknown", "--data", "sines")
    np_train("--data missing file", "--data", str(fx.root / "none.nc"))
    np_train("--data NaN targets", "--data", str(fx.points_nan))
    np_train("--data bad layout", "--data", str(fx.points_bad))
    np_train("--max-context > points", "--data", str(fx.points), "--max-context", "40")
    np_train("--n-points 1", "--data", str(fx.points), "--n-points", "1")
    cli(area, "changed arguments on an existing run", "neural_processes", "train", "--out",
        lambda d: fx.copy_run("np", d / "run"), *NP_TINY[:-8], "--width", "32",
        "--enc-depth", "2", "--dec-depth", "2", "--heads", "2")

    area = "cli: neural_processes export/evaluate/predict"
    cli(area, "export with a traversal name", "neural_processes", "export",
        lambda d: fx.runs["np"], "../../escape",
        no_debris=lambda d: [d.parent / "escape", ROOT / "escape"])
    cli(area, "export over an existing export", "neural_processes", "export",
        lambda d: fx.runs["np"], "m", "--dest", existing("m/"), guard=lambda d: [d / "m"])
    cli(area, "export of a missing run", "neural_processes", "export", out_of("none"), "m",
        "--dest", out_of("m"), no_debris=lambda d: [d / "none", d / "m"])
    cli(area, "evaluate a missing run", "neural_processes", "evaluate", "--run", out_of("none"),
        no_debris=lambda d: [d / "none"])
    cli(area, "evaluate --n-tasks 0", "neural_processes", "evaluate", "--run",
        lambda d: fx.runs["np"], "--n-tasks", "0", "--no-plot")
    cli(area, "predict --out existing", "neural_processes", "predict", "--model",
        lambda d: fx.runs["np"], "--data", fx.points, "--n-context", "4", "--out",
        existing("p.nc"), guard=lambda d: [d / "p.nc"])
    cli(area, "predict --n-context -1", "neural_processes", "predict", "--model",
        lambda d: fx.runs["np"], "--data", fx.points, "--n-context", "-1", "--out",
        out_of("p.nc"))
    cli(area, "predict --n-context > points", "neural_processes", "predict", "--model",
        lambda d: fx.runs["np"], "--data", fx.points, "--n-context", "99", "--out",
        out_of("p.nc"), no_debris=lambda d: [d / "p.nc"])
    cli(area, "predict unknown model", "neural_processes", "predict", "--model", "xyz",
        "--data", fx.points, "--n-context", "4", "--out", out_of("p.nc"))
    cli(area, "predict (correct)", "neural_processes", "predict", "--model",
        lambda d: fx.runs["np"], "--data", fx.points, "--n-context", "4", "--out",
        out_of("p.nc"), expect=_ok)

    area = "api: neural_processes"
    import neural_processes as nps

    xc = np.linspace(-1, 1, 6)[None, :, None].astype(np.float32)
    yc = np.sin(3 * xc[..., 0])[..., None]
    xt = np.linspace(-1, 1, 5)[None, :, None].astype(np.float32)

    def anp():
        return nps.from_pretrained("anp-rbf")

    api(area, "NaN context", lambda d: anp()(xc, np.full_like(yc, np.nan), xt))
    api(area, "1e30 context", lambda d: anp()(xc * 1e30, yc, xt))
    api(area, "1e30 targets", lambda d: anp()(xc, yc, xt * 1e30))
    api(area, "x/y length mismatch", lambda d: anp()(xc, yc[:, :3], xt))
    api(area, "x_dim 2 on a 1-D model", lambda d: anp()(np.zeros((1, 6, 2), np.float32), yc,
                                                          np.zeros((1, 5, 2), np.float32)))
    api(area, "0 target points", lambda d: anp()(xc, yc, xt[:, :0]),
        expect=lambda r: np.asarray(r[0]).shape[1] == 0, refusal_ok=True)
    api(area, "0 context points", lambda d: anp()(xc[:, :0], yc[:, :0], xt),
        expect=lambda r: _finite(*r), refusal_ok=True)
    api(area, "batch of 0 tasks", lambda d: anp()(xc[:0], yc[:0], xt[:0]),
        expect=lambda r: np.asarray(r[0]).shape[0] == 0, refusal_ok=True)
    api(area, "unknown shipped name", lambda d: nps.from_pretrained("xyz"))
    api(area, "shipped name with traversal", lambda d: nps.from_pretrained("../../etc"))

    # ---- opbayes -------------------------------------------------------------------------
    area = "cli: opbayes"
    cli(area, "unknown verb", "opbayes", "frobnicate")
    cli(area, "demo --n-train 0", "opbayes", "demo", "--n-train", "0", "--out", out_of("demo"),
        no_debris=lambda d: [d / "demo"])
    cli(area, "demo --epochs -1", "opbayes", "demo", "--epochs", "-1", "--out", out_of("demo"),
        no_debris=lambda d: [d / "demo"])
    cli(area, "demo --out is a file", "opbayes", "demo", "--out", existing("demo.txt"),
        "--n-train", "8", "--epochs", "1", guard=lambda d: [d / "demo.txt"])
    return P


def _tiny_fno():
    from flax import nnx

    import operators

    return operators.build_model("fno", in_channels=1, out_channels=1, width=8, modes=2,
                                 n_layers=1, rngs=nnx.Rngs(0))


def _replaced_data(fx: Fixtures, d: Path) -> Path:
    return d / "data.nc"


def _op_run_on(fx: Fixtures, d: Path) -> Path:
    """A run trained on ``d/data.nc`` (a copy of the train file) whose file is then replaced by
    other samples; the probe resumes it with a larger budget."""
    import pde_data

    shutil.copy(fx.train, d / "data.nc")
    run = fx.copy_run("operators", d / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"] = str(d / "data.nc")
    (run / "config.json").write_text(json.dumps(cfg))
    pde_data.save(pde_data.darcy.generate(5, 24, 16), d / "data.nc")
    return run


def _stride0_pt(d: Path) -> Path:
    """A tiny ``.pt`` whose one tensor views a 1-element storage with stride 0 as 10^8
    elements (the issue's 425-byte file that expanded to 418 MB)."""
    sys.path.insert(0, str(ROOT / "tests" / "pde_data"))
    from ptfiles import archive, tensor_opcodes

    item = tensor_opcodes("0", "FloatStorage", 1, 0, (10_000, 10_000), (0, 0))
    path = d / "stride0.pt"
    path.write_bytes(archive({"a": item, "u": item}, {"0": np.zeros(1, np.float32).tobytes()}))
    return path


def _zip_bomb_pt(d: Path) -> Path:
    """A ``.pt`` zip whose storage of 100 M zeros deflates to a few hundred kB."""
    sys.path.insert(0, str(ROOT / "tests" / "pde_data"))
    import zipfile

    from ptfiles import archive, tensor_opcodes

    n = 100_000_000
    item = tensor_opcodes("0", "FloatStorage", n, 0, (n,), (1,))
    raw = archive({"a": item, "u": item}, {"0": b""})
    path = d / "bomb.pt"
    # rewrite the archive with a deflated storage of n float32 zeros
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                with dst.open(info.filename, "w", force_zip64=True) as f:
                    block = bytes(1 << 24)
                    for _ in range(n * 4 // len(block)):
                        f.write(block)
            else:
                dst.writestr(info.filename, data)
    return path


# ------------------------------------------------------------------------------ main


def table(outcomes: list[Outcome]) -> list[dict]:
    rows = []
    areas = list(dict.fromkeys(o.area for o in outcomes))
    for area in [*areas, "total"]:
        mine = [o for o in outcomes if area in ("total", o.area)]
        counts = Counter(o.outcome for o in mine)
        rows.append({"area": area, "tried": len(mine), **{c: counts.get(c, 0) for c in CLASSES}})
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| area | tried | " + " | ".join(c.replace("_", " ") for c in CLASSES) + " |"
    lines = [head, "|" + "---|" * (len(CLASSES) + 2)]
    for r in rows:
        lines.append(f"| {r['area']} | {r['tried']} | "
                     + " | ".join(str(r[c]) for c in CLASSES) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "probes_bad_input.json"))
    parser.add_argument("--only", default=None, help="run the probes whose area contains this")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="opbayes-probes-") as tmp:
        work = Path(tmp)
        fx = Fixtures(work / "fixtures")
        if args.only != "fixtures":
            fx.train_runs()
        print(f"fixtures ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        todo = [p for p in probes(fx) if args.only is None or args.only in p.area]
        cwd = os.getcwd()
        os.chdir(work)  # exports without --dest land in ./exports of the temporary folder
        try:
            outcomes = []
            for i, probe in enumerate(todo):
                o = run_probe(probe, work)
                o.detail = o.detail.replace(str(work), "$TMP")
                outcomes.append(o)
                print(f"[{i + 1}/{len(todo)}] {o.outcome:12s} {o.area}: {o.name}: {o.detail}",
                      file=sys.stderr)
        finally:
            os.chdir(cwd)
    rows = table(outcomes)
    result = {
        "issue": 16,
        "machine": f"{os.cpu_count()} CPU cores, {sys.platform}",
        "seconds": round(time.perf_counter() - t0, 1),
        "classes": list(CLASSES),
        "table": rows,
        "probes": [vars(o) for o in outcomes],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
