"""neuraloperator .pt dictionaries read without torch (pde_data.formats.torch_pt).

The fixtures were written by real ``torch.save`` (torch 2.13, see fixtures/make_pt_fixtures.py);
their expected values are in fixtures/pt_expected.npz.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pde_data.formats.torch_pt import load_tensor_dict
from pde_data.info import convert, info
from pde_data.storage import DataFormatError, load

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def expected():
    with np.load(FIX / "pt_expected.npz") as f:
        return dict(f)


def rewrite_zip(src: Path, dst: Path, edit):
    """Copy the zip ``src`` to ``dst`` with ``edit(name, data) -> data`` applied per entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            zout.writestr(name, edit(name, zin.read(name)))
    return dst


def test_darcy_pt(expected):
    ds = load(FIX / "darcy_tiny.pt")
    assert ds.attrs["pde"] == "darcy" and ds.attrs["source_format"] == "torch-pt"
    assert ds.attrs["input_vars"] == ["a"] and ds.attrs["output_vars"] == ["u"]
    assert ds["a"].dims == ("sample", "x", "y") and ds["a"].dtype == np.float32
    np.testing.assert_array_equal(ds["a"].values, expected["darcy_x"])
    np.testing.assert_array_equal(ds["u"].values, expected["darcy_y"])
    np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 5))  # node grid, both ends


def test_burgers_pt_time_axis_and_visc(expected):
    ds = load(FIX / "burgers_tiny.pt")
    assert ds.attrs["pde"] == "burgers" and ds.attrs["nu"] == 0.01 and ds.attrs["periodic"] is True
    assert ds["u0"].dims == ("sample", "x") and ds["u"].dims == ("sample", "x", "t")
    np.testing.assert_array_equal(ds["u0"].values, expected["burgers_input"])
    # stored (N, T, s) from a non-contiguous view; the schema puts time last
    np.testing.assert_array_equal(
        ds["u"].transpose("sample", "t", "x").values, expected["burgers_output"]
    )
    np.testing.assert_allclose(ds["x"].values, np.arange(8) / 8)  # periodic grid
    assert ds.sizes["t"] == 4


def test_info_and_convert_pt(tmp_path, expected):
    text = info(FIX / "darcy_tiny.pt")
    assert "format: torch-pt" in text and "resolution: 5 x 5" in text and "node grid" in text
    assert f"max={expected['darcy_y'].max():.6g}" in text
    back = load(convert(FIX / "darcy_tiny.pt", tmp_path / "darcy.nc"))
    np.testing.assert_array_equal(back["u"].values, expected["darcy_y"])
    assert back.attrs["converted_from"] == "darcy_tiny.pt (torch-pt)"


def test_strided_shared_storage(expected):
    raw = load_tensor_dict(FIX / "strided_tiny.pt")
    np.testing.assert_array_equal(raw["x"], expected["strided_x"])
    np.testing.assert_array_equal(raw["y"], expected["strided_y"])
    assert raw["f"].dtype == np.float64
    np.testing.assert_array_equal(raw["f"], expected["strided_f"])
    assert raw["n_steps"] == 7 and raw["res"] == 6.5
    ds = load(FIX / "strided_tiny.pt")
    np.testing.assert_array_equal(ds["input"].values, expected["strided_x"])
    np.testing.assert_array_equal(ds["output"].values, expected["strided_y"])
    assert ds.attrs["n_steps"] == 7 and ds.attrs["skipped_vars"] == ["f"]
    assert ds.attrs["input_vars"] == ["input"] and ds.attrs["output_vars"] == ["output"]


def test_other_dtypes_and_parameter(expected):
    raw = load_tensor_dict(FIX / "dtypes_tiny.pt")
    want = {
        "bf16": np.float32,
        "f16": np.float16,
        "i64": np.int64,
        "mask": np.bool_,
        "param": np.float32,
    }
    for k, dtype in want.items():
        assert raw[k].dtype == dtype, k
        np.testing.assert_array_equal(raw[k], expected[f"dtypes_{k}"])
    assert raw["scale"].shape == () and raw["scale"] == 0.25


def test_malicious_pt_is_refused_without_running_it():
    marker = Path("/tmp/opbayes_pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(
        DataFormatError, match=r"malicious.pt: refusing to load.*forbidden global 'os.system'"
    ):
        load(FIX / "malicious.pt")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_other_forbidden_globals(tmp_path, protocol):
    # builtins.eval through GLOBAL (protocol 2) and STACK_GLOBAL (protocol 4)
    payload = pickle.dumps({"x": eval}, protocol=protocol)
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as zf:
        zf.writestr("evil/data.pkl", payload)
    with pytest.raises(DataFormatError, match=r"forbidden global '(__builtin__|builtins)\.eval'"):
        load(tmp_path / "evil.pt")


def test_missing_variable(tmp_path):
    # rename the key 'y' to 'z' inside the real pickle
    p = rewrite_zip(
        FIX / "darcy_tiny.pt",
        tmp_path / "darcy_noy.pt",
        lambda n, d: (
            d.replace(b"X\x01\x00\x00\x00y", b"X\x01\x00\x00\x00z") if n.endswith("data.pkl") else d
        ),
    )
    assert "z" in load_tensor_dict(p)
    with pytest.raises(DataFormatError, match=r"darcy_noy.pt: missing variable 'y'"):
        load(p)


