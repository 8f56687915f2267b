"""Benchmark optimizers over several workloads, AlgoPerf-style: time to a validation target.

For each workload (MNIST MLP and CNN, MNIST-1D, a character-level transformer on Python's own
source, DeepOBS's noisy quadratic) and optimizer: external tuning, K quasi-random trials from
the optimizer's search space, the fastest to the target run again with S seeds; self-tuning,
the defaults with S seeds. A run that never reaches the target counts as infinitely slow.
Scores: performance profiles and the AlgoPerf benchmark score, per optimizer and mode. The
report (OUT/report.html, self-contained, plus PNG, CSV and JSON) is written from the storage
alone, and states its findings.

Trials are scheduled by Optuna: a SQLite study in OUT/benchmark.sqlite, or any database
--storage URL several machines share (start the first machine as usual, the others with the
same --storage and --resume). --jobs N runs N worker processes here. Finished trials survive
kill -9; --resume continues.

examples:
  descend benchmark --quick
  descend benchmark --optimizers sgd adam lion --jobs 2
  descend benchmark --workloads charlm mnist-cnn --space adam:lr=1e-4..1e-2 --trials 8
  descend benchmark --storage postgresql://user@host/db --resume
  descend benchmark --report-only --out descend-benchmark
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

from descend.cli import UserError
from descend.lab.benchmark import spaces
from descend.lab.benchmark import storage as store
from descend.lab.benchmark.config import BenchmarkConfig
from descend.lab.benchmark.workloads import QUICK, WORKLOADS, get
from descend.lab.files import check_writable
from descend.registry import REGISTRY, entry

DEFAULT_OUT = "descend-benchmark"
DEFAULT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
QUICK_OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULTS = {"trials": 5, "seeds": 3}
QUICK_DEFAULTS = {"trials": 3, "seeds": 2}
_CONFIG_OPTIONS = ("workloads", "optimizers", "trials", "seeds", "space", "data_dir")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workloads", nargs="+", metavar="W",
                        help=f"default: all ({', '.join(WORKLOADS)}); --quick: "
                        f"{' '.join(QUICK)}")
    parser.add_argument("--optimizers", nargs="+", metavar="NAME",
                        help=f"registry names, or all (default: {' '.join(DEFAULT_OPTIMIZERS)}"
                        f"; --quick: {' '.join(QUICK_OPTIMIZERS)})")
    parser.add_argument("--trials", type=int, metavar="K", help="quasi-random trials per "
                        f"optimizer and workload (default {DEFAULTS['trials']}, --quick "
                        f"{QUICK_DEFAULTS['trials']})")
    parser.add_argument("--seeds", type=int, metavar="S", help="seeds of the chosen trial and "
                        f"of the defaults (default {DEFAULTS['seeds']}, --quick "
                        f"{QUICK_DEFAULTS['seeds']})")
    parser.add_argument("--space", nargs="+", metavar="SPEC", help="override a search space, "
                        "e.g. adam:lr=1e-4..1e-2,beta1=0.85..0.95 (/log after a range: log "
                        "scale)")
    parser.add_argument("--quick", action="store_true", help="a few workloads and optimizers, "
                        "a small budget (about 5 minutes on two cores)")
    parser.add_argument("--data-dir", metavar="DIR", help="the full MNIST (four IDX files) for "
                        "the MNIST workloads")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage URL shared by the "
                        "workers (default sqlite:///OUT/benchmark.sqlite), e.g. "
                        "postgresql://user@host/db")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes on this machine (default 1)")
    parser.add_argument("--resume", action="store_true", help="continue (or join) the "
                        "benchmark in the storage; its options are taken from there")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the storage alone, run nothing")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads per worker (default 1)")


def run(args: argparse.Namespace) -> int:
    from descend.lab.benchmark.report import summary_text, write_report
    from descend.lab.benchmark.results import collect

    _positive(args.jobs, "--jobs")
    _positive(args.threads, "--threads")
    given = build_config(args) if not (args.resume or args.report_only) else None
    if given is not None:
        _check_data(given)  # a bad --data-dir fails here, before anything is written
    url = args.storage
    storage = store.open_storage(url) if url else None  # an unreachable URL fails here
    if url is None and (args.resume or args.report_only):
        _config_for(args, None, _stored_in(Path(args.out)))  # nothing there: fails here
    out = check_writable(args.out)
    if storage is None:
        url = f"sqlite:///{(out / store.FILENAME).resolve()}"
        storage = store.open_storage(url)
    config = _config_for(args, given, store.stored_config(storage))
    if not args.report_only:
        if given is None:
            _check_data(config)
        store.save_config(storage, config)
        _work(storage, url, config, args.jobs, args.threads, resume=args.resume)
    results = collect(storage, config)
    html = write_report(out, results, url)
    print(summary_text(results))
    print(f"report: {html}")
    return 0


# ---- the configuration ------------------------------------------------------------------------

def build_config(args: argparse.Namespace) -> BenchmarkConfig:
    """The benchmark the options ask for; a UserError naming the bad option otherwise."""
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    workloads = tuple(dict.fromkeys(get(w).name for w in
                                    (args.workloads or (QUICK if args.quick else WORKLOADS))))
    readers = [w for w in WORKLOADS if get(w).load_task().load_dir is not None]
    if args.data_dir is not None and not set(readers) & set(workloads):
        raise UserError(f"--data-dir {args.data_dir}: none of the workloads reads data from a "
                        f"folder (only {', '.join(readers)} do); drop --data-dir or add one")
    names = args.optimizers or (QUICK_OPTIMIZERS if args.quick else
                                [o for o in DEFAULT_OPTIMIZERS if o in REGISTRY])
    if [n.lower() for n in names] == ["all"]:
        names = list(REGISTRY)
    optimizers = tuple(dict.fromkeys(_optimizer(n) for n in names))
    overrides: dict[str, dict[str, spaces.Param]] = {}
    for text in args.space or ():
        name, params = spaces.parse_override(text)
        if name not in optimizers:
            raise UserError(f"--space {text}: {name} is not benchmarked (add it to "
                            "--optimizers)")
        overrides.setdefault(name, {}).update(params)
    trials = _positive(args.trials if args.trials is not None else defaults["trials"],
                       "--trials")
    seeds = _positive(args.seeds if args.seeds is not None else defaults["seeds"], "--seeds")
    return BenchmarkConfig(workloads, optimizers, trials, seeds,
                           spaces={o: spaces.space(o, overrides) for o in optimizers},
                           data_dir=args.data_dir, quick=args.quick)


def _optimizer(name: str) -> str:
    if ":" in name:
        raise UserError(f"--optimizers takes registry names ({name!r} has hyperparameters): "
                        "search spaces are set with --space, e.g. --space adam:lr=1e-4..1e-2")
    return entry(name).name


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise UserError(f"{option} must be a positive integer, not {value}")
    return value


def _config_for(args: argparse.Namespace, given: BenchmarkConfig | None,
                stored: BenchmarkConfig | None) -> BenchmarkConfig:
    """The benchmark to run: the one asked for, or (--resume, --report-only) the stored one.
    Errors where the storage holds a different benchmark or none to continue."""
    where = args.storage or args.out
    if given is None:
        if stored is None:
            raise UserError(f"{where} holds no benchmark to "
                            f"{'report' if args.report_only else 'resume'}; run descend "
                            "benchmark without --resume first")
        extra = [f"--{k.replace('_', '-')}" for k in _CONFIG_OPTIONS
                 if getattr(args, k) is not None] + (["--quick"] if args.quick else [])
        if extra:
            raise UserError(f"{', '.join(extra)}: --resume and --report-only take the "
                            f"benchmark's options from {where}; drop them")
        return stored
    if stored is not None:
        raise UserError(f"{where} already holds a benchmark; pass --resume to continue it, "
                        "or choose another --out (or --storage)")
    return given


def _stored_in(out: Path) -> BenchmarkConfig | None:
    """The benchmark in ``out``'s SQLite file, without creating one."""
    path = out / store.FILENAME
    return store.stored_config(store.open_storage(f"sqlite:///{path.resolve()}")) \
        if path.is_file() else None


