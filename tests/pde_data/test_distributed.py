"""Training over several processes (``--distributed``, ``pde_data.runs.distributed``).

Fast: the flags' checks and the one-process behaviour of the per-process helpers. Slow: for each
training command, 2 processes on 127.0.0.1 (CPU, gloo, 2 emulated devices each) against 1
process with 4 devices: the same losses and final parameters, one metrics row per logged step
written by process 0 alone, each process reading only its own rows of every global batch, and
``kill -9`` of both mid-run followed by the same command resuming to the same result.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pde_data.runs.cli import CommandParser, add_distributed_arguments, init_distributed

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("distributed_child.py")


# -- fast: flags and one-process helpers ---------------------------------------------------------
def _parse(*argv):
    parser = CommandParser(prog="t")
    add_distributed_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(("argv", "message"), [
    (["--coordinator", "127.0.0.1:1234"], "only apply with --distributed"),
    (["--distributed", "--coordinator", "127.0.0.1:1234"], "go together"),
    (["--distributed", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
     "HOST:PORT"),
    (["--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
     r"--process-id must be in \[0, 2\)"),
])
def test_bad_distributed_flags_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        init_distributed(_parse(*argv))


def test_without_distributed_nothing_is_joined():
    import jax

    init_distributed(_parse())
    assert not jax.distributed.is_initialized()


def test_one_process_reads_every_row():
    from pde_data import batches, sharding

    rows = np.arange(8)[::-1]
    assert sharding.process_rows(8) == slice(0, 8)
    np.testing.assert_array_equal(batches.own_rows(rows, True), rows)
    assert not sharding.spans_processes(sharding.data_mesh())
    with pytest.raises(ValueError, match="not divisible"):
        sharding.process_rows(3, sharding.data_mesh([sharding.jax.devices()[0]] * 2))


# -- slow: two processes against one -------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "JAX_PLATFORMS": "cpu", "OPBAYES_PROGRESS": "0",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def _start(package, argv, log, n_proc):
    """``n_proc`` processes of the command (``--distributed`` when more than one)."""
    if n_proc == 1:
        return [subprocess.Popen([sys.executable, str(CHILD), str(log), package, *argv],
                                 env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)]
    port = _free_port()
    return [subprocess.Popen(
        [sys.executable, str(CHILD), str(log), package, *argv, "--distributed", "--coordinator",
         f"127.0.0.1:{port}", "--num-processes", str(n_proc), "--process-id", str(i)],
        env=_env(4 // n_proc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(n_proc)]


def _finish(procs, timeout=600):
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outs


def _train(package, argv, log, n_proc):
    return _finish(_start(package, argv, log, n_proc))


def _steps(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "step" in r and "loss" in r]


def _final_params(run: Path) -> dict:
    import jax
    import orbax.checkpoint as ocp

    folder = max((run / "checkpoints").iterdir(), key=lambda p: int(p.name)) / "params"
    ckpt = ocp.StandardCheckpointer()
    meta = ckpt.metadata(folder.absolute()).item_metadata
    target = jax.tree_util.tree_map(lambda m: np.zeros(m.shape, m.dtype), meta)
    params = ckpt.restore(folder.absolute(), target)
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(params)}


def _records(log: Path, process: int) -> list[dict]:
    return [json.loads(line) for line in Path(f"{log}.{process}").read_text().splitlines()]


def _field_batches(log: Path, process: int) -> list[list[int]]:
    records = _records(log, process)
    first = records[0]["source"]  # x and y are read with the same rows: keep the x reads
    return [r["rows"] for r in records if r["source"] == first]


def _check_rows(kind: str, log_1: Path, log_2: Path, batch: int) -> None:
    """Process 0 and 1 read disjoint halves of every global batch of the one-process run."""
    if kind == "fields":
        one = _field_batches(log_1, 0)
        halves = [_field_batches(log_2, p) for p in (0, 1)]
        assert len(one) == len(halves[0]) == len(halves[1]) > 0
        for whole, a, b in zip(one, *halves, strict=True):
            assert len(a) == len(b) == batch // 2
            assert not set(a) & set(b)
            assert sorted(a + b) == sorted(whole)
        return
    one = {r["step"]: r for r in _records(log_1, 0)}
    halves = [{r["step"]: r for r in _records(log_2, p)} for p in (0, 1)]
    steps = sorted(set(halves[0]) & set(halves[1]))
    assert steps and set(steps) <= set(one)
    for s in steps:
        a, b = halves[0][s], halves[1][s]
        assert all(n == batch // 2 for n in a["sizes"] + b["sizes"]), (a["sizes"], b["sizes"])
        np.testing.assert_allclose(a["sums"] + b["sums"], one[s]["sums"], rtol=1e-5, atol=1e-6)


def _same_run(run_a: Path, run_b: Path) -> None:
    rows_a, rows_b = _steps(run_a), _steps(run_b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    np.testing.assert_allclose([r["loss"] for r in rows_a], [r["loss"] for r in rows_b],
                               rtol=1e-4)
    _close_params(_final_params(run_a), _final_params(run_b))


def _close_params(pa: dict, pb: dict) -> None:
    """The parameters agree as one vector to 1e-3 of its norm. Leaf by leaf would test float
    noise: a gradient that is zero in exact arithmetic (an attention key bias shifts every
    logit of a query alike) is a rounding residue whose sign follows the all-reduce order, and
    Adam turns it into steps of the learning rate's size."""
    assert pa.keys() == pb.keys()
    diff = np.sqrt(sum(np.sum((pa[k] - pb[k]) ** 2) for k in pa))
    norm = np.sqrt(sum(np.sum(pa[k] ** 2) for k in pa))
    worst = max(pa, key=lambda k: np.max(np.abs(pa[k] - pb[k])))
    assert diff <= 1e-3 * norm, (diff, norm, worst)


