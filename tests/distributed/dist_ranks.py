"""What each rank runs: ``python dist_ranks.py JOB OUT_DIR``, started by dist_launch.run_ranks.

Spawning is the slow part (importing torch takes seconds on 2 cores), so job ``training`` runs
every section (ddp, zero, fsdp2, checkpoint) over every configuration in one process group; a
section that raises records its traceback and the others still run. Each rank writes its results
to OUT_DIR/rank<R>.pt for the test process to compare. A section alone is a job too (debugging).
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from dist_problem import (
    CHECKPOINT_RUNS,
    CHECKPOINT_STEP,
    CONFIGS,
    MUON_RUNS,
    RESUMED_STEPS,
    RUNS,
    STEPS,
    batch,
    build_matrix_model,
    build_model,
    full_parameters,
    make_optimizer,
    train,
)
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

import descend
from descend import engines
from descend.distributed import finish, load_checkpoint, save_checkpoint, skip_together


def fsdp2(model: nn.Module) -> nn.Module:
    """FSDP2 as recommended: each layer its own unit, then the root."""
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def trained(model: nn.Module, config: str, impl: str, rank: int, world: int,
            **optimizer_options) -> dict:
    """The whole parameters after STEPS steps of this rank's slices of the batches."""
    optimizer = make_optimizer(model.parameters(), config, impl, **optimizer_options)
    train(model, optimizer, range(STEPS), rank, world)
    return full_parameters(model)


def section_ddp(rank: int, world: int, out: Path) -> dict:
    results = {}
    for bucket_view in (False, True):
        for config, impl in RUNS:
            model = DistributedDataParallel(build_model(), gradient_as_bucket_view=bucket_view)
            results[f"ddp-bucket-view={bucket_view}/{config}/{impl}"] = trained(
                model, config, impl, rank, world)
    return results


def section_zero(rank: int, world: int, out: Path) -> dict:
    results = {}
    for config, impl in RUNS:
        results[f"zero/{config}/{impl}"] = trained(
            DistributedDataParallel(build_model()), config, impl, rank, world,
            optimizer_class=ZeroRedundancyOptimizer)
    for together in (False, True):
        results[f"zero-skip-nonfinite/together={together}"] = skip_nonfinite_in_one_partition(
            rank, world, together)
    for config, impl in CHECKPOINT_RUNS:
        results[f"zero-checkpoint/{config}/{impl}"] = zero_checkpoint_run(
            config, impl, rank, world, out / "zero" / config / impl)
    return results


def zero_checkpoint_run(config: str, impl: str, rank: int, world: int, path: Path) -> dict:
    """ZeRO's own checkpoint: steps 0..2, consolidate the optimizer's partitions on rank 0 and
    save it with the model (torch.save), steps 3..5; then a fresh model and optimizer load that
    file on every rank (torch.load(weights_only=True)) and train steps 3..5 again."""
    def build() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = DistributedDataParallel(build_model())
        return model, make_optimizer(model.parameters(), config, impl,
                                     optimizer_class=ZeroRedundancyOptimizer)

    model, optimizer = build()
    train(model, optimizer, range(CHECKPOINT_STEP), rank, world)
    optimizer.consolidate_state_dict(to=0)
    if rank == 0:
        path.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict()},
                   path / "checkpoint.pt")
    dist.barrier()
    train(model, optimizer, RESUMED_STEPS, rank, world)
    run = {"uninterrupted": full_parameters(model)}
    model, optimizer = build()
    saved = torch.load(path / "checkpoint.pt", weights_only=True)
    model.module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    train(model, optimizer, RESUMED_STEPS, rank, world)
    run["resumed"] = full_parameters(model)
    run["resumed_step_counts"] = [float(s["step"]) for s in optimizer.optim.state.values()]
    return run


def skip_nonfinite_in_one_partition(rank: int, world: int, together: bool) -> dict:
    """ZeRO: an Inf in a gradient that only rank 0's inner optimizer holds (every rank sees the
    same all-reduced gradients; each updates its partition). With skip_together every rank skips
    the step; without, rank 0 skips and the other ranks update their partitions."""
    model = DistributedDataParallel(build_model())
    optimizer = make_optimizer(model.parameters(), "adam-amsgrad", "auto",
                               optimizer_class=ZeroRedundancyOptimizer, skip_nonfinite=True)
    if together:
        skip_together(optimizer)
    params = list(model.parameters())
    owned = [next(i for i, p in enumerate(params)  # rank 0 names a parameter it alone updates
                  if any(p is q for q in optimizer.optim.param_groups[0]["params"]))]
    dist.broadcast_object_list(owned, src=0)
    poisoned = params[owned[0]]
    return {**run_with_spoiled_step(model, optimizer, rank, world,
                                    lambda: poisoned.grad.view(-1)),
            "skipped_steps": optimizer.optim.skipped_steps}


