"""One launch of 2 ranks serves every training test (spawning is the slow part)."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks
from dist_problem import CHECKPOINT_RUNS, RUNS, one_process_checkpoint_run, single_process

WORLD_SIZE = 2


class TwoRankResults:
    """What the 2 ranks of job ``training`` wrote, and the one-process references."""

    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir
        # Saved before the launch: the ranks resume from these (1 process -> 2 ranks).
        self.one_process_checkpointed = {
            run: one_process_checkpoint_run(*run, out_dir) for run in CHECKPOINT_RUNS}
        self.single_process = {config: single_process(config) for config, _ in RUNS}
        run_ranks("training", out_dir, world_size=WORLD_SIZE, timeout=100)
        self.ranks = [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    def require(self, section: str) -> list[dict]:
        """Each rank's results, after failing with the rank's traceback if ``section`` raised."""
        for rank, results in enumerate(self.ranks):
            error = results["errors"].get(section)
            assert error is None, f"section {section!r} raised on rank {rank}:\n{error}"
        return self.ranks


@pytest.fixture(scope="session")
def two_ranks(tmp_path_factory) -> TwoRankResults:
    return TwoRankResults(tmp_path_factory.mktemp("two_ranks"))
