"""Batches placed with a NamedSharding over all local devices: 1 device here, 4 emulated CPU
devices in a subprocess (XLA_FLAGS must not leak into this process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pde_data.pipeline import FieldData

REPO = Path(__file__).resolve().parents[2]


def make_dataset(n=16, s=9):
    rng = np.random.default_rng(11)
    g = np.linspace(0, 1, s)
    return xr.Dataset({"a": (("sample", "x", "y"), rng.normal(size=(n, s, s))),
                       "u": (("sample", "x", "y"), rng.normal(size=(n, s, s)))},
                      coords={"x": g, "y": g}, attrs={"pde": "darcy", "input_vars": "a", "output_vars": "u"})


def test_single_device_batches_are_named_sharded():
    import jax
    from jax.sharding import NamedSharding

    d = FieldData.from_dataset(make_dataset())
    x, _ = next(iter(d.batches(4, seed=0)))
    assert isinstance(x.sharding, NamedSharding) and x.sharding.spec[0] == "data"
    assert x.sharding.device_set == set(jax.local_devices())
    x2, _ = next(iter(d.batches(4, seed=0, shard=False)))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))


CHILD = textwrap.dedent(
    """
    import sys, numpy as np, jax
    from jax.sharding import NamedSharding
    sys.path.insert(0, {test_dir!r})
    from test_pipeline_sharding import make_dataset
    from pde_data.pipeline import FieldData
    assert jax.local_device_count() == 4, jax.devices()
    out = {{}}
    for mode, src in (("mem", make_dataset()), ("zarr", {zarr!r})):
        tr, _, _ = FieldData.from_dataset(src, coords=True).split(12, 4, seed=2)
        for i, (x, y) in enumerate(tr.batches(4, seed=5, epoch=1)):
            for a in (x, y):
                assert isinstance(a.sharding, NamedSharding), a.sharding
                assert len(a.sharding.device_set) == 4, a.sharding
                assert {{s.data.shape[0] for s in a.addressable_shards}} == {{1}}
            out[f"{{mode}}_x{{i}}"] = np.asarray(x)
            out[f"{{mode}}_y{{i}}"] = np.asarray(y)
    d = FieldData.from_dataset(make_dataset())
    for kw in (dict(batch_size=6), dict(batch_size=8, drop_last=False, n=10)):
        n = kw.pop("n", None)
        try:
            (d if n is None else d.subset(range(n))).batches(seed=0, **kw)
        except ValueError as e:
            out["err_" + str(kw)] = np.array(str(e))
        else:
            raise SystemExit("no error for " + str(kw))
    np.savez({npz!r}, **out)
    """
)


def test_four_emulated_devices_match_one_device(tmp_path):
    ds = make_dataset()
    zarr = tmp_path / "d.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(zarr, encoding={v: {"chunks": (2, 9, 9)} for v in ds.data_vars})
    npz = tmp_path / "four.npz"
    code = CHILD.format(test_dir=str(Path(__file__).parent), zarr=str(zarr), npz=str(npz))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(npz, allow_pickle=False) as f:
        four = dict(f)

    tr, _, _ = FieldData.from_dataset(ds, coords=True).split(12, 4, seed=2)
    one = [(np.asarray(x), np.asarray(y)) for x, y in tr.batches(4, seed=5, epoch=1)]
    assert len(one) == 3
    for mode in ("mem", "zarr"):
        for i, (x, y) in enumerate(one):
            np.testing.assert_array_equal(four[f"{mode}_x{i}"], x)
            np.testing.assert_array_equal(four[f"{mode}_y{i}"], y)
    errs = [str(v) for k, v in four.items() if k.startswith("err_")]
    assert any("batch_size=6 is not divisible by the 4 devices" in e for e in errs), errs
    assert any("final batch of 2 samples, not divisible by the 4 devices" in e for e in errs), errs


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_bad_batch_size(bad):
    d = FieldData.from_dataset(make_dataset())
    with pytest.raises(ValueError, match="batch_size"):
        d.batches(bad, seed=0)
