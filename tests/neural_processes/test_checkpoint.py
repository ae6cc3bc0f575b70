"""Models from disk: the shipped checkpoints (format v2) predict exactly as recorded, exports
round-trip and go where the user says, and every refusal is clear."""

import json

import numpy as np
import pytest
from flax import nnx

from neural_processes.checkpoint import (
    SHIPPED,
    available,
    export,
    from_pretrained,
    load_any,
    load_run,
)
from pde_data.runs import RunError, shipped

from .conftest import DATA, small_model


@pytest.mark.parametrize("name", ["anp-rbf", pytest.param("mpanp-rbf", marks=pytest.mark.slow)])
def test_shipped_models_predict_as_recorded(name):
    """``shipped_outputs.npz`` holds what each shipped checkpoint predicted when it was shipped
    (8 samples, key 3; ``python -m tests.record_shipped NAME`` re-records a replaced one): later
    model or loader code must reproduce it."""
    assert name in available()
    meta = json.loads((SHIPPED / name / "config.json").read_text())
    assert meta["format"] == "opbayes-model" and meta["format_version"] == 2
    assert meta["package"] == "neural_processes" and meta["trained"]["step"] > 0
    ref = np.load(DATA / "shipped_outputs.npz")
    model = from_pretrained(name)
    k = name.replace("-", "_")
    mean, std = model.predict(ref["xc"], ref["yc"], ref["xt"], num_samples=8, key=3)
    ll = model.log_likelihood(ref["xc"], ref["yc"], ref["xt"], ref["yt"], num_samples=8, key=3)
    np.testing.assert_allclose(mean, ref[f"{k}_mean"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, ref[f"{k}_std"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ll, ref[f"{k}_ll"], rtol=1e-5, atol=1e-5)


def weights(model):
    return {k: np.asarray(v) for k, v in
            shipped.flatten(nnx.to_pure_dict(nnx.state(model, nnx.Param))).items()}


def test_export_round_trip_default_folder_and_refusals(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = export(tiny_run, "tiny")
    assert folder == tmp_path / "exports" / "tiny"
    meta = json.loads((folder / "config.json").read_text())
    assert meta["format_version"] == 2 and meta["trained"]["step"] == 6
    assert meta["trained"]["data"] == "rbf" and meta["config"]["model"] == "cnp"
    a, b, c = load_run(tiny_run), from_pretrained(folder), load_any(str(folder))
    assert weights(a).keys() == weights(b).keys()
    for k, v in weights(a).items():
        np.testing.assert_array_equal(v, weights(b)[k])
        np.testing.assert_array_equal(v, weights(c)[k])
    x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(a.predict(x, np.sin(x), x + 0.1)[0],
                                  b.predict(x, np.sin(x), x + 0.1)[0])
    # an existing export is kept unless overwrite; dest names the folder itself
    with pytest.raises(FileExistsError, match="--overwrite"):
        export(tiny_run, "tiny")
    assert export(tiny_run, "tiny", overwrite=True) == folder
    assert export(tiny_run, "tiny", dest=tmp_path / "elsewhere") == tmp_path / "elsewhere"
    # bad names, a missing run: refused, nothing created
    for bad in ("../up", "a/b", "..", ""):
        with pytest.raises(ValueError, match="invalid model name"):
            export(tiny_run, bad)
    with pytest.raises(RunError, match="does not exist"):
        export(tmp_path / "no-run", "x")
    assert not (tmp_path / "no-run").exists() and not (tmp_path / "exports" / "x").exists()
    with pytest.raises(RunError, match="not a run folder"):
        export(tmp_path / "exports", "y")


def test_from_pretrained_errors_and_the_old_export_layout(tmp_path):
    with pytest.raises(ValueError, match="neither a model folder .* nor a shipped model; "
                                         "shipped: anp-rbf, mpanp-rbf"):
        from_pretrained("nope")
    # the unversioned export layout of earlier versions still loads
    model = small_model("mpanp", seed=3)
    old = tmp_path / "old"
    old.mkdir()
    np.savez(old / "weights.npz", **weights(model))
    (old / "config.json").write_text(json.dumps({"model": model.config(), "trained": {}}))
    again = from_pretrained(old)
    x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(model.predict(x, np.sin(x), x, num_samples=3)[0],
                                  again.predict(x, np.sin(x), x, num_samples=3)[0])
    (old / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        from_pretrained(old)
    pfn_like = tmp_path / "pfn"
    shipped.write(pfn_like, package="pfn", config={}, params={"w": np.zeros(2)})
    with pytest.raises(ValueError, match="holds a 'pfn' model, not a 'neural_processes' one"):
        from_pretrained(pfn_like)
