"""The lab's training loop: one optimizer, one task, one seed -> a ``RunResult``.

::

    from descend.lab import tasks
    from descend.lab.spec import parse_spec
    from descend.lab.train import train

    result = train(tasks.get("mnist"), parse_spec("adam:lr=1e-3"), seed=0, epochs=1)
    result.final.test_accuracy     # accuracy on the test split after the last epoch
    result.per_epoch               # one Point per epoch (plus epoch 0, before training)
    result.curve                   # [(step, minibatch loss averaged since the last entry)]

``batch_size`` is an int (mini-batch descent), ``1`` (stochastic, per-example descent) or
``"full"`` (batch gradient descent: one step per epoch on the whole training split). The last
mini-batch of an epoch may be smaller, so an epoch is ``ceil(n / batch_size)`` steps.

What is measured:

- ``history``: a ``Point`` at epoch 0 and ``evals_per_epoch`` times per epoch: training-set
  loss (the whole split up to ``TRAIN_EVAL_LIMIT`` examples, so batch sizes compare fairly),
  validation and test loss and accuracy, steps, and ``seconds`` of training (forward, backward and
  step; evaluation is not counted) of which ``step_seconds`` were spent in ``optimizer.step()``.
- ``target_val`` / ``target_test``: the first evaluation at which accuracy reached the target
  (``steps``, ``seconds``, ``epoch``), or None.
- Divergence: a non-finite loss, or a loss above ``divergence_factor`` x the initial training
  loss, stops the run and sets ``diverged`` and ``stop_reason``; nothing is raised.
- ``max_seconds``: the run stops after that much training time (``stop_reason`` says so).

Deterministic for a seed: the model comes from ``task.build_model(seed)`` and the minibatch
order from a generator seeded with ``seed``; the global RNG is seeded too (for dropout).

Low precision (``dtype=torch.bfloat16`` or ``torch.float16``): the model's parameters, and so
their gradients, are stored in that dtype, the inputs are cast to it, and the loss is computed
on the outputs cast to float32 (a softmax over bfloat16 logits loses digits for nothing). The
optimizer does its math in float32 and rounds each result into the parameter's dtype, to
nearest-even or, with the spec's ``stochastic_rounding=true``, stochastically. float32 (the
default) trains exactly as before: every cast is then a no-op.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from copy import deepcopy as copy_module
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from descend import precision
from descend.lab.spec import OptimizerSpec, set_mode
from descend.lab.tasks.base import Split, Splits, Task

TRAIN_EVAL_LIMIT = 10_000  # training examples evaluated at each Point
EVAL_BATCH = 10_000
MAX_CURVE_POINTS = 500

BatchSize = int | str
# The dtypes a model can be trained in, by the names the command line and the run store use.
DTYPES = precision.PARAMETER_DTYPES
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


@dataclass(frozen=True)
class Point:
    """The model evaluated at one moment of training (accuracies are None for regression)."""

    epoch: float
    step: int
    seconds: float
    step_seconds: float
    train_loss: float
    val_loss: float
    val_accuracy: float | None
    test_loss: float
    test_accuracy: float | None


@dataclass(frozen=True)
class TargetHit:
    """When a split's accuracy first reached the target."""

    steps: int
    seconds: float
    epoch: float


@dataclass
class RunResult:
    task: str
    optimizer: str
    seed: int
    lr: float | None
    batch_size: BatchSize
    epochs: int
    history: list[Point] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    diverged: bool = False
    stop_reason: str | None = None
    target_accuracy: float | None = None
    target_val: TargetHit | None = None
    target_test: TargetHit | None = None
    steps: int = 0
    seconds: float = 0.0
    step_seconds: float = 0.0
    dtype: str = "float32"  # the model's parameters' dtype, as trained

    @property
    def final(self) -> Point:
        """The last evaluation (before divergence, if the run diverged)."""
        return self.history[-1]

    @property
    def per_epoch(self) -> list[Point]:
        """The evaluations at whole epochs, epoch 0 (the initial model) included."""
        return [p for p in self.history if p.epoch == int(p.epoch)]

    @property
    def step_time(self) -> float:
        """Mean seconds per ``optimizer.step()``."""
        return self.step_seconds / self.steps if self.steps else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        data = dict(data)
        data["history"] = [Point(**p) for p in data["history"]]
        data["curve"] = [tuple(c) for c in data["curve"]]
        for key in ("target_val", "target_test"):
            data[key] = TargetHit(**data[key]) if data.get(key) else None
        return cls(**data)


