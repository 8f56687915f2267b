"""Time each optimizer's default step against torch's fastest implementation, side by side.

For every algorithm: descend's default step, and torch's for-loop, foreach and fused steps (where
torch has them) on the same parameters and gradients. torch's fastest is then run interleaved with
descend, step for step, and the table quotes the median of the per-pair ratios (timings drift on a
shared machine; ratios of interleaved steps do not). The bandwidth bound: an optimizer step reads
and writes parameters and state once and reads gradients once (bytes per parameter as stored,
below: ``--dtype bfloat16`` halves them), so its best time is bytes / the attainable bandwidth,
measured here as the best of an in-place add and torch's fused SGD and Adam over one
64M-element tensor. Also printed: the optimizer state's bytes per parameter, the peak extra
memory of a descend step (allocations beyond parameters, gradients and state) and the first
step's time in a fresh process, with an empty and with a warm kernel cache.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import descend
from descend import precision

MB = 1e6
BANDWIDTH_ELEMENTS = 64 * 2**20


@dataclass(frozen=True)
class Algorithm:
    """A row: descend's default constructor and torch's candidates for the same algorithm (or,
    where torch lacks it, the reference package's class: ``package`` is "module:Class")."""

    name: str
    descend_name: str
    hyper: dict[str, Any]
    torch_cls: type[torch.optim.Optimizer] | None
    torch_hyper: dict[str, Any]
    has_fused: bool
    note: str = ""
    package: str = ""

    def torch_impls(self) -> dict[str, dict[str, Any]]:
        if self.package:
            return {self.package.split(":")[0].replace("_", "-"): {}}
        impls = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}}
        if self.has_fused:
            impls["fused"] = {"fused": True}
        return impls

    def competitor(self) -> type[torch.optim.Optimizer]:
        """torch's class, or the reference package's (an ImportError if it is not installed)."""
        if not self.package:
            return self.torch_cls
        module, name = self.package.split(":")
        return getattr(importlib.import_module(module), name)


ALGORITHMS = [
    Algorithm("sgd", "sgd", {"lr": 1e-3}, torch.optim.SGD, {"lr": 1e-3}, True),
    Algorithm("momentum", "momentum", {"lr": 1e-3}, torch.optim.SGD,
              {"lr": 1e-3, "momentum": 0.9}, True),
    Algorithm("nesterov", "nesterov", {"lr": 1e-3}, torch.optim.SGD,
              {"lr": 1e-3, "momentum": 0.9, "nesterov": True}, True),
    Algorithm("adagrad", "adagrad", {}, torch.optim.Adagrad, {}, True),
    Algorithm("rmsprop", "rmsprop", {}, torch.optim.RMSprop, {}, False),
    Algorithm("rmsprop+momentum", "rmsprop", {"momentum": 0.9}, torch.optim.RMSprop,
              {"momentum": 0.9}, False),
    Algorithm("rmsprop-nesterov", "rmsprop-nesterov", {}, torch.optim.RMSprop,
              {"lr": 1e-3, "momentum": 0.9}, False,
              note="torch has no RMSprop with Nesterov momentum: compared with its momentum form"),
    Algorithm("adadelta", "adadelta", {}, torch.optim.Adadelta, {}, False),
    Algorithm("adam", "adam", {}, torch.optim.Adam, {}, True),
    Algorithm("adam amsgrad", "adam", {"amsgrad": True}, torch.optim.Adam, {"amsgrad": True},
              True),
    Algorithm("adamw", "adamw", {}, torch.optim.AdamW, {}, True),
    Algorithm("adamax", "adamax", {}, torch.optim.Adamax, {}, False),
    Algorithm("nadam", "nadam", {}, torch.optim.NAdam, {}, False),
    Algorithm("radam", "radam", {}, torch.optim.RAdam, {}, False),
    Algorithm("rprop", "rprop", {}, torch.optim.Rprop, {}, False),
    Algorithm("asgd", "asgd", {}, torch.optim.ASGD, {}, False),
    Algorithm("lion", "lion", {}, None, {}, False, package="lion_pytorch:Lion",
              note="torch has no Lion: compared with lion-pytorch 0.2.5 (a for-loop)"),
    Algorithm("ademamix", "ademamix", {}, None, {}, False, package="pytorch_optimizer:AdEMAMix",
              note="torch has no AdEMAMix: compared with pytorch-optimizer 4.1.0 (foreach)"),
]
DTYPES = precision.PARAMETER_DTYPES
BY_NAME = {a.name: a for a in ALGORITHMS}


