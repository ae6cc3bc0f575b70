"""Fault injection for the long commands (issue 16): kill -9 a training command at seeded
random points, rerun the same command, and compare the run folder with an uninterrupted one.

A test names the command and a run folder; :func:`kill_rerun_compare` does the rest:

1. run the command once to the end (the reference) and time it;
2. on a second folder, start the same command three times and SIGKILL it at points drawn from
   ``numpy.random.default_rng(seed)``: a random moment of the reference's duration (start-up,
   config / normaliser writes, training, validation, a metrics append) or the moment a
   checkpoint write is under way (an orbax ``*.orbax-checkpoint-tmp-*`` folder exists) after a
   random number of finished checkpoints;
3. rerun the command to the end and compare with the reference: the parameters and optimiser
   state of every kept checkpoint array for array (bit for bit), the best checkpoint, every
   training metrics row (timing columns left out), the event rows, the arrays files and
   ``config.json`` byte for byte, and the list of files (no debris of the killed writers).

Nothing here knows a package: the checkpoints are read with orbax without a target structure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ORBAX_TMP = ".orbax-checkpoint-tmp"
# metrics / results columns that measure time, not the computation
TIMING = frozenset({"seconds", "steps_per_s", "elapsed", "wall_seconds", "time", "resumed_from"})
# A kill after a metrics row is appended but before the next checkpoint is finished makes the
# resumed run append the rows since that checkpoint again (same values: the interval sums are
# checkpointed). ``runs.loop.fit`` drops them on resume (``Run.drop_metrics_after``), so a
# repeated row is a failure.
REPEATED_ROWS_ALLOWED = False


def subprocess_env(**extra: str) -> dict:
    """Environment of a command subprocess: this checkout importable, one CPU device, no
    progress bar (the JAX compilation cache of ``tests/conftest.py`` is inherited)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(OPBAYES_PROGRESS="0", PYTHONPATH=path, **extra)
    return env


def module_command(package: str, *args: str) -> list[str]:
    """``python -m PACKAGE ARGS`` with this interpreter."""
    return [sys.executable, "-m", package, *map(str, args)]


def run_to_end(cmd: list[str], timeout: float = 300) -> float:
    """Run ``cmd`` to the end (exit 0 asserted, stderr shown otherwise); returns its seconds."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=subprocess_env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return time.perf_counter() - t0


def checkpoint_dirs(run: Path) -> list[Path]:
    """The orbax checkpoint folders of a run (``checkpoints/`` and ``best/checkpoints/``)."""
    return [d for d in (run / "checkpoints", run / "best" / "checkpoints") if d.is_dir()]


def finished_checkpoints(run: Path) -> int:
    folder = run / "checkpoints"
    return sum(1 for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else 0


def orbax_temporaries(run: Path) -> set[Path]:
    """The temporary folders of orbax saves in a run (under way, or left by a killed one)."""
    found = set()
    for folder in checkpoint_dirs(run):
        try:
            found.update(p for p in folder.iterdir() if ORBAX_TMP in p.name)
        except FileNotFoundError:
            pass
    return found


def kill_plan(seed: int, duration: float, n: int = 3) -> list[tuple[str, float]]:
    """``n`` kill points drawn from ``seed``: ``("time", seconds)`` uniform over the reference
    run's ``duration``, or ``("checkpoint", k)``: during the first checkpoint write after ``k``
    finished ones. At least one of each kind when ``n >= 2``."""
    rng = np.random.default_rng(seed)
    kinds = ["time", "checkpoint"] + [str(k) for k in rng.choice(["time", "checkpoint"], n - 2)]
    plan = []
    for kind in rng.permutation(kinds[:n]):
        if kind == "time":
            plan.append(("time", float(rng.uniform(0.05, 0.95) * duration)))
        else:
            plan.append(("checkpoint", int(rng.integers(0, 3))))
    return plan


def kill_once(cmd: list[str], run: Path, kind: str, value: float, timeout: float = 300) -> str:
    """Start ``cmd``, SIGKILL it at the point ``(kind, value)`` and describe where it died:
    ``"finished"`` when the command ended first."""
    stale = orbax_temporaries(run)  # left by an earlier kill: not a write of this process
    # stderr to a file, not a pipe: a chatty command never blocks on a full pipe
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=log, text=True)
        try:
            t0 = time.perf_counter()
            if kind == "time":
                while proc.poll() is None and time.perf_counter() - t0 < value:
                    time.sleep(0.005)
            else:
                while proc.poll() is None and time.perf_counter() - t0 < timeout and not (
                        finished_checkpoints(run) >= value and orbax_temporaries(run) - stale):
                    time.sleep(0.0005)
            if proc.poll() is not None:
                log.seek(0)
                assert proc.returncode == 0, \
                    f"{' '.join(cmd)} failed before the kill:\n{log.read()[-3000:]}"
                return f"{kind} {value:g}: finished"
            writing = bool(orbax_temporaries(run) - stale)
            at = time.perf_counter() - t0
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return (f"{kind} {value:g}: killed at {at:.2f}s, {finished_checkpoints(run)} "
                    f"checkpoints{', during a checkpoint write' if writing else ''}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)


def _restore(item: Path):
    """An orbax item (a pytree of arrays, or JSON) read without a target structure."""
    import orbax.checkpoint as ocp

    if (item / "metadata").is_file() and not (item / "_METADATA").exists():  # a JsonSave item
        return json.loads((item / "metadata").read_text())
    with ocp.PyTreeCheckpointer() as ckptr:
        return ckptr.restore(item.absolute())


def _leaves(tree) -> dict[str, np.ndarray]:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def _plain(row):
    """``row`` without its timing columns (at any depth)."""
    if isinstance(row, dict):
        return {k: _plain(v) for k, v in row.items() if k not in TIMING}
    return row


def _text(run: Path, name: str) -> str:
    """A text file of the run with the run's own path written as ``RUN`` (rows name plots)."""
    return (run / name).read_text().replace(str(run), "RUN")


