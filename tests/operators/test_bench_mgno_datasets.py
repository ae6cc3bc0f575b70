"""bench/mgno_datasets.py (issue 17): its grids and its refusals. (An end-to-end run at grid 16-17,
2 datasets, 1 epoch took 120 s on the 2-core VM, over the 60 s allowed for a test here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]


bench = load_bench("mgno_datasets")


def test_grids_nest_and_bad_sizes_are_refused():
    for name, d in bench.DATASETS.items():
        assert bench.grid(name, 1) == (d["resolution"], d["solve"])
        for scale in (0.25, 0.5):
            s, solve = bench.grid(name, scale)
            if name == "navier_stokes":  # periodic: the stored grid divides the solve grid
                assert solve % s == 0 and s < d["resolution"]
            else:  # node grid: every k-th node of the solve grid, both ends kept
                assert (solve - 1) % (s - 1) == 0 and s < d["resolution"]
    with pytest.raises(ValueError, match="--n-train"):
        bench.main(["--n-train", "0"])
    with pytest.raises(ValueError, match="--grid-scale"):
        bench.main(["--grid-scale", "1.5"])