def run_with_spoiled_step(model: nn.Module, optimizer: torch.optim.Optimizer, rank: int,
                          world: int, spoiled: Callable[[], torch.Tensor] | None) -> dict:
    """Steps 0, 1; step 2 with ``spoiled()[0] = inf`` (where given: that rank's gradient entry),
    then steps 3, 4. The whole parameters before and after step 2, and at the end."""
    train(model, optimizer, range(2), rank, world)
    before = full_parameters(model)
    x, y = batch(2, rank, world)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    if spoiled is not None:
        with torch.no_grad():
            spoiled()[0] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.step()
    after_skip = full_parameters(model)
    train(model, optimizer, (3, 4), rank, world)
    return {"before": before, "after_skip": after_skip, "final": full_parameters(model)}


def section_fsdp2(rank: int, world: int, out: Path) -> dict:
    results = {}
    for config, impl in RUNS:
        results[f"fsdp2/{config}/{impl}"] = trained(
            fsdp2(build_model()), config, impl, rank, world)
    for config, impl in [*RUNS, *((config, "fast") for config in CONFIGS)]:
        results[f"fsdp2-float32/{config}/{impl}"] = trained(
            fsdp2(build_model(torch.float32)), config, impl, rank, world)
    for impl in ("reference", "auto"):
        results[f"skip-nonfinite/{impl}"] = skip_nonfinite_on_one_shard(rank, world, impl)
    return results


def skip_nonfinite_on_one_shard(rank: int, world: int, impl: str) -> dict:
    """An Inf lands in rank 1's shard of one gradient only: every rank must skip the step."""
    model = fsdp2(build_model())
    optimizer = make_optimizer(model.parameters(), "adam-amsgrad", impl, skip_nonfinite=True)
    spoiled = (lambda: model[4].weight.grad.to_local()[0]) if rank == 1 else None
    return {**run_with_spoiled_step(model, optimizer, rank, world, spoiled),
            "skipped_steps": optimizer.skipped_steps,
            "adam_steps": [float(s["step"]) for s in optimizer.state.values()]}


def section_checkpoint(rank: int, world: int, out: Path) -> dict:
    """Per run: train, save, train on (uninterrupted); resume from our checkpoint; resume from
    the checkpoint one process saved (out/1proc/...)."""
    results = {}
    for config, impl in CHECKPOINT_RUNS:
        model = fsdp2(build_model())
        optimizer = make_optimizer(model.parameters(), config, impl)
        train(model, optimizer, range(CHECKPOINT_STEP), rank, world)
        save_checkpoint(out / "2proc" / config / impl, model, optimizer)
        train(model, optimizer, RESUMED_STEPS, rank, world)
        run = {"uninterrupted": full_parameters(model)}
        for name, source in (("resumed", "2proc"), ("from_1proc", "1proc")):
            model = fsdp2(build_model())
            optimizer = make_optimizer(model.parameters(), config, impl)
            load_checkpoint(out / source / config / impl, model, optimizer)
            train(model, optimizer, RESUMED_STEPS, rank, world)
            run[name] = full_parameters(model)
            run[f"{name}_step_counts"] = [float(s["step"]) for s in optimizer.state.values()]
        results[f"{config}/{impl}"] = run
    return results


def job_muon(rank: int, world: int, out: Path) -> dict:
    """Muon on FSDP2 shards (Shard(0): the 3-row output layer splits 2 + 1), on both engine
    choices; Muon's own job, so the training job's sections stay as they are."""
    results = {}
    for config, hyperparameters in MUON_RUNS.items():
        for impl in ("reference", "auto"):
            model = fsdp2(build_matrix_model())
            optimizer = descend.Muon(model.parameters(), impl=impl, **hyperparameters)
            train(model, optimizer, range(STEPS), rank, world)
            results[f"{config}/{impl}"] = full_parameters(model)
    return results


def job_crash(rank: int, world: int, out: Path) -> dict:
    """Rank 1 dies; rank 0 waits in a collective that will never complete."""
    if rank == 1:
        raise RuntimeError("rank 1 crashed on purpose")
    dist.barrier()
    return {}


def job_hang(rank: int, world: int, out: Path) -> dict:
    """Rank 1 never arrives; rank 0 waits in a collective."""
    if rank == 1:
        time.sleep(3600)
    dist.barrier()
    return {}


SECTIONS = {name.removeprefix("section_"): f for name, f in globals().items()
            if name.startswith("section_")}


def job_training(rank: int, world: int, out: Path) -> dict:
    results = {"errors": {}}
    for name, section in SECTIONS.items():
        try:
            results.update(section(rank, world, out))
        except Exception:
            results["errors"][name] = traceback.format_exc()
            print(results["errors"][name], flush=True)
    return results


JOBS = {**SECTIONS, **{name.removeprefix("job_"): f for name, f in globals().items()
                       if name.startswith("job_")}}


def main() -> None:
    job, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    started = time.perf_counter()
    results = JOBS[job](rank, world, out)
    print(f"rank {rank}: job {job} ran in {time.perf_counter() - started:.1f} s", flush=True)
    engine = engines.numba_backend()  # what impl="auto" runs CPU float tensors on
    results["auto_engine"] = getattr(engine, "__name__", engine)
    torch.save(results, out / f"rank{rank}.pt")
    finish()  # a rank that raised exits non-zero through the traceback, as before


if __name__ == "__main__":
    main()
