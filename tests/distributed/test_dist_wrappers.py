"""DDP, ZeroRedundancyOptimizer and FSDP2 on 2 ranks give the parameters of 1 process on the
whole batch, for every core optimizer configuration, on the reference and the default engine."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks
from dist_problem import RUNS, mismatches, single_process

WRAPPERS = {
    "ddp": ["ddp-bucket-view=False", "ddp-bucket-view=True"],
    "zero": ["zero"],
    "fsdp2": ["fsdp2"],
}


@pytest.fixture(scope="module")
def single_process_parameters():
    return {config: single_process(config) for config in {config for config, _ in RUNS}}


def run_job(job: str, tmp_path) -> list[dict]:
    run_ranks(job, tmp_path, world_size=2, timeout=90)
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("job", sorted(WRAPPERS))
def test_two_ranks_match_one_process(job, tmp_path, single_process_parameters):
    ranks = run_job(job, tmp_path)
    problems = []
    for wrapper in WRAPPERS[job]:
        for config, impl in RUNS:
            key = f"{wrapper}/{config}/{impl}"
            for rank, results in enumerate(ranks):
                problems += mismatches(results[key], single_process_parameters[config],
                                       f"{key} rank {rank} (auto={results['auto_engine']})")
    assert not problems, "\n".join(problems)
    if job == "fsdp2":
        check_default_engine_on_float32_shards(ranks)
        check_skip_nonfinite(ranks)


def check_default_engine_on_float32_shards(ranks: list[dict]) -> None:
    """float32 DTensor shards (what a fast engine is built for): same gradients on both
    engines, so the default engine must give the reference engine's parameters."""
    problems = []
    for config in {config for config, _ in RUNS}:
        for rank, results in enumerate(ranks):
            problems += mismatches(results[f"fsdp2-float32/{config}/auto"],
                                   results[f"fsdp2-float32/{config}/reference"],
                                   f"float32 {config} rank {rank} auto vs reference", atol=1e-7)
    assert not problems, "\n".join(problems)


def check_skip_nonfinite(ranks: list[dict]) -> None:
    """An Inf in one rank's gradient shard: all ranks skip, nothing changes, training goes on
    as if that batch had never come (steps 0, 1, 3, 4)."""
    expected = single_process("adam-amsgrad", steps=(0, 1, 3, 4))
    for impl in ("reference", "auto"):
        for rank, results in enumerate(ranks):
            run = results[f"skip-nonfinite/{impl}"]
            what = f"skip_nonfinite {impl} rank {rank}"
            assert run["skipped_steps"] == 1, f"{what}: skipped {run['skipped_steps']} steps"
            assert not mismatches(run["after_skip"], run["before"], what, rtol=0, atol=0)
            assert set(run["adam_steps"]) == {4.0}, f"{what}: step counts {run['adam_steps']}"
            problems = mismatches(run["final"], expected, what)
            assert not problems, "\n".join(problems)