def shape_sizes(shape: str) -> tuple[list[int], str]:
    """Tensor sizes of a benchmark model, and a description of it."""
    if shape == "large":  # a 4096x1024 embedding and 30 ~1M-element layers: 32.9M parameters
        return [4096 * 1024] + [957_000] * 30, "31 tensors of 1 to 4M elements"
    if shape == "small":  # a small net: 150 weights of 1k to 15k elements and their biases
        sizes = []
        for i in range(150):
            sizes += [1024 + (13_776 * i) // 149, (10, 64, 128)[i % 3]]
        return sizes, "300 tensors of 10 to 15k elements (150 weights, 150 biases)"
    if shape == "tiny":  # for the end-to-end test
        return [3000, 500, 20_000, 7], "4 tensors of 7 to 20k elements"
    raise ValueError(f"unknown --shape {shape!r}; choose large, small or tiny")


def make_params(sizes: list[int], seed: int = 0, dtype: torch.dtype = torch.float32,
                device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for n in sizes:
        p = torch.randn(n, generator=g).to(device, dtype)
        p.grad = (torch.randn(n, generator=g) * 1e-2).to(device, dtype)
        params.append(p)
    return params


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's per-element state (step counters and other scalars left out)."""
    return sum(t.nbytes for state in optimizer.state.values() for t in state.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0)


def bytes_moved(params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> int:
    """What a step must move at least: read and write parameters and state, read gradients."""
    return sum(2 * p.nbytes + p.grad.nbytes for p in params) + 2 * state_bytes(optimizer)


def step_times_ms(step: Callable[[], Any], steps: int) -> list[float]:
    """Wall-clock ms of each call; on a GPU, until the device has finished the step."""
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else _nothing
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _nothing() -> None:
    pass


def median_ms(step: Callable[[], Any], steps: int) -> float:
    return statistics.median(step_times_ms(step, steps))


# ---- attainable bandwidth -------------------------------------------------------------------

def attainable_bandwidth(elements: int, repeats: int = 8,
                         device: str = "cpu") -> tuple[float, str]:
    """GB/s: the best of an in-place add (12 B/element) and torch's fused SGD (12 B) and
    Adam (28 B) over one tensor of ``elements`` float32 values, each its fastest of ``repeats``
    steps (the attainable figure: other processes only ever slow a step down)."""
    a = torch.randn(elements, device=device)
    a.grad = torch.randn(elements, device=device)
    fastest = {"in-place add": min(step_times_ms(lambda: a.add_(a.grad), repeats))}
    nbytes = {"in-place add": 12, "torch fused SGD": 12, "torch fused Adam": 28}
    for name, opt in (("torch fused SGD", torch.optim.SGD([a], lr=1e-6, fused=True)),
                      ("torch fused Adam", torch.optim.Adam([a], fused=True))):
        opt.step()
        fastest[name] = min(step_times_ms(opt.step, repeats))
        del opt
    results = {name: nbytes[name] * elements / (ms / 1e3) for name, ms in fastest.items()}
    best = max(results, key=results.get)
    return results[best] / 1e9, best


# ---- memory ---------------------------------------------------------------------------------

class AllocationCounter(TorchDispatchMode):
    """Counts the bytes of tensors that torch ops allocate while active, and their peak.

    A tensor's storage counts from the op that creates it until its last tensor is freed;
    results that live in an input's storage (in-place ops, views) allocate nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.owners: dict[int, int] = {}  # storage address -> live tensors on it

    def _release(self, address: int, nbytes: int) -> None:
        self.owners[address] -= 1
        if not self.owners[address]:
            del self.owners[address]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            address = storage.data_ptr()
            if address in inputs and address not in self.owners:
                continue
            if address not in self.owners:
                self.owners[address] = 0
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.owners[address] += 1
            weakref.finalize(t, self._release, address, storage.nbytes())
        return out


def peak_extra_bytes(step: Callable[[], Any]) -> int:
    """Peak bytes allocated during ``step`` beyond what existed before: torch tensors (counted
    op by op) plus Python/numpy objects (tracemalloc)."""
    tracemalloc.start()
    try:
        with AllocationCounter() as counter:
            step()
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return counter.peak + python_peak


# ---- first step in a fresh process ----------------------------------------------------------

FIRST_STEP_SCRIPT = """
import time, torch, descend
from descend.bench import make_params, shape_sizes
params = make_params(shape_sizes({shape!r})[0])
start = time.perf_counter()
opt = descend.create({name!r}, params, **{hyper!r})
opt.step()
print(time.perf_counter() - start)
"""


def first_step_seconds(algorithm: Algorithm, shape: str, cache: str, native: bool) -> float:
    """Construction and first step of ``algorithm`` in a new Python process using ``cache``
    as the kernel cache directory (numba's import and compilation or cache load included), with
    or without the compiled per-step checks."""
    script = FIRST_STEP_SCRIPT.format(shape=shape, name=algorithm.descend_name,
                                      hyper=algorithm.hyper)
    env = {**os.environ, "DESCEND_CACHE_DIR": cache, "DESCEND_NATIVE": "1" if native else "0"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def copy_native_library(cache: str) -> bool:
    """Copies the built compiled-checks library into the kernel cache ``cache``; False if this
    machine has not built it."""
    from descend.engines import codegen, native

    built = native.library_path()
    if not built.exists():
        return False
    target = Path(cache) / built.relative_to(codegen.cache_dir())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, target)
    return True


# ---- the comparison -------------------------------------------------------------------------

@dataclass
class Row:
    algorithm: Algorithm
    descend_ms: float
    torch_ms: float
    torch_impl: str
    ratio: float
    fraction_of_bound: float
    peak_extra_bytes: int
    bytes_per_param: float  # moved by a step
    state_bytes_per_param: float


def compare(algorithm: Algorithm, sizes: list[int], steps: int, candidate_steps: int,
            bandwidth: float, dtype: torch.dtype = torch.float32,
            options: dict[str, Any] | None = None, device: str = "cpu") -> Row:
    """descend (with constructor ``options`` such as state_dtype) against torch's fastest
    implementation, on parameters and gradients of ``dtype`` on ``device``."""
    ours_params, theirs_params = (make_params(sizes, dtype=dtype, device=device)
                                  for _ in range(2))
    ours = descend.create(algorithm.descend_name, ours_params, **algorithm.hyper,
                          **(options or {}))
    ours.step()  # compiles (or loads) the kernel and allocates state
    best_ms, best_impl = float("inf"), ""
    for impl, flags in algorithm.torch_impls().items():
        theirs = algorithm.competitor()(theirs_params, **algorithm.torch_hyper, **flags)
        theirs.step()
        ms = median_ms(theirs.step, candidate_steps)
        if ms < best_ms:
            best_ms, best_impl = ms, impl
        del theirs
    theirs = algorithm.competitor()(theirs_params, **algorithm.torch_hyper,
                                    **algorithm.torch_impls()[best_impl])
    theirs.step()
    ours_times, theirs_times = [], []
    for _ in range(steps):  # interleaved: both see the same machine load
        ours_times.append(median_ms(ours.step, 1))
        theirs_times.append(median_ms(theirs.step, 1))
    ours_ms = statistics.median(ours_times)
    nbytes, n = bytes_moved(ours_params, ours), sum(sizes)
    return Row(algorithm, ours_ms, statistics.median(theirs_times), best_impl,
               statistics.median(t / o for o, t in zip(ours_times, theirs_times, strict=True)),
               nbytes / (ours_ms / 1e3) / 1e9 / bandwidth, peak_extra_bytes(ours.step),
               nbytes / n, state_bytes(ours) / n)


def format_table(rows: list[Row], largest_param_bytes: int) -> str:
    head = (f"{'algorithm':<18} {'B/param':>7} {'descend ms':>10} {'torch ms':>9} "
            f"{'torch impl':<10} {'ratio':>6} {'of bound':>8} {'peak extra':>10} "
            f"{'state B/param':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        extra = f"{r.peak_extra_bytes / MB:.2f} MB"
        lines.append(f"{r.algorithm.name:<18} {r.bytes_per_param:>7.0f} "
                     f"{r.descend_ms:>10.2f} {r.torch_ms:>9.2f} {r.torch_impl:<10} "
                     f"{r.ratio:>5.2f}x {r.fraction_of_bound:>8.2f} {extra:>10} "
                     f"{r.state_bytes_per_param:>13.0f}")
    notes = [f"* {r.algorithm.name}: {r.algorithm.note}" for r in rows if r.algorithm.note]
    lines.append(f"ratio: torch ms / descend ms, median of per-pair ratios of interleaved steps. "
                 f"peak extra: beyond params, grads and state (largest param: "
                 f"{largest_param_bytes / MB:.2f} MB).")
    return "\n".join(lines + notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", choices=["large", "small", "tiny"], default="large",
                        help="large: 32.9M params in 31 tensors; small: 1.2M in 300 tensors")
    parser.add_argument("--steps", type=int, default=None,
                        help="interleaved step pairs per algorithm (default: 10 for the large "
                             "shape, 50 for the others)")
    parser.add_argument("--candidate-steps", type=int, default=3,
                        help="steps timed per torch implementation to pick its fastest")
    parser.add_argument("--algorithms", default=",".join(BY_NAME),
                        help=f"comma-separated subset of: {', '.join(BY_NAME)}")
    parser.add_argument("--bandwidth-elements", type=int, default=BANDWIDTH_ELEMENTS,
                        help="size of the tensor the attainable bandwidth is measured on")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32",
                        help="dtype of parameters and gradients (the state takes it too unless "
                             "--state-dtype is given), for descend and torch alike")
    parser.add_argument("--state-dtype", choices=list(DTYPES), default=None,
                        help="descend's state_dtype (torch keeps its state in the parameters' "
                             "dtype)")
    parser.add_argument("--stochastic-rounding", action="store_true",
                        help="descend rounds its bfloat16/float16 stores stochastically")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where parameters live (cuda: descend's triton backend against "
                             "torch's fused or foreach steps; the bandwidth over 1 GiB)")
    parser.add_argument("--no-first-step", action="store_true",
                        help="skip timing the first step in fresh processes (cold, warm cache)")


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.algorithms.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise ValueError(f"unknown --algorithms {unknown or names}; choose from "
                         f"{', '.join(BY_NAME)}")
    if args.steps is None:
        args.steps = 10 if args.shape == "large" else 50
    if args.steps < 1 or args.candidate_steps < 1:
        raise ValueError("--steps and --candidate-steps must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device on this machine")
    sizes, description = shape_sizes(args.shape)
    if args.device == "cuda":
        args.no_first_step = True  # (the fresh-process timing measures the CPU kernel cache)
        if args.bandwidth_elements == BANDWIDTH_ELEMENTS:
            args.bandwidth_elements = 2**28  # 1 GiB of float32
    bandwidth, source = attainable_bandwidth(args.bandwidth_elements, device=args.device)
    numba = descend.engines.numba_backend()
    engine = "numba" if not isinstance(numba, str) else f"reference ({numba})"
    if args.device == "cuda":
        triton = descend.engines.triton_backend.available()
        engine = "triton" if triton is None else f"foreach ({triton})"
    from descend.engines import native

    checks = "compiled" if native.enabled() and native.library_path().exists() else "Python"
    dtype = DTYPES[args.dtype]
    options = {} if args.state_dtype is None else {"state_dtype": DTYPES[args.state_dtype]}
    state = f", descend's state in {args.state_dtype}" if args.state_dtype else ""
    if args.stochastic_rounding:
        options["stochastic_rounding"] = True
        state += ", descend rounding stochastically"
    print(f"descend bench: shape {args.shape}: {sum(sizes) / 1e6:.2f}M {args.dtype} parameters "
          f"in {description}{state}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, impl='auto' runs {args.device} float tensors on {engine}, {checks} per-step "
          "checks")
    print(f"attainable bandwidth: {bandwidth:.1f} GB/s (best: {source}, "
          f"{args.bandwidth_elements / 2**20:.0f}M elements)", flush=True)
    rows = []
    for name in names:
        try:
            BY_NAME[name].competitor()
        except ImportError as e:  # a reference package (the dev extra) is not installed
            print(f"  {name}: skipped, its reference package is missing ({e}): pip install "
                  "'descend[dev]'", file=sys.stderr)
            continue
        rows.append(compare(BY_NAME[name], sizes, args.steps, args.candidate_steps, bandwidth,
                            dtype, options, args.device))
        print(f"  {name}: done", file=sys.stderr, flush=True)
    print(format_table(rows, dtype.itemsize * max(sizes)))
    if not args.no_first_step:
        algorithm = BY_NAME[names[0] if "adam" not in names else "adam"]
        with tempfile.TemporaryDirectory(prefix="descend-bench-cache-") as cache:
            cold = first_step_seconds(algorithm, args.shape, cache, native=False)
            with_native = copy_native_library(cache)  # a warm cache holds it too, where built
            warm = first_step_seconds(algorithm, args.shape, cache, native=with_native)
        print(f"first step of {algorithm.name} in a fresh process (construction, numba import, "
              f"compile or cache load): cold {cold:.2f} s, warm cache {warm:.2f} s"
              + ("" if with_native else " (compiled per-step checks not built here)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m descend.bench",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
