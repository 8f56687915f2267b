"""The benchmark's progress bar: trials done out of all, the workload, optimizer, phase and
trial running, and tqdm's estimate of the time left. It counts from the storage, so it is
right with several workers, and after a resume."""

from __future__ import annotations

import sys
import time

from optuna.storages import RDBStorage
from optuna.trial import TrialState

from descend.lab.benchmark.config import BenchmarkConfig


class Progress:
    def __init__(self, storage: RDBStorage, config: BenchmarkConfig) -> None:
        from tqdm import tqdm

        self.storage, self.config = storage, config
        self.interval = 0.5 if sys.stderr.isatty() else 10.0
        done, _ = self.count()
        self.bar = tqdm(total=config.total_trials(), initial=done, unit="trial",
                        desc="benchmark", file=sys.stderr, dynamic_ncols=True,
                        mininterval=self.interval)
        self.last = time.monotonic()

    def count(self) -> tuple[int, list[str]]:
        """(trials done, descriptions of the trials running)."""
        studies = {s.study_name: s._study_id for s in self.storage.get_all_studies()}
        done, running = 0, []
        for w, o, phase in self.config.studies():
            name = self.config.study_name(w, o, phase)
            if name not in studies:
                continue
            trials = self.storage.get_all_trials(studies[name], deepcopy=False)
            indices = {t.user_attrs.get("index") for t in trials
                       if t.state == TrialState.COMPLETE and "steps_to_target" in t.user_attrs}
            done += min(len(indices), self.config.planned(phase))
            running += [self.describe(name, t.user_attrs.get("index", 0)) for t in trials
                        if t.state == TrialState.RUNNING]
        return done, running

    def describe(self, name: str, index: int) -> str:
        phase = name.rsplit("/", 1)[1]
        return f"{name} trial {index + 1}/{self.config.planned(phase)}"

    def update(self) -> None:
        """Re-counts from the storage (after a trial, or on a timer with several workers)."""
        done, running = self.count()
        self.bar.update(done - self.bar.n)
        if running:  # several workers: what each is running
            self.bar.set_description(" | ".join(running), refresh=False)
        self.bar.refresh()

    def starting(self, name: str, index: int) -> None:
        self.bar.set_description(self.describe(name, index), refresh=False)
        self.bar.set_postfix_str("", refresh=False)
        self.bar.refresh()

    def step(self, step: int, loss: float) -> None:
        if time.monotonic() - self.last >= self.interval:
            self.bar.set_postfix_str(f"step {step} loss {loss:.3g}", refresh=True)
            self.last = time.monotonic()

    def close(self, note: str = "done") -> None:
        self.bar.set_description(f"benchmark: {note}", refresh=False)
        self.bar.set_postfix_str("", refresh=False)
        self.bar.close()
