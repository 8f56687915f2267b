"""One descend optimizer under torch.compile, checked against the same steps run eagerly.

    python tests/compile_worker.py NAME[,NAME...] MODE [--steps N] [--against eager|torch] ...

MODE is ``train_step`` (torch.compile of a whole training step: zero_grad, forward, backward and
``opt.step()``) or ``opt_step`` (``torch.compile(opt.step)`` called after an eager backward).
Each NAME (a registry name; several run one after another in this process) trains a small
float32 MLP for N steps compiled and the same N steps on a twin model: descend's optimizer run
eagerly (``--against eager``) or torch.optim's class compiled the same way (``--against
torch``), both with an lr scheduler stepping each step. Parameters and every state buffer must
agree to ``--rtol``, and the parameters' displacements from their start to ``--update-rtol``.

Prints one JSON line per NAME: the largest relative difference (per tensor: max |a - b| over
max |b|), that of the parameters' displacement from their start, the graph breaks dynamo
reported (where, why, and the frame dynamo gave up on and ran eagerly), the recompiles, and which
of descend's paths the compiled steps took (``paths``: the torch-ops step with the step count as a
tensor, as a number read with .item(), or the eager engine step). Exits 1 on a mismatch,
2 on a usage error, 3 when compiling raised (its error goes in the JSON line); a crash is the
caller's to see.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import logging
import re
import sys
import time
from typing import Any

import torch
import torch._dynamo
from torch import Tensor, nn

import descend
from descend.engines import reference
from descend.registry import entry

MODES = ("train_step", "opt_step")


class _Records(logging.Filter):
    """Collects dynamo's graph-break and recompile log records (the TORCH_LOGS artifacts
    ``graph_breaks`` and ``recompiles``) and keeps them off stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.graph_breaks: list[str] = []
        self.recompiles: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.endswith("__graph_breaks"):
            self.graph_breaks.append(record.getMessage())
            return False
        if record.name.endswith("__recompiles"):
            self.recompiles.append(record.getMessage())
            return False
        return True


def _install_records() -> _Records:
    """Turns the two artifacts on; the handlers set_logs installs pass their records here."""
    torch._logging.set_logs(graph_breaks=True, recompiles=True)
    records = _Records()
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.name.startswith("torch"):
            for handler in logger.handlers:
                handler.addFilter(records)
    return records