def _rows(run: Path) -> tuple[list[dict], list[dict], int]:
    """(training rows, event rows, number of repeated training rows) of ``metrics.jsonl``,
    timing columns left out. A repeated row (same step) must equal the first one exactly."""
    rows = [json.loads(line) for line in _text(run, "metrics.jsonl").splitlines()]
    train, repeats, by_step = [], 0, {}
    for row in (_plain(r) for r in rows if "event" not in r):
        step = row.get("step")
        if step in by_step:
            assert row == by_step[step], f"{run}: two different metrics rows of step {step}"
            repeats += 1
            continue
        by_step[step] = row
        train.append(row)
    events = [_plain(r) for r in rows if "event" in r]
    return train, events, repeats


def files_of(run: Path) -> list[str]:
    """Every path under ``run`` except inside the orbax checkpoint folders (whose files carry
    timestamps), plus the checkpoint folders' entries themselves."""
    out = []
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run)
        parts = rel.parts
        inside_ckpt = any(parts[i] == "checkpoints" and i + 2 < len(parts)
                          for i in range(len(parts)))
        if not inside_ckpt:
            out.append(rel.as_posix())
    return out


def assert_same_run(killed: Path, whole: Path, context: str = "") -> int:
    """The folder of a killed-and-rerun command equals the uninterrupted one's: files, kept
    checkpoints (every item array for array, ``extra`` but its clock), metrics rows (timing
    left out, in order), the ``.npz`` arrays and ``config.json`` byte for byte. Returns the
    number of repeated metrics rows (see ``REPEATED_ROWS_ALLOWED``)."""
    assert files_of(killed) == files_of(whole), context
    for folder in checkpoint_dirs(whole):
        mine = killed / folder.relative_to(whole)
        steps = sorted(p.name for p in folder.iterdir())
        assert sorted(p.name for p in mine.iterdir()) == steps, context
        for step in steps:
            for item in sorted(p.name for p in (folder / step).iterdir() if p.is_dir()):
                a, b = _restore(mine / step / item), _restore(folder / step / item)
                if item == "extra":
                    assert _plain(a) == _plain(b), f"{context} {folder.name}/{step}/extra"
                    continue
                la, lb = _leaves(a), _leaves(b)
                assert la.keys() == lb.keys(), f"{context} {step}/{item}"
                for key in lb:
                    np.testing.assert_array_equal(la[key], lb[key],
                                                  err_msg=f"{context} {step}/{item}{key}")
    train_a, events_a, repeats = _rows(killed)
    train_b, events_b, _ = _rows(whole)
    assert train_a == train_b, f"{context}: training metrics rows differ"
    assert REPEATED_ROWS_ALLOWED or not repeats, f"{context}: {repeats} repeated metrics rows"
    # a resumed run logs its start events again; each must equal one of the reference's
    assert {json.dumps(e, sort_keys=True) for e in events_a} == {
        json.dumps(e, sort_keys=True) for e in events_b}, f"{context}: event rows differ"
    for name in files_of(whole):
        if name.endswith(".npz"):
            assert (killed / name).read_bytes() == (whole / name).read_bytes(), f"{context} {name}"
    assert _text(killed, "config.json") == _text(whole, "config.json"), f"{context} config.json"
    if (whole / "results.json").is_file():
        ra = json.loads(_text(killed, "results.json"))
        rb = json.loads(_text(whole, "results.json"))
        assert _plain(ra) == _plain(rb), f"{context} results.json"
    return repeats


def kill_rerun_compare(command, tmp_path: Path, seed: int, n_kills: int = 3) -> list[str]:
    """The fault-injection test of one command. ``command(out)`` is the command line writing
    its run into ``out``. Returns where each kill landed (for the test's report)."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    duration = run_to_end(command(whole))
    where = []
    for kind, value in kill_plan(seed, duration, n_kills):
        where.append(kill_once(command(killed), killed, kind, value))
    run_to_end(command(killed))
    context = f"seed {seed}, kills: {where}"
    repeats = assert_same_run(killed, whole, context)
    return [*where, f"{repeats} repeated metrics rows"]
