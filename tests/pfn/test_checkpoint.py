"""Shipped models (format v2) and exports: the shipped checkpoints predict exactly as recorded,
an export predicts like its run, and exports never go where they should not."""

import json

import numpy as np
import pytest

import pfn
from pde_data.runs import RunError, shipped
from pfn.checkpoint import SHIPPED_DIR, export, load_any, load_run, load_shipped
from pfn.estimators import PFNClassifier, PFNRegressor

from .conftest import SHIPPED_PREDICTIONS, params_of


@pytest.mark.parametrize("name", ["gp-rbf", "gp-hyper", "tabular"])
def test_shipped_models_are_format_v2(name):
    meta = json.loads((SHIPPED_DIR / name / "config.json").read_text())
    assert (meta["format"], meta["format_version"], meta["package"]) == ("opbayes-model", 2, "pfn")
    assert meta["trained"]["name"] == name


def test_shipped_models_predict_as_recorded():
    """``shipped_predictions.npz`` holds what each shipped checkpoint predicted when it was shipped
    (first with the format-v1 loader, re-recorded by ``python -m tests.record_shipped NAME`` for
    each checkpoint replaced since, and for gp-hyper when its input scaling changed): later
    model or loader code must not change it. The plain network (``n_estimators=1``, the
    classifier at ``temperature=1``); the ensembles are held to it by tests/pfn/test_ensemble.py,
    the temperature by tests/pfn/test_calibration.py."""
    f = np.load(SHIPPED_PREDICTIONS)
    for name, key in (("gp-rbf", "rbf"), ("gp-hyper", "hyper")):
        dist = PFNRegressor.from_pretrained(name).set_params(n_estimators=1).fit(f[f"{key}_x"], f[f"{key}_y"]) \
            .predict_distribution(f[f"{key}_xt"])
        np.testing.assert_allclose(dist.mean, f[f"{key}_mean"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dist.std, f[f"{key}_std"], rtol=1e-5, atol=1e-5)
        # log densities of gp-rbf's narrow predictives (std ~0.02) move by ~1e-4 nats between
        # XLA programs (the estimators' padded size buckets): 1e-3 nats is still exact enough
        np.testing.assert_allclose(dist.logpdf(f[f"{key}_yt"]), f[f"{key}_logpdf"], rtol=1e-5,
                                   atol=1e-3)
    proba = PFNClassifier.from_pretrained("tabular").set_params(n_estimators=1, temperature=1.0).fit(
        f["tab_x"], f["tab_y"]) \
        .predict_proba(f["tab_xt"])
    np.testing.assert_allclose(proba, f["tab_proba"], rtol=1e-5, atol=1e-5)


def test_from_pretrained_takes_a_name_or_a_folder(tmp_path):
    folder = shipped.copy(SHIPPED_DIR / "tabular", tmp_path / "mine")
    assert isinstance(pfn.from_pretrained(str(folder)), PFNClassifier)
    assert isinstance(pfn.from_pretrained("gp-rbf"), PFNRegressor)
    with pytest.raises(shipped.ModelFileError, match="shipped: gp-hyper, gp-rbf, tabular"):
        pfn.from_pretrained("gp-nope")


def test_an_export_predicts_like_its_run(tiny_run, tmp_path):
    folder = export(tiny_run, "tiny", dest=tmp_path / "tiny")
    model, cfg, stats = load_shipped(folder)
    run_model, run_cfg, run_stats = load_run(tiny_run)
    assert cfg == run_cfg
    for a, b in zip(params_of(model), params_of(run_model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stats["borders"], run_stats["borders"])
    x = np.linspace(0, 1, 9)[:, None]
    means = [PFNRegressor.from_pretrained(str(m)).fit(x[::2], np.sin(3 * x[::2, 0]))
             .predict(x[1::2]) for m in (folder, tiny_run)]
    np.testing.assert_array_equal(means[0], means[1])
    meta = json.loads((folder / "config.json").read_text())
    assert meta["trained"]["step"] == 4 and meta["trained"]["run"] == str(tiny_run.absolute())
    assert load_any(str(folder))[1] == cfg and load_any(str(tiny_run))[1] == cfg


def test_export_refuses_bad_names_existing_folders_and_missing_runs(tiny_run, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("a/b", "..", "../up", "a..b", ""):
        with pytest.raises(ValueError, match="invalid model name"):
            export(tiny_run, bad)
    with pytest.raises(RunError, match="not a PFN run folder.*does not exist"):
        export(tmp_path / "nope", "m")
    assert list(tmp_path.iterdir()) == []  # nothing was created
    first = export(tiny_run, "m")
    assert first == tmp_path / "exports" / "m"
    with pytest.raises(FileExistsError, match="--overwrite"):
        export(tiny_run, "m")
    assert export(tiny_run, "m", overwrite=True) == first
    assert sorted(p.name for p in first.iterdir()) == ["config.json", "weights.npz"]