def _where(message: str) -> list[str]:
    """The user frames (file:line in function) of a graph-break message's stack, outermost
    first, torch's own left out."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)$', message, flags=re.M)
    return [f"{path.split('/src/')[-1].split('/tests/')[-1]}:{line} in {fn}"
            for path, line, fn in frames if "/torch/" not in path]


def _summarize_break(message: str) -> dict[str, Any]:
    """Where a graph break happened, why, and the frame dynamo gave up on (then run eagerly)."""
    at = re.search(r"in user code at (\S+)", message)
    reason = re.search(r"Graph Break Reason: (.*?)\n\s*\n?(.*)", message)
    skipped = re.search(r"frame skipped: (\w+) \(([^)]+)\)", message)
    return {
        "at": at.group(1).split("/src/")[-1].split("/site-packages/")[-1] if at else None,
        "reason": (" ".join(reason.groups()).strip()[:300] if reason
                   else message.splitlines()[0][:300]),
        "frame_skipped": (f"{skipped.group(1)} ({skipped.group(2).split('/src/')[-1]})"
                          if skipped else None),
        "user_frames": _where(message),
    }


def build_model(dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


def fixed_data(dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g)
    y = torch.randn(32, 4, generator=g)
    return x.to(dtype), y.to(dtype)


def make_descend(name: str, params: Any, args: argparse.Namespace):
    kwargs: dict[str, Any] = {"impl": "auto", **args.hyper}
    if args.skip_nonfinite:
        kwargs["skip_nonfinite"] = True
    if args.tensor_lr:
        kwargs["lr"] = torch.tensor(kwargs.get("lr", entry(name).defaults()["lr"]))
    torch.manual_seed(7)  # the stochastic-rounding seed: the same for the compiled and the eager
    if name == "muon":  # matrices only, as torch's Muon: a real model gives the biases to AdamW
        params = [p for p in params if p.ndim == 2]
    opt = descend.create(name, params, **kwargs)
    if callable(getattr(opt, "train", None)):  # schedule-free: steps in train mode
        opt.train()
    return opt


def make_torch(name: str, params: Any, args: argparse.Namespace):
    """torch.optim's class with the registry entry's hyperparameters (where torch has them)."""
    e = entry(name)
    cls = getattr(torch.optim, e.cls.__name__)
    accepted = inspect.signature(cls.__init__).parameters
    defaults = {**e.defaults(), **args.hyper}
    descend_only = {k: v for k, v in defaults.items() if k not in accepted}
    own_defaults = {n: p.default for n, p in inspect.signature(e.cls.__init__).parameters.items()}
    changed = {k: v for k, v in descend_only.items() if own_defaults.get(k) != v}
    if changed:
        print(f"compile_worker: torch.optim.{cls.__name__} has no {sorted(changed)}",
              file=sys.stderr)
        raise SystemExit(2)
    kwargs = {k: v for k, v in defaults.items() if k in accepted}
    if args.tensor_lr:
        kwargs["lr"] = torch.tensor(kwargs["lr"])
    return cls(params, **kwargs)


def scheduler_for(opt: torch.optim.Optimizer):
    # A learning rate that changes at every step.
    return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)


def run(model: nn.Module, opt: torch.optim.Optimizer, mode: str, compiled: bool,
        args: argparse.Namespace) -> list[float]:
    steps, backend = args.steps, args.backend
    sched = scheduler_for(opt)
    x, y = fixed_data(getattr(torch, args.dtype))
    loss_fn = nn.MSELoss()
    losses: list[float] = []

    if mode == "train_step":
        def train_step() -> Tensor:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = torch.compile(train_step, backend=backend) if compiled else train_step
        for _ in range(steps):
            losses.append(float(fn().detach()))
            sched.step()
    else:
        step = opt.step
        if compiled and args.fullgraph:
            # The optimizer's own step, without the scheduler's wrapper (a function dynamo
            # skips, so a graph break of torch's): one graph, or an error.
            step = torch.compile(functools.partial(type(opt).step, opt), backend=backend,
                                 fullgraph=True)
            opt._opt_called = True  # what the skipped wrapper records for the scheduler
        elif compiled:
            step = torch.compile(opt.step, backend=backend)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            step()
            losses.append(float(loss.detach()))
            sched.step()
    return losses


class Probe:
    """Counts, while the compiled run lasts, which of descend's paths each step took: the
    torch-ops step applying the rule with the step count as a tensor (what a graph needs) or as
    a number (read with .item()), and the eager engine step (``Optimizer._step``). Under
    torch.compile a step that dynamo gave up on runs eagerly, where
    torch.compiler.is_compiling() is False."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        # Counted in tensors: dynamo guards on a Python int's value and a list's length (a
        # recompile at every step), not on a tensor's contents (an in-place add in the graph).
        self.tensors = {k: torch.zeros((), dtype=torch.int64)
                        for k in ("apply_tensor_step", "apply_number_step", "engine_steps")}
        self.opt = opt

    def __enter__(self) -> Probe:
        counts, apply, engine_step = self.tensors, reference.apply, self.opt._step

        def probed_apply(*args: Any, step_as_tensor: bool = False, **kwargs: Any) -> None:
            counts["apply_tensor_step" if step_as_tensor else "apply_number_step"].add_(1)
            return apply(*args, step_as_tensor=step_as_tensor, **kwargs)

        def probed_step(*args: Any, **kwargs: Any) -> Any:
            counts["engine_steps"].add_(1)
            return engine_step(*args, **kwargs)

        self.apply = apply
        reference.apply = probed_apply
        self.opt._step = probed_step
        return self

    def __exit__(self, *exc: object) -> None:
        reference.apply = self.apply
        del self.opt._step

    @property
    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.tensors.items()}


