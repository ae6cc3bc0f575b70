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
