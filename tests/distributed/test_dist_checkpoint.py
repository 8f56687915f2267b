"""torch.distributed.checkpoint of model and optimizer state under FSDP2: the resumed run equals
the uninterrupted one, and checkpoints move between 2 ranks and 1 process both ways. ZeRO's own
checkpoint (consolidated on one rank, torch.save) resumes exactly too."""

from __future__ import annotations

import pytest
from dist_problem import (
    CHECKPOINT_RUNS,
    CHECKPOINT_STEP,
    build_model,
    make_optimizer,
    mismatches,
    one_process_checkpoint_run,
)

from descend.distributed import load_checkpoint


def each_rank_run(two_ranks):
    """(configuration, description, results) of every checkpoint run on every rank."""
    for config, impl in CHECKPOINT_RUNS:
        for rank, results in enumerate(two_ranks.require("checkpoint")):
            yield (config, impl), f"{config}/{impl} rank {rank}", results[f"{config}/{impl}"]


def resume_problems(run: dict, what: str) -> list[str]:
    """The resumed run must equal the uninterrupted one bit for bit, step counts included."""
    problems = mismatches(run["resumed"], run["uninterrupted"],
                          f"{what}: resumed vs uninterrupted", rtol=0, atol=0)
    if set(run["resumed_step_counts"]) != {2.0 * CHECKPOINT_STEP}:
        problems.append(f"{what}: state['step'] {set(run['resumed_step_counts'])}")
    return problems


@pytest.mark.timeout(150)
def test_resumed_on_two_ranks_equals_uninterrupted(two_ranks):
    problems = []
    for _, what, run in each_rank_run(two_ranks):
        problems += resume_problems(run, what)
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
def test_saved_by_one_process_resumes_on_two_ranks(two_ranks):
    problems = []
    for configuration, what, run in each_rank_run(two_ranks):
        problems += mismatches(run["from_1proc"], run["uninterrupted"],
                               f"{what}: saved by 1 process, resumed on 2 ranks")
        problems += mismatches(run["uninterrupted"],
                               two_ranks.one_process_checkpointed[configuration],
                               f"{what}: 2 ranks vs 1 process")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(150)
def test_saved_by_two_ranks_resumes_in_one_process(two_ranks):
    problems = []
    ranks = two_ranks.require("checkpoint")
    for config, impl in CHECKPOINT_RUNS:
        key = f"{config}/{impl}"
        resumed = one_process_checkpoint_run(
            config, impl, two_ranks.out_dir, resume_from=two_ranks.out_dir / "2proc" / key)
        problems += mismatches(resumed, ranks[0][key]["uninterrupted"],
                               f"{key}: saved by 2 ranks, resumed in 1 process")
    assert not problems, "\n".join(problems)


def test_loading_a_missing_checkpoint_says_what_is_wrong(tmp_path):
    model = build_model()
    optimizer = make_optimizer(model.parameters(), "adam", "reference")
    with pytest.raises(FileNotFoundError, match="no distributed checkpoint"):
        load_checkpoint(tmp_path / "nothing-here", model, optimizer)


@pytest.mark.timeout(150)
def test_zero_consolidated_checkpoint_resumes_exactly(two_ranks):
    problems = []
    for config, impl in CHECKPOINT_RUNS:
        for rank, results in enumerate(two_ranks.require("zero")):
            problems += resume_problems(results[f"zero-checkpoint/{config}/{impl}"],
                                        f"ZeRO {config}/{impl} rank {rank}")
    assert not problems, "\n".join(problems)
