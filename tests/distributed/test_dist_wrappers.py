"""DDP, ZeroRedundancyOptimizer and FSDP2 on 2 ranks give the parameters of 1 process on the
whole batch, for every core optimizer configuration, on the reference and the default engine."""

from __future__ import annotations

import pytest
from dist_problem import CONFIGS, RUNS, mismatches, single_process

SECTIONS = {
    "ddp": ["ddp-bucket-view=False", "ddp-bucket-view=True"],
    "zero": ["zero"],
    "fsdp2": ["fsdp2"],
}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_two_ranks_match_one_process(section, two_ranks):
    ranks = two_ranks.require(section)
    problems = []
    for wrapper in SECTIONS[section]:
        for config, impl in RUNS:
            key = f"{wrapper}/{config}/{impl}"
            for rank, results in enumerate(ranks):
                problems += mismatches(results[key], two_ranks.single_process[config],
                                       f"{key} rank {rank} (auto={results['auto_engine']})")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("impl", ["fast", "auto"])
def test_fast_engine_on_float32_shards_matches_reference(impl, two_ranks):
    """float32 DTensor shards: the fast engine updates each rank's local shards (impl="fast"
    raises where it cannot, so every configuration ran on it) and, with the same gradients,
    gives the reference engine's parameters; so does the default. Tolerance: the two engines
    round differently by an ulp or two, which five steps of training feed back (RMSprop with
    Nesterov momentum ends up ~2e-6 apart on weights of size ~1, in one process too); a wrong
    shard would be off by the size of an update (1e-2)."""
    problems = []
    for config in CONFIGS:
        for rank, results in enumerate(two_ranks.require("fsdp2")):
            problems += mismatches(results[f"fsdp2-float32/{config}/{impl}"],
                                   results[f"fsdp2-float32/{config}/reference"],
                                   f"float32 {config} rank {rank} {impl} vs reference",
                                   atol=2e-5)
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("impl", ["reference", "auto"])
def test_skip_nonfinite_on_one_shard_skips_on_every_rank(impl, two_ranks):
    """An Inf in one rank's gradient shard: all ranks skip, nothing changes, training goes on
    as if that batch had never come (steps 0, 1, 3, 4)."""
    expected = single_process("adam-amsgrad", steps=(0, 1, 3, 4))
    for rank, results in enumerate(two_ranks.require("fsdp2")):
        run = results[f"skip-nonfinite/{impl}"]
        what = f"skip_nonfinite {impl} rank {rank}"
        assert run["skipped_steps"] == 1, f"{what}: skipped {run['skipped_steps']} steps"
        assert not mismatches(run["after_skip"], run["before"], what, rtol=0, atol=0)
        assert set(run["adam_steps"]) == {4.0}, f"{what}: step counts {run['adam_steps']}"
        problems = mismatches(run["final"], expected, what)
        assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
def test_zero_skip_together_skips_on_every_rank(two_ranks):
    """ZeRO with skip_together: an Inf in rank 0's partition makes both ranks skip; training goes
    on as if that batch had never come. Without it (the control) rank 0 skips alone, so only
    rank 1's partition moves: a half-applied step, which the test must be able to see."""
    expected = single_process("adam-amsgrad", steps=(0, 1, 3, 4))
    for rank, results in enumerate(two_ranks.require("zero")):
        run = results["zero-skip-nonfinite/together=True"]
        what = f"ZeRO skip_together rank {rank}"
        assert run["skipped_steps"] == 1, f"{what}: skipped {run['skipped_steps']} steps"
        assert not mismatches(run["after_skip"], run["before"], what, rtol=0, atol=0)
        problems = mismatches(run["final"], expected, what)
        assert not problems, "\n".join(problems)

        control = results["zero-skip-nonfinite/together=False"]
        assert control["skipped_steps"] == (1 if rank == 0 else 0), control["skipped_steps"]
        moved = mismatches(control["after_skip"], control["before"], "control", rtol=0, atol=0)
        assert moved and len(moved) < len(control["before"]), (
            f"rank {rank}: without skip_together only rank 1's partition should move: {moved}")
