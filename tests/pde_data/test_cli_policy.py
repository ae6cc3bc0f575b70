"""The one error policy on the ``opbayes`` command itself (issue 16 probes, re-run): an unknown
verb, a demo ``--out`` that is a file and a negative ``--epochs`` each end in one
``PROG: error:`` line with exit 2, and nothing is created or replaced."""

from pde_data import cli, demo


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{prog}: error: "), err
    return err


def test_an_unknown_verb_is_one_error_line(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = _one_error_line(capsys, "opbayes")
    assert "unknown command 'frobnicate'" in err and "opbayes --help" in err


def test_demo_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "demo.txt"
    out.write_text("keep me\n")
    assert demo.main(["--out", str(out), "--n-train", "2"], demo_steps=[demo.DarcyData()]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys, "opbayes demo")
    assert out.read_text() == "keep me\n"


def test_demo_negative_epochs_are_refused_before_the_out_folder_is_made(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--epochs", "-1"]) == 2
    assert "--epochs: must be >= 1, got -1" in _one_error_line(capsys, "opbayes demo")
    assert not out.exists()


def test_a_verb_names_itself_as_the_user_called_it(tmp_path, capsys):
    """``opbayes data ...`` reports as ``opbayes data`` (usage errors of a sub-verb too), and
    ``python -m pde_data`` keeps its own name."""
    junk = tmp_path / "junk.nc"
    junk.write_text("junk\n")
    assert cli.main(["data", "info", str(junk)]) == 2
    assert "not a netCDF file" in _one_error_line(capsys, "opbayes data")
    assert cli.main(["data", "generate", "darcy", "--n", "0", "--out", str(tmp_path / "o.nc")]) == 2
    assert "(see opbayes data generate --help)" in _one_error_line(capsys, "opbayes data generate")
    from pde_data.__main__ import main as pde_data_main

    assert pde_data_main(["info", str(junk)]) == 2
    _one_error_line(capsys, "python -m pde_data")
