"""Train a model with a descend optimizer on several processes or machines, under torchrun.

One machine, 2 processes (CPU, gloo):
    torchrun --standalone --nproc-per-node=2 examples/train_distributed.py --wrapper fsdp2

Two machines (run on each; --node-rank 0 on the machine whose address is --master-addr):
    torchrun --nnodes=2 --nproc-per-node=1 --node-rank=0 --master-addr=10.0.0.1 \
        --master-port=29500 examples/train_distributed.py --checkpoint-dir /shared/ckpt

--wrapper ddp replicates the model (DistributedDataParallel); --wrapper fsdp2 shards parameters,
gradients and optimizer state over the ranks (torch.distributed.fsdp.fully_shard). The optimizer
is a descend optimizer either way, unchanged. Every --checkpoint-every steps all ranks write one
torch.distributed.checkpoint directory; --resume continues from the latest one (or a given one),
with any number of ranks. Each step's global batch depends only on the step number, so a resumed
run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from descend.distributed import finish, load_checkpoint, save_checkpoint
from descend.lab import tasks
from descend.lab.spec import parse_spec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mnist", help="a descend.lab task (default: mnist)")
    parser.add_argument("--optimizer", default="adam:lr=1e-3",
                        help="optimizer spec, e.g. adam:lr=1e-3 or momentum:lr=0.05")
    parser.add_argument("--wrapper", choices=("ddp", "fsdp2"), default="fsdp2")
    parser.add_argument("--steps", type=int, default=300, help="total optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, help="where step-N checkpoints go")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                        help="continue from CHECKPOINT (default: latest in --checkpoint-dir)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.log_every < 1 or args.checkpoint_every < 1:
        parser.error("--steps, --batch-size, --log-every and --checkpoint-every must be >= 1")
    if args.resume == "latest" and args.checkpoint_dir is None:
        parser.error("--resume without a path needs --checkpoint-dir to look in")
    return args


def wrap(model: nn.Module, wrapper: str) -> nn.Module:
    if wrapper == "ddp":
        return DistributedDataParallel(model)
    for module in model.modules():  # FSDP2: each Linear its own unit, then the root
        if isinstance(module, nn.Linear):
            fully_shard(module)
    return fully_shard(model)


def global_batch(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the global batch of ``step``: a fresh permutation of the data each epoch."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[position * batch_size:(position + 1) * batch_size]


def latest_checkpoint(directory: Path) -> Path:
    """The newest complete step-N checkpoint (DCP writes .metadata last)."""
    done = sorted(directory.glob("step-*/.metadata"))
    if not done:
        raise SystemExit(f"--resume: no checkpoint in {directory} (no step-*/.metadata)")
    return done[-1].parent


def checkpoint_step(path: Path) -> int:
    """The step a ``step-N`` checkpoint directory was saved at."""
    digits = path.name.removeprefix("step-")
    if not digits.isdigit():
        raise SystemExit(f"--resume {path}: expected a step-N directory written by this script")
    return int(digits)


def mean_over_ranks(value: torch.Tensor) -> float:
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value.item() / dist.get_world_size()


@torch.no_grad()
def parameter_norm(model: nn.Module) -> float:
    """The L2 norm of all parameters, gathered from every rank's shard under FSDP2."""
    total = sum(float((p.full_tensor() if hasattr(p, "full_tensor") else p).double().square()
                      .sum()) for p in model.parameters())
    return math.sqrt(total)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
    train(args)
    finish()


def train(args: argparse.Namespace) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the number of "
                         f"processes ({world})")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    say = print if rank == 0 else (lambda *a, **k: None)

    task = tasks.get(args.task)
    data = task.load(args.seed).train
    x, y = data.x.to(device), data.y.to(device)
    if args.batch_size > len(x):
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the {len(x)} examples")
    model = wrap(task.build_model(args.seed).to(device), args.wrapper)
    optimizer = parse_spec(args.optimizer).build(model.parameters())
    say(f"{args.task}: {len(x)} examples, {world} processes, {args.wrapper}, "
        f"{type(optimizer).__name__} on engine impl={optimizer.defaults['impl']}")

    start = 0
    if args.resume:
        source = latest_checkpoint(args.checkpoint_dir) if args.resume == "latest" else \
            Path(args.resume)
        start = checkpoint_step(source)
        load_checkpoint(source, model, optimizer)
        say(f"resumed from {source} at step {start}")

    local = args.batch_size // world
    for step in range(start, args.steps):
        indices = global_batch(step, len(x), args.batch_size, args.seed)
        mine = indices[rank * local:(rank + 1) * local]
        optimizer.zero_grad()
        loss = task.loss(model(x[mine]), y[mine])
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            say(f"step {done} loss {mean_over_ranks(loss):.6f}")
        if args.checkpoint_dir and (done % args.checkpoint_every == 0 or done == args.steps):
            save_checkpoint(args.checkpoint_dir / f"step-{done:06d}", model, optimizer)
    norm = parameter_norm(model)
    say(f"final step {args.steps} parameter norm {norm!r}")


if __name__ == "__main__":
    main()