def test_short_storage_is_an_error(tmp_path):
    p = rewrite_zip(
        FIX / "darcy_tiny.pt",
        tmp_path / "short.pt",
        lambda n, d: d[: len(d) // 2] if n.endswith("data/1") else d,
    )
    with pytest.raises(
        DataFormatError, match=r"short.pt: corrupt torch archive.*has 150 bytes, expected 300"
    ):
        load(p)


def test_tensor_outside_its_storage_is_an_error(tmp_path):
    # claim a bigger tensor than the storage holds: size (3, 5, 5) -> (3, 5, 9) in the pickle
    def edit(name, data):
        if not name.endswith("data.pkl"):
            return data
        assert data.count(b"K\x03K\x05K\x05\x87") == 2
        return data.replace(b"K\x03K\x05K\x05\x87", b"K\x03K\x05K\x09\x87", 1)

    p = rewrite_zip(FIX / "darcy_tiny.pt", tmp_path / "big.pt", edit)
    with pytest.raises(DataFormatError, match=r"big.pt: corrupt torch archive.*reaches element"):
        load(p)


def test_missing_storage_is_an_error(tmp_path):
    src = FIX / "darcy_tiny.pt"
    dst = tmp_path / "nostore.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if not name.endswith("data/0"):
                zout.writestr(name, zin.read(name))
    with pytest.raises(DataFormatError, match="missing from the archive"):
        load(dst)


def test_truncated_pt(tmp_path):
    data = (FIX / "darcy_tiny.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cut.pt: not a torch.save zip archive"):
        load(tmp_path / "cut.pt")


def test_random_bytes_and_legacy_pt(tmp_path):
    (tmp_path / "junk.pt").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(DataFormatError, match="junk.pt: not a torch.save zip archive"):
        load(tmp_path / "junk.pt")
    (tmp_path / "old.pt").write_bytes(pickle.dumps({"x": 1}, protocol=2))
    with pytest.raises(DataFormatError, match="legacy non-zip"):
        load(tmp_path / "old.pt")


def test_non_dict_pt(tmp_path):
    with zipfile.ZipFile(tmp_path / "list.pt", "w") as zf:
        zf.writestr("list/data.pkl", pickle.dumps([1.0, 2.0], protocol=2))
    with pytest.raises(DataFormatError, match="expected a dict of tensors, the file holds a list"):
        load(tmp_path / "list.pt")


def test_mutated_pickles_give_clear_errors(tmp_path):
    # flipped bytes in the real pickle: either still a valid tensor dict, or a DataFormatError
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(40):

        def edit(name, data, i=i):
            if not name.endswith("data.pkl"):
                return data
            b = bytearray(data)
            for pos in rng.integers(2, len(b) - 1, size=1 + i % 3):
                b[pos] = int(rng.integers(0, 256))
            return bytes(b)

        p = rewrite_zip(FIX / "darcy_tiny.pt", tmp_path / f"m{i}.pt", edit)
        try:
            load(p)
            outcomes.add("ok")
        except DataFormatError as e:
            assert f"m{i}.pt" in str(e)
            outcomes.add("error")
    assert "error" in outcomes


# ------------------------------------------------ allocations bounded by the file (#16)


def test_a_stride_zero_tensor_cannot_expand_beyond_its_storage(tmp_path):
    """A few-hundred-byte file declaring two (20000, 100, 100) tensors with stride 0 on a
    4-element storage is refused before anything is allocated."""
    from tests.pde_data.ptfiles import archive, tensor_opcodes

    huge = tensor_opcodes("0", "FloatStorage", 4, 0, (20000, 100, 100), (0, 0, 0))
    path = tmp_path / "stride0.pt"
    path.write_bytes(archive({"x": huge, "y": huge}, {"0": np.zeros(4, np.float32).tobytes()}))
    assert path.stat().st_size < 1000
    with pytest.raises(DataFormatError, match=r"stride0.pt: refusing.*storage holds 4"):
        load(path)


def test_many_tensors_on_one_storage_are_bounded_by_the_file_size(tmp_path):
    """Hundreds of tensors viewing one 200 KB storage would copy it hundreds of times (400 MB):
    what a file may expand to is bounded by its size."""
    from tests.pde_data.ptfiles import archive, tensor_opcodes

    view = tensor_opcodes("0", "FloatStorage", 50_000, 0, (10, 5000), (5000, 1))
    items = {f"t{i}": view for i in range(400)} | {"x": view, "y": view}
    path = tmp_path / "shared.pt"
    path.write_bytes(archive(items, {"0": np.zeros(50_000, np.float32).tobytes()}))
    with pytest.raises(DataFormatError, match=r"shared.pt: refusing.*more data than it holds"):
        load(path)
    # a few views of one storage are fine (the fixture strided_tiny.pt has x and y on one)
    fine = tmp_path / "fine.pt"
    fine.write_bytes(archive({"x": view, "y": view}, {"0": np.arange(50_000, dtype=np.float32)
                                                       .tobytes()}))
    ds = load(fine)
    np.testing.assert_array_equal(ds["input"].values, np.arange(50_000).reshape(10, 5000))


def test_boolean_darcy_coefficient_is_a_0_1_field_to_train_on(tmp_path):
    """neuraloperator's Darcy sets store the coefficient as booleans: load keeps them as read,
    the fields pipeline gives them to a model as 0.0 / 1.0."""
    from pde_data.pipeline import FieldData
    from tests.pde_data.ptfiles import write_arrays

    rng = np.random.default_rng(0)
    a = rng.random((4, 6, 6)) > 0.5
    u = rng.random((4, 6, 6)).astype(np.float32)
    path = write_arrays(tmp_path / "darcy_train_6.pt", {"x": a, "y": u})
    ds = load(path)
    assert ds["a"].dtype == bool and ds.attrs["pde"] == "darcy"
    data = FieldData.from_dataset(path)
    x, y = data.take([0, 1, 2, 3])
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], a.astype(np.float32))
    np.testing.assert_array_equal(y[..., 0], u)
    xn, _ = data.fit_normalizers("pointwise")
    assert np.isfinite(np.asarray(xn.encode(x))).all()