def batch_size_for(batch_size: BatchSize, n: int) -> int:
    """``"full"`` -> n; a positive int as is; anything else a ValueError saying what is allowed."""
    if batch_size == "full":
        return n
    if isinstance(batch_size, str) and batch_size.isdigit():
        batch_size = int(batch_size)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch size {batch_size!r} is not allowed: use 'full' (batch gradient "
                         "descent), 1 (stochastic descent) or a positive integer (mini-batch)")
    return min(batch_size, n)


def dtype_name(dtype: str | torch.dtype) -> str:
    """The lab's name of a training dtype (``float32``, ``bfloat16`` or ``float16``), from a
    name, an alias (``bf16``, ``fp16``, ``fp32``) or a ``torch.dtype``; a ValueError naming the
    allowed ones otherwise."""
    if isinstance(dtype, torch.dtype):
        name = precision.dtype_name(dtype)
    else:
        name = str(dtype).strip().lower().removeprefix("torch.")
        name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported for training: use "
                         f"{', '.join(DTYPES)} (e.g. --dtype bfloat16)")
    return name


def in_dtype(splits: Splits, dtype: torch.dtype) -> Splits:
    """``splits`` with floating-point inputs cast to ``dtype`` (the same objects where they
    already are); labels and targets are left as they are."""

    def cast(split: Split) -> Split:
        if not split.x.is_floating_point() or split.x.dtype == dtype:
            return split
        return Split(split.x.to(dtype), split.y)

    return Splits(cast(splits.train), cast(splits.val), cast(splits.test))


