"""Fault injection (issue 16): ``python -m neural_processes train`` killed with SIGKILL at
seeded random points (start-up, training, during checkpoint writes), rerun, ends with the run
folder of an uninterrupted run: parameters and optimiser state bit for bit and metrics rows."""

import pytest

from tests.faults import kill_rerun_compare, module_command
from tests.neural_processes.conftest import TINY_ARGS


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_random_points_then_rerun_gives_the_uninterrupted_run(tmp_path, seed):
    def command(out):
        return module_command("neural_processes", "train", "--model", "anp", "--data", "rbf",
                              "--out", out, "--steps", "60", "--batch-size", "4",
                              "--log-every", "3", "--ckpt-every", "4", "--no-progress",
                              *TINY_ARGS)

    print(kill_rerun_compare(command, tmp_path, seed))