def _check_data(config: BenchmarkConfig) -> None:
    from descend.lab.benchmark.trial import check_data

    for w in config.workloads:
        try:
            check_data(get(w), config.data_dir)
        except (OSError, ValueError) as e:
            raise UserError(f"workload {w}: {e}") from None


# ---- running ----------------------------------------------------------------------------------

def _work(storage, url: str, config: BenchmarkConfig, jobs: int, threads: int,
          resume: bool) -> None:
    from descend.lab.benchmark.progress import Progress
    from descend.lab.benchmark.worker import Worker, plan_all

    plan_all(storage, config, fill=resume)
    progress = Progress(storage, config)
    try:
        if jobs == 1:
            Worker(url, config, threads, on_trial=progress.starting, on_done=progress.update,
                   on_step=progress.step).run()
        else:
            _run_processes(url, config, jobs, threads, progress)
        progress.update()
    finally:
        progress.close()


def _run_processes(url: str, config: BenchmarkConfig, jobs: int, threads: int,
                   progress) -> None:
    """``jobs`` worker processes on one storage; the progress bar counts from it."""
    from descend.lab.benchmark.worker import worker_main

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=worker_main, args=(url, config.to_json(), threads),
                               name=f"descend-benchmark-worker-{i}") for i in range(jobs)]
    for w in workers:
        w.start()
    try:
        while any(w.is_alive() for w in workers):
            progress.update()
            time.sleep(2.0)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
            w.join()
    failed = [w.name for w in workers if w.exitcode != 0]
    if failed:
        print(f"descend benchmark: worker(s) {', '.join(failed)} stopped with an error; "
              "finished trials are kept (continue with --resume)", file=sys.stderr)
        raise SystemExit(1)


__all__ = ["add_arguments", "run", "build_config"]