def float32_loss(loss: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``loss`` computed on the model's outputs (and floating-point targets) cast to float32:
    the gradient flows back into the low-precision model through the cast."""

    def wrapped(out: Tensor, y: Tensor) -> Tensor:
        return loss(out.float(), y.float() if y.is_floating_point() else y)

    return wrapped


def spec_lr(spec: OptimizerSpec) -> float | None:
    """The learning rate ``spec`` runs with: its own, else the registry default."""
    lr = spec.hyperparameters.get("lr", spec.entry.defaults().get("lr"))
    return float(lr) if isinstance(lr, int | float) else None


def train(
    task: Task,
    spec: OptimizerSpec,
    seed: int = 0,
    epochs: int | None = None,
    batch_size: BatchSize | None = None,
    *,
    splits: Splits | None = None,
    on_epoch: Callable[[Point], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    max_seconds: float | None = None,
    evals_per_epoch: int = 4,
    divergence_factor: float = 1e3,
    target_accuracy: float | None = None,
    threads: int | None = None,
    dtype: str | torch.dtype = torch.float32,
    model: nn.Module | None = None,
    stop: Callable[[Point], bool] | None = None,
    train_eval_limit: int = TRAIN_EVAL_LIMIT,
) -> RunResult:
    """Trains ``task``'s model with ``spec`` and returns what happened (see the module doc).

    ``epochs``, ``batch_size`` and ``target_accuracy`` default to the task's; ``splits`` to
    ``task.load(seed)``. ``on_epoch(point)`` is called after every whole epoch, ``on_step(step,
    loss)`` after every step (for progress bars). ``threads`` sets torch's intra-op threads for
    the run (and restores them after). ``dtype`` is what the model is trained in (float32,
    bfloat16 or float16: see the module doc). ``model`` trains that module, in place (cast to
    ``dtype``), instead of a fresh ``task.build_model(seed)``: to continue from a trained point.
    ``stop(point)`` is asked after every evaluation; True ends the run there (``stop_reason``
    says so): the benchmark stops a run once it reaches its target. ``train_eval_limit`` is how
    many training examples each evaluation's training loss is measured on.
    """
    epochs = task.epochs if epochs is None else epochs
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    splits = task.load(seed) if splits is None else splits
    n = len(splits.train)
    if n == 0:
        raise ValueError(f"task {task.name!r} has no training examples")
    requested = task.batch_size if batch_size is None else batch_size
    batch = batch_size_for(requested, n)
    target = task.target_accuracy if target_accuracy is None else target_accuracy

    torch_dtype = DTYPES[dtype_name(dtype)]

    torch.manual_seed(seed)
    model = (task.build_model(seed) if model is None else model).to(torch_dtype)
    if torch_dtype != torch.float32:
        splits = in_dtype(splits, torch_dtype)
        task = replace(task, loss=float32_loss(task.loss))
    warm_up(task, model, spec, splits.train, batch)
    optimizer = spec.build(model.parameters())
    result = RunResult(task.name, spec.label, seed, spec_lr(spec),
                       "full" if requested == "full" else batch, epochs,
                       target_accuracy=target if task.classification else None)
    loop = _Loop(task, model, optimizer, splits, result, batch, divergence_factor, stop,
                 train_eval_limit)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads or auto_threads(model, batch, old_threads))
    try:
        loop.run(epochs, evals_per_epoch, max_seconds, on_epoch, on_step,
                 torch.Generator().manual_seed(seed))
    finally:
        torch.set_num_threads(old_threads)
        set_mode(optimizer, train=False)  # the model holds what was evaluated
    result.steps, result.seconds, result.step_seconds = loop.steps, loop.seconds, loop.step_seconds
    result.dtype = parameter_dtype(model)
    return result


def parameter_dtype(model: nn.Module) -> str:
    """The dtype of ``model``'s parameters by name (``float32``), or the names joined by
    ``+`` when they differ."""
    names = dict.fromkeys(precision.dtype_name(p.dtype) for p in model.parameters())
    return "+".join(names) or "none"


def warm_up(task: Task, model: nn.Module, spec: OptimizerSpec, train_split: Split,
            batch: int) -> None:
    """One step on a throwaway copy of ``model``, so that one-time costs (an engine compiling
    its kernel for this configuration, lazy allocations) stay out of the measured seconds.
    The model, the global RNG and everything the run measures are left untouched."""
    with torch.random.fork_rng(devices=[]):
        copy = copy_module(model)
        optimizer = spec.build(copy.parameters())
        task.loss(copy(train_split.x[:batch]), train_split.y[:batch]).backward()
        optimizer.step()


def epoch_batches(n: int, batch: int, shuffle: torch.Generator) -> Iterator[Tensor | None]:
    """One epoch of minibatches: index tensors into a fresh permutation of ``range(n)``, or a
    single None (the whole split, in order) when ``batch >= n``."""
    if batch >= n:
        yield None
        return
    order = torch.randperm(n, generator=shuffle)
    for start in range(0, n, batch):
        yield order[start:start + batch]


def auto_threads(model: nn.Module, batch: int, available: int) -> int:
    """One thread for small steps (thread start-up costs more than it saves there, and the lab
    often shares the machine); all of them once a step is tens of millions of multiply-adds."""
    work = batch * sum(p.numel() for p in model.parameters())
    return available if work > 50_000_000 else 1


class _Loop:
    """The mutable state of one run: counters, clocks and the evaluation routine."""

    def __init__(self, task: Task, model: nn.Module, optimizer: torch.optim.Optimizer,
                 splits: Splits, result: RunResult, batch: int, divergence_factor: float,
                 stop: Callable[[Point], bool] | None = None,
                 train_eval_limit: int = TRAIN_EVAL_LIMIT) -> None:
        self.task, self.model, self.optimizer, self.splits = task, model, optimizer, splits
        self.batch, self.steps_per_epoch = batch, math.ceil(len(splits.train) / batch)
        self.result, self.divergence_factor = result, divergence_factor
        self.train_x, self.train_y = splits.train.x, splits.train.y
        self.steps, self.seconds, self.step_seconds = 0, 0.0, 0.0
        self.window: list[float] = []
        self.limit = math.inf
        self.stop, self.train_eval_limit = stop, train_eval_limit

    def run(self, epochs: int, evals_per_epoch: int, max_seconds: float | None,
            on_epoch: Callable[[Point], None] | None, on_step: Callable[[int, float], None] | None,
            shuffle: torch.Generator) -> None:
        """Evaluates the initial model, then trains until the epochs, the time budget or
        divergence end the run."""
        n, per_epoch, batch = len(self.splits.train), self.steps_per_epoch, self.batch
        self.evaluate(epoch=0.0)
        if self.result.diverged:
            return
        curve_stride = max(1, math.ceil(epochs * per_epoch / MAX_CURVE_POINTS))
        eval_steps = {math.ceil(per_epoch * j / evals_per_epoch)
                      for j in range(1, evals_per_epoch + 1)}
        for epoch in range(epochs):
            for i, index in enumerate(epoch_batches(n, batch, shuffle)):
                loss = self.step(index)
                if on_step is not None:
                    on_step(self.steps, loss)
                self.record_curve(loss, curve_stride)
                if self.check_divergence(loss) or self.out_of_time(max_seconds):
                    return
                if i + 1 in eval_steps:
                    point = self.evaluate(epoch + (i + 1) / per_epoch)
                    if self.result.diverged or self.stopped(point):
                        return
                    if i + 1 == per_epoch and on_epoch is not None:
                        on_epoch(point)

    def step(self, index: Tensor | None) -> float:
        """One optimizer step on the minibatch ``index`` (None: the whole training split)."""
        start = time.perf_counter()
        x, y = self.train_x, self.train_y
        if index is not None:
            x, y = x.index_select(0, index), y.index_select(0, index)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.task.loss(self.model(x), y)
        loss.backward()
        before_step = time.perf_counter()
        self.optimizer.step()
        end = time.perf_counter()
        self.step_seconds += end - before_step
        self.seconds += end - start
        self.steps += 1
        return loss.item()

    def record_curve(self, loss: float, stride: int) -> None:
        if not math.isfinite(loss):
            return
        self.window.append(loss)
        if self.steps % stride == 0 or self.steps == 1:
            self.result.curve.append((self.steps, sum(self.window) / len(self.window)))
            self.window.clear()

    def check_divergence(self, loss: float) -> bool:
        if math.isfinite(loss) and loss <= self.limit:
            return False
        self.result.diverged = True
        why = "is not finite" if not math.isfinite(loss) else (
            f"exceeds {self.divergence_factor:g} x the initial loss")
        self.result.stop_reason = f"diverged at step {self.steps}: loss {loss:.4g} {why}"
        return True

    def out_of_time(self, max_seconds: float | None) -> bool:
        if max_seconds is None or self.seconds < max_seconds:
            return False
        self.result.stop_reason = f"time budget of {max_seconds:g} s reached at step {self.steps}"
        self.evaluate(self.steps / self.steps_per_epoch)
        return True

    def stopped(self, point: Point) -> bool:
        """Whether ``stop`` ends the run at ``point`` (noted in ``stop_reason``)."""
        if self.stop is None or not self.stop(point):
            return False
        self.result.stop_reason = f"stopped at step {self.steps}: target reached"
        return True

    def evaluate(self, epoch: float) -> Point:
        """Appends a Point to the history (and marks divergence if the model broke). An
        optimizer with ``eval()`` and ``train()`` (Schedule-Free) is evaluated at the point it
        evaluates (``eval()``), then put back to training."""
        set_mode(self.optimizer, train=False)
        limit = self.train_eval_limit
        train_loss, _ = self._measure(Split(self.train_x[:limit], self.train_y[:limit]))
        val_loss, val_accuracy = self._measure(self.splits.val)
        test_loss, test_accuracy = self._measure(self.splits.test)
        self.model.train()  # _measure left it in eval mode; steps train (once here, not per step)
        set_mode(self.optimizer, train=True)
        point = Point(epoch, self.steps, self.seconds, self.step_seconds, train_loss,
                      val_loss, val_accuracy, test_loss, test_accuracy)
        if not math.isfinite(train_loss):
            self.check_divergence(train_loss)
            return point
        if self.steps == 0:
            self.limit = self.divergence_factor * abs(train_loss)
        self.result.history.append(point)
        self._note_target(point)
        return point

    def _note_target(self, point: Point) -> None:
        target = self.result.target_accuracy
        if target is None:
            return
        hit = TargetHit(point.step, point.seconds, point.epoch)
        if self.result.target_val is None and (point.val_accuracy or 0.0) >= target:
            self.result.target_val = hit
        if self.result.target_test is None and (point.test_accuracy or 0.0) >= target:
            self.result.target_test = hit

    @torch.no_grad()
    def _measure(self, split: Split) -> tuple[float, float | None]:
        """Mean loss and accuracy on ``split``, in large batches."""
        if len(split) == 0:
            return math.nan, None
        self.model.eval()
        total_loss, correct = 0.0, 0
        for start in range(0, len(split), EVAL_BATCH):
            x, y = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
            out = self.model(x)
            total_loss += self.task.loss(out, y).item() * len(x)
            if self.task.classification:
                correct += (out.argmax(-1) == y).sum().item()
        accuracy = correct / len(split) if self.task.classification else None
        return total_loss / len(split), accuracy