def _kill_when(procs, ready: Path, timeout=600) -> None:
    t0 = time.monotonic()
    while not ready.exists():
        if any(p.poll() is not None for p in procs) or time.monotonic() - t0 > timeout:
            for p in procs:
                p.kill()
            outs = [p.communicate()[0] for p in procs]
            pytest.fail(f"the run ended before {ready} appeared: {outs[0][-2000:]}")
        time.sleep(0.02)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        p.communicate()


COMMANDS = {
    # package, arguments, kind of data, global batch, total steps, first checkpoint
    "operators": ("operators", ["train", "--data", "{data}", "--model", "fno", "--epochs", "4",
                                "--batch-size", "4", "--n-val", "0", "--hparam", "width=8",
                                "--hparam", "modes=4", "--hparam", "n_layers=2",
                                "--checkpoint-every", "2", "--no-progress"],
                  "fields", 4, 20, 2),
    "pfn": ("pfn", ["train", "--prior", "gp-rbf", "--quiet", "--steps", "16", "--d-model", "16",
                    "--n-heads", "2", "--n-layers", "1", "--d-ff", "16", "--n-buckets", "20",
                    "--border-samples", "2000", "--max-context", "12", "--n-targets", "4",
                    "--batch-size", "8", "--log-every", "1", "--lr", "3e-3", "--warmup", "2",
                    "--checkpoint-every", "2"], "points", 8, 16, 2),
    "np": ("neural_processes", ["train", "--model", "cnp", "--data", "rbf", "--steps", "16",
                                "--batch-size", "8", "--width", "16", "--enc-depth", "1",
                                "--dec-depth", "1", "--log-every", "1", "--ckpt-every", "2",
                                "--no-progress"], "points", 8, 16, 2),
}


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    import pde_data

    path = tmp_path_factory.mktemp("darcy") / "train.nc"
    pde_data.save(pde_data.darcy.generate(0, 20, 16), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMMANDS))
def test_two_processes_train_as_one(name, darcy, tmp_path):
    package, argv, kind, batch, total, first = COMMANDS[name]
    argv = [a.format(data=darcy) for a in argv]

    def command(out):
        return [*argv, "--out", str(out)]

    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    _train(package, command(one), tmp_path / "log1", 1)
    outs = _train(package, command(two), tmp_path / "log2", 2)
    assert len(outs) == 2

    # the same losses and parameters; one metrics row per logged step (process 0 alone writes)
    _same_run(one, two)
    steps = [r["step"] for r in _steps(two)]
    assert len(steps) == len(set(steps)) and steps[-1] == total
    if kind == "points":
        assert steps == list(range(1, total + 1))
    _check_rows(kind, tmp_path / "log1", tmp_path / "log2", batch)

    # kill -9 of both processes after the first checkpoint; the same command resumes
    _kill_when(_start(package, command(killed), tmp_path / "logk", 2),
               killed / "checkpoints" / str(first))
    left = max(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert left < total, "the run finished before it was killed"
    _train(package, command(killed), tmp_path / "logr", 2)
    _same_run_end(one, killed)


def _same_run_end(run_a: Path, run_b: Path) -> None:
    """The same final metrics row and parameters (a resumed run logs again the rows between
    its last checkpoint and the kill)."""
    last_a, last_b = _steps(run_a)[-1], _steps(run_b)[-1]
    assert last_a["step"] == last_b["step"]
    np.testing.assert_allclose(last_b["loss"], last_a["loss"], rtol=1e-4)
    _close_params(_final_params(run_a), _final_params(run_b))
