"""Batch placement over local devices; the multi-device case on 4 emulated CPU devices."""

import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from pde_data.sharding import data_mesh, replicate, shard_batch


def test_single_device_round_trip():
    x = np.arange(24.0).reshape(4, 3, 2)
    y = shard_batch({"x": x})["x"]
    np.testing.assert_array_equal(np.asarray(y), x)
    assert data_mesh().axis_names == ("data",)


def test_scalar_leaf_is_rejected():
    with pytest.raises(ValueError, match="scalar"):
        shard_batch(jnp.float32(1.0))


def test_four_emulated_devices_split_batch_and_replicate():
    code = textwrap.dedent(
        """
        import numpy as np, jax
        from pde_data.sharding import shard_batch, replicate
        assert jax.device_count() == 4, jax.devices()
        x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
        xs = shard_batch(x)
        assert len(xs.sharding.device_set) == 4
        assert [s.data.shape for s in xs.addressable_shards] == [(2, 3)] * 4
        np.testing.assert_array_equal(np.asarray(xs), x)
        w = replicate(np.ones(5))
        assert all(s.data.shape == (5,) for s in w.addressable_shards)
        # same reduction as on one device
        print(float(jax.jit(lambda a, b: (a.sum(1)[:, None] * b[:3]).sum())(xs, w)))
        try:
            shard_batch(np.zeros((6, 2)))
        except ValueError as e:
            assert "6" in str(e) and "4" in str(e)
        else:
            raise AssertionError("uneven split accepted")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    expected = float((x.sum(1)[:, None] * np.ones(3)).sum())
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(expected)


def test_replicate_keeps_values():
    np.testing.assert_array_equal(np.asarray(replicate(np.arange(3))), np.arange(3))
