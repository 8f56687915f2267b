"""What a benchmark is: workloads, optimizers, their search spaces, the trial and seed budget.
It is stored with the trials (in the meta study's user attributes), so ``--resume``, other
machines and ``--report-only`` read it back instead of being told again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from descend.lab.benchmark import spaces
from descend.lab.benchmark.spaces import Param
from descend.lab.benchmark.workloads import Workload, get

PHASES = ("search", "default", "tuned")  # external tuning's K trials, self-tuning, best x seeds
MODES = {"external": "external tuning", "self": "self-tuning (defaults)"}


@dataclass(frozen=True)
class BenchmarkConfig:
    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    trials: int  # K quasi-random trials per optimizer and workload (external tuning)
    seeds: int  # S seeds of the chosen trial, and of the defaults
    spaces: dict[str, tuple[Param, ...]] = field(default_factory=dict)
    data_dir: str | None = None
    quick: bool = False

    def workload(self, name: str) -> Workload:
        return get(name)

    def study_name(self, workload: str, optimizer: str, phase: str) -> str:
        return f"{workload}/{optimizer}/{phase}"

    def studies(self) -> list[tuple[str, str, str]]:
        """(workload, optimizer, phase) in the order workers take them: every search first
        (the tuned seeds wait for their search), the defaults, then the tuned seeds."""
        return [(w, o, p) for p in PHASES for w in self.workloads for o in self.optimizers]

    def planned(self, phase: str) -> int:
        """Trials each study of ``phase`` holds when done (seed 0 of the tuned runs is the
        chosen search trial itself, so it is not run again)."""
        return {"search": self.trials, "default": self.seeds, "tuned": self.seeds - 1}[phase]

    def total_trials(self) -> int:
        per = sum(self.planned(p) for p in PHASES)
        return len(self.workloads) * len(self.optimizers) * per

    def to_json(self) -> dict[str, Any]:
        return {"workloads": list(self.workloads), "optimizers": list(self.optimizers),
                "trials": self.trials, "seeds": self.seeds,
                "spaces": {o: spaces.to_json(s) for o, s in self.spaces.items()},
                "data_dir": self.data_dir, "quick": self.quick}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchmarkConfig:
        return cls(workloads=tuple(data["workloads"]), optimizers=tuple(data["optimizers"]),
                   trials=data["trials"], seeds=data["seeds"],
                   spaces={o: spaces.from_json(s) for o, s in data["spaces"].items()},
                   data_dir=data.get("data_dir"), quick=data.get("quick", False))