def rel(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b| (0 where both are all zeros)."""
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        return float("inf")
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    scale = b.abs().max().item() if b.numel() else 0.0
    if diff == 0:
        return 0.0
    return diff / scale if scale > 0 else float("inf")


def compile_stats(records: _Records) -> dict[str, Any]:
    """What dynamo did since the last call (counters and records are cleared)."""
    counters = torch._dynamo.utils.counters
    breaks = [_summarize_break(m) for m in records.graph_breaks]
    stats = {
        "graph_breaks": sum(counters["graph_break"].values()),
        "graph_break_reasons": {k.split("\n")[0]: v for k, v in counters["graph_break"].items()},
        "graph_breaks_logged": breaks,
        "graph_breaks_in_descend": sum((b["at"] or "").startswith("descend/") for b in breaks),
        "unique_graphs": counters["stats"]["unique_graphs"],
        "recompiles": len(records.recompiles),
        "recompile_reasons": [_recompile_reason(r) for r in records.recompiles],
    }
    counters.clear()
    records.graph_breaks.clear()
    records.recompiles.clear()
    return stats


def _recompile_reason(message: str) -> str:
    """The first failed guard of a recompile message, with the code line it guards."""
    failed = [ln.strip() for ln in message.splitlines() if re.match(r"\s*- \d+/\d+:", ln)]
    return (failed[0] if failed else message.splitlines()[-1].strip())[:300]


def compare(name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    if not args.keep_caches:
        torch._dynamo.reset()
    records = args.records
    compile_stats(records)  # clears what an earlier name left

    dtype = getattr(torch, args.dtype)
    model_c, model_e = build_model(dtype), build_model(dtype)
    start = [p.detach().clone() for p in model_e.parameters()]
    opt_c = make_descend(name, model_c.parameters(), args)
    if args.against == "torch":
        opt_e = make_torch(name, model_e.parameters(), args)
    else:
        opt_e = make_descend(name, model_e.parameters(), args)

    t0 = time.perf_counter()
    with Probe(opt_c) as probe:
        losses_c = run(model_c, opt_c, mode, True, args)
    compiled_s = time.perf_counter() - t0
    compiled = compile_stats(records)
    if args.against == "torch" and not args.keep_caches:
        torch._dynamo.reset()  # torch's class compiles from empty caches too
    losses_e = run(model_e, opt_e, mode, args.against == "torch", args)
    twin = compile_stats(records) if args.against == "torch" else None

    worst = {"what": None, "rel": 0.0}
    diffs: dict[str, float] = {}

    def note(what: str, value: float) -> None:
        diffs[what] = value
        if value > worst["rel"] or worst["what"] is None:
            worst.update(what=what, rel=value)

    updates = 0.0
    params_c, params_e = list(model_c.parameters()), list(model_e.parameters())
    for i, (pc, pe, p0) in enumerate(zip(params_c, params_e, start, strict=True)):
        note(f"param{i}", rel(pc, pe))
        updates = max(updates, rel(pc - p0, pe - p0))
        sc, se = opt_c.state[pc], opt_e.state[pe]
        keys = set(sc) | set(se)
        if args.against == "torch":  # torch keeps no step for SGD, nor a None buffer
            keys = {k for k in set(sc) & set(se) if isinstance(se[k], Tensor)}
        for k in sorted(keys):
            if k not in sc or k not in se:
                note(f"param{i}.{k} (missing)", float("inf"))
                continue
            a, b = sc[k], se[k]
            if not isinstance(a, Tensor) or not isinstance(b, Tensor):
                note(f"param{i}.{k}", 0.0 if a == b else float("inf"))
                continue
            note(f"param{i}.{k}", rel(a, b))
    lrs = [g["lr"] for g in opt_c.param_groups]
    lrs_e = [g["lr"] for g in opt_e.param_groups]
    lr_match = all(rel(torch.as_tensor(a), torch.as_tensor(b)) <= args.rtol
                   for a, b in zip(lrs, lrs_e, strict=True))

    ok = worst["rel"] <= args.rtol and updates <= args.update_rtol and lr_match
    return {
        "name": name, "mode": mode, "against": args.against, "backend": args.backend,
        "steps": args.steps, "tensor_lr": args.tensor_lr, "skip_nonfinite": args.skip_nonfinite,
        "hyper": args.hyper, "fullgraph": args.fullgraph,
        "ok": ok,
        "max_rel_diff": worst["rel"], "worst": worst["what"],
        "max_rel_update_diff": updates,
        "lr_match": lr_match,
        "final_loss": [losses_c[-1], losses_e[-1]],
        **compiled,
        "paths": probe.counts,
        "twin_compile": twin,
        "compiled_run_s": round(compiled_s, 2),
        "diffs": diffs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", help="registry name(s), comma-separated to run in sequence")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--against", choices=("eager", "torch"), default="eager")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--update-rtol", type=float, default=1e-3,
                        help="tolerance on the parameters' displacement from their start")
    parser.add_argument("--tensor-lr", action="store_true", help="lr as a 0-dim tensor")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="the model's parameters (and data)")
    parser.add_argument("--skip-nonfinite", action="store_true")
    parser.add_argument("--hyper", type=json.loads, default={},
                        help="hyperparameters over the registry's, as JSON")
    parser.add_argument("--keep-caches", action="store_true",
                        help="no torch._dynamo.reset() between names")
    parser.add_argument("--fullgraph", action="store_true",
                        help="opt_step: compile the optimizer's step with fullgraph=True")
    args = parser.parse_args(argv)
    if args.fullgraph and args.mode != "opt_step":
        parser.error("--fullgraph goes with opt_step")
    names = args.names.split(",")
    for name in names:
        if name not in descend.available():
            parser.error(f"unknown optimizer {name!r}; available: {descend.available()}")
    args.records = _install_records()
    status = 0
    for name in names:
        try:
            result = compare(name, args.mode, args)
        except Exception as e:  # a compile error (fullgraph=True): report it, run the next name
            message = f"{type(e).__name__}: {e}"
            result = {"name": name, "mode": args.mode, "ok": False, "error": message[:4000]}
            status = 3
        print(json.dumps(result), flush=True)
        if not result["ok"] and status == 0:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
