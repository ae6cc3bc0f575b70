"""The ``opbayes`` command: verbs found through entry points, ``--version``, unknown verbs, and
``opbayes demo``'s orchestration of the steps the packages register."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

from pde_data import cli, demo
from pde_data.demo import DarcyData, DemoStep

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_registers_its_verb_and_demo_step():
    verbs = {ep.name: ep for ep in entry_points(group=cli.COMMANDS_GROUP)}
    assert {"data", "operators", "pfn", "np"} <= set(verbs)
    for ep in verbs.values():
        assert callable(ep.load())
    steps = {ep.name: ep.load() for ep in entry_points(group=demo.DEMO_GROUP)}
    assert {"operators", "pfn", "neural_processes"} <= set(steps)
    assert all(isinstance(step, DemoStep) and step.title for step in steps.values())
    orders = [step.order for step in demo.steps()]
    assert orders == sorted(orders) and orders[0] == DarcyData.order


def test_version_help_and_unknown_verb(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"opbayes {version('opbayes')}"
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for verb in ("demo", "data", "operators", "pfn", "np"):
        assert f"  {verb} " in out
    assert cli.main(["nope", "--x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "unknown command 'nope'" in captured.err


def test_data_verb_dispatches_to_python_m_pde_data(tmp_path, capsys):
    from pde_data import darcy, save

    save(darcy.generate(0, 2, 5), tmp_path / "d.nc")
    assert cli.main(["data", "info", str(tmp_path / "d.nc")]) == 0
    assert "pde: darcy" in capsys.readouterr().out


def test_the_installed_script_answers_version():
    out = subprocess.run([sys.executable, "-m", "pde_data.cli", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.startswith("opbayes ")


class _Recorder(DemoStep):
    order = 50
    title = "Recorder: sees what the steps before it left"
    summary_key = "recorder"

    def add_arguments(self, parser):
        parser.add_argument("--flag", type=int, default=3)

    def run(self, out, context, args):
        return {"darcy": sorted(context["darcy"]), "flag": args.flag,
                "train_exists": context["darcy"]["train"].exists()}


def test_demo_runs_the_steps_in_order_with_context_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--n-train", "4", "--flag", "7"],
                     demo_steps=[_Recorder(), DarcyData()]) == 0
    printed = capsys.readouterr().out
    first = printed.index("== 1. PDE data: Darcy flow")
    assert printed.index("== 2. Recorder") > first
    assert "generated darcy_train_33.nc: 4 samples at 33x33" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"recorder": {"darcy": ["test33", "test65", "train"], "flag": 7,
                                    "train_exists": True}}
    assert f"Everything is in {out}/" in printed


def test_demo_step_base_class_must_be_implemented(tmp_path):
    with pytest.raises(NotImplementedError):
        DemoStep().run(tmp_path, {}, None)


def test_demo_data_check_names_what_differs(tmp_path):
    from pde_data import darcy, save

    path = save(darcy.generate(0, 3, 9), tmp_path / "d.nc")
    want = {"pde": "darcy", "seed": 0, "n": 3, "resolution": 9,
            "generator_version": darcy.VERSION}
    assert demo._differs(path, want) == ""
    assert demo._differs(tmp_path / "absent.nc", want) == ""
    assert demo._differs(path, {**want, "seed": 2, "n": 5}) == (
        "it was made with seed=0, n=3; this demo asks for seed=2, n=5")
    (tmp_path / "junk.nc").write_bytes(b"junk")
    assert demo._differs(tmp_path / "junk.nc", want).startswith("it cannot be read")


@pytest.mark.slow
def test_demo_regenerates_data_made_with_other_arguments(tmp_path, capsys):
    """A second demo in the same --out with another --n-train / --seed does not reuse the
    first one's data (#16): the stored attrs are checked against the requested ones."""
    from pde_data import load

    class Stop(DemoStep):
        order = 50

        def run(self, out, context, args):
            return {}

    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--n-train", "3"], demo_steps=[DarcyData(), Stop()]) == 0
    first = (out / "darcy_test_33.nc").read_bytes()
    capsys.readouterr()
    assert demo.main(["--out", str(out), "--n-train", "4", "--seed", "1"],
                     demo_steps=[DarcyData(), Stop()]) == 0
    printed = capsys.readouterr().out
    assert "regenerating darcy_train_33.nc: it was made with seed=0, n=3" in printed
    train = load(out / "darcy_train_33.nc")
    assert (train.sizes["sample"], train.attrs["seed"]) == (4, 1)
    assert (out / "darcy_test_33.nc").read_bytes() != first  # seed 1 + 1, not seed 0 + 1
    assert demo.main(["--out", str(out), "--n-train", "4", "--seed", "1"],
                     demo_steps=[DarcyData(), Stop()]) == 0
    assert "regenerating" not in capsys.readouterr().out  # the same arguments reuse it


def test_demo_errors_are_one_line(tmp_path, capsys):
    for argv in (["--n-train", "0"], ["--seed", "-1"], ["--n-train", "x"]):
        assert demo.main(["--out", str(tmp_path / "d"), *argv], demo_steps=[DarcyData()]) == 2
        err = capsys.readouterr().err
        assert err.startswith("opbayes demo: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "d").exists()
