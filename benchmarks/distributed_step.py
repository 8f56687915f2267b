"""Times descend's optimizer.step() on an FSDP2-sharded model (2 ranks) next to one process.

    python benchmarks/distributed_step.py [--optimizers momentum,adam] [--width 1024]

Starts 2 processes (torchrun, gloo on 127.0.0.1, one thread each). In alternating rounds rank 0
alone steps the whole model (one process; rank 1 waits) and both ranks step the FSDP2-sharded
model (each updates its half, as DTensor local shards), so both figures see the same machine
load. Each figure is the median of --repeats steps over the same gradients.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import descend
from descend import engines

IMPLS = ("reference", "auto")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizers", default="momentum,adam",
                        help="comma-separated descend names (descend.available())")
    parser.add_argument("--width", type=int, default=1024, help="MLP width")
    parser.add_argument("--layers", type=int, default=4, help="Linear layers")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps (4 rounds)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.optimizers.split(",")) - set(descend.available())
    if unknown:
        parser.error(f"unknown optimizers {sorted(unknown)}; choose from {descend.available()}")
    return args


def build_model(width: int, layers: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*(nn.Linear(width, width) for _ in range(layers)))


def ready_optimizer(model: nn.Module, name: str, impl: str, width: int):
    """An optimizer with gradients in place and one untimed step done (state allocation and
    kernel compilation happen there); each timed step reuses the same gradients."""
    optimizer = descend.create(name, model.parameters(), impl=impl)
    model(torch.randn(32, width)).square().mean().backward()
    optimizer.step()
    return optimizer


def timed_steps(optimizer, repeats: int, sync) -> list[float]:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        optimizer.step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def fsdp2(model: nn.Sequential) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        fully_shard(layer)
    return fully_shard(model)


def worker(args: argparse.Namespace) -> None:
    """Rounds alternate one process (rank 0 alone, the others wait) and FSDP2 on every rank,
    in the same processes, so load from elsewhere hits both alike. Rank 0 prints medians."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    keys = [(name, impl) for name in args.optimizers.split(",") for impl in IMPLS]
    sharded = {k: ready_optimizer(fsdp2(build_model(args.width, args.layers)), *k, args.width)
               for k in keys}
    whole = {k: ready_optimizer(build_model(args.width, args.layers), *k, args.width)
             for k in keys} if rank == 0 else {}
    samples = {k: ([], []) for k in keys}
    rounds = 4
    for _ in range(rounds):
        for k in keys:
            if rank == 0:
                samples[k][0].extend(timed_steps(whole[k], args.repeats // rounds, lambda: None))
            dist.barrier()
            samples[k][1].extend(timed_steps(sharded[k], args.repeats // rounds, dist.barrier))
    if rank == 0:
        print("RESULTS " + json.dumps({f"{n}/{i}": [statistics.median(samples[n, i][0]),
                                                    statistics.median(samples[n, i][1])]
                                       for n, i in keys}))
    dist.destroy_process_group()


def run_ranks(args: argparse.Namespace) -> dict[str, list[float]]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", __file__, "--worker", "--optimizers", args.optimizers,
               "--width", str(args.width), "--layers", str(args.layers),
               "--repeats", str(args.repeats)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    for line in done.stdout.splitlines():
        if line.startswith("RESULTS "):
            return json.loads(line.removeprefix("RESULTS "))
    raise SystemExit(f"the 2-rank run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    params = args.layers * (args.width * args.width + args.width)
    engine = engines.numba_backend()  # what impl="auto" runs CPU float tensors on
    print(f"MLP {args.layers} x Linear({args.width}, {args.width}): {params / 1e6:.1f}M "
          f"float32 parameters; impl='auto' is {getattr(engine, '__name__', type(engine))}; "
          f"median of {args.repeats} steps, 1 thread per process")
    results = run_ranks(args)
    print(f"{'optimizer/impl':<24}{'1 process ms':>14}{'FSDP2 2 ranks ms':>18}{'2 ranks/1':>11}")
    for key, (one, two) in results.items():
        print(f"{key:<24}{one * 1e3:>14.2f}{two * 1e3:>18.2f}{two / one:>11.2f}")


if __name__ == "__main__":
    main()
