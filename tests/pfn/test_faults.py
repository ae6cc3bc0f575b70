"""Fault injection (issue 16): ``python -m pfn train`` killed with SIGKILL at seeded random
points (start-up, bucket borders, training, during checkpoint writes), rerun, ends with the run
folder of an uninterrupted run: parameters and optimiser state bit for bit, metrics rows and
the bucket-border arrays."""

import pytest

from tests.faults import kill_rerun_compare, module_command
from tests.pfn.conftest import cli_args


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_random_points_then_rerun_gives_the_uninterrupted_run(tmp_path, seed):
    def command(out):
        return module_command("pfn", "train", "--prior", "gp-rbf", "--out", out, "--quiet",
                              "--steps", "60", "--checkpoint-every", "4", *cli_args())

    print(kill_rerun_compare(command, tmp_path, seed))
