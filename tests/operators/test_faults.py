"""Fault injection (issue 16): ``python -m operators train`` killed with SIGKILL at seeded
random points (start-up, training, validation, during checkpoint writes), rerun, ends with the
run folder of an uninterrupted run: parameters and optimiser state bit for bit, the same best
checkpoint, metrics rows, normalisers and results."""

import pytest

from tests.faults import kill_rerun_compare, module_command
from tests.operators.conftest import MODEL, cli_hparams


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_random_points_then_rerun_gives_the_uninterrupted_run(darcy, tmp_path, seed):
    def command(out):
        return module_command(
            "operators", "train", "--data", darcy / "train.nc", "--model", MODEL, "--out", out,
            "--epochs", "6", "--batch-size", "4", "--n-val", "4", "--checkpoint-every", "4",
            "--schedule", "constant", "--test", darcy / "test31.nc", "--plot-samples", "1",
            "--no-progress", *cli_hparams())

    print(kill_rerun_compare(command, tmp_path, seed))
