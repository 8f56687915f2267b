"""Muon under FSDP2 on 2 gloo ranks gives one process's parameters (issue 10).

Newton-Schulz needs the whole matrix, and FSDP2 gives each rank a block of rows (Shard(0); the
3-row output layer splits 2 + 1). descend's Muon gathers the update (``full_tensor``),
orthogonalizes it on every rank and keeps this rank's rows
(``descend.distributed.on_whole_tensor``). Orthogonalizing each rank's rows on their own would
give another matrix (rows of an orthogonalized block are not rows of the orthogonalized whole):
the comparison below would see it. float64 parameters, as in test_dist_wrappers (the all-reduced
gradient differs from one process's by rounding only; the bfloat16 iteration then rounds both
alike), at the same rtol 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks
from dist_problem import MUON_RUNS, mismatches, muon_single_process

WORLD_SIZE = 2


@pytest.mark.timeout(150)
def test_muon_on_fsdp2_shards_matches_one_process(tmp_path):
    run_ranks("muon", tmp_path, world_size=WORLD_SIZE, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    problems = []
    for config in MUON_RUNS:
        expected = muon_single_process(config)
        for impl in ("reference", "auto"):
            for rank, results in enumerate(ranks):
                problems += mismatches(results[f"{config}/{impl}"], expected,
                                       f"{config}/{impl} rank {rank}")
    assert not problems, "\n".join(problems)
