"""Time to target, its median and spread over seeds, performance profiles and the AlgoPerf
benchmark score.

- ``time_to_target``: the first evaluation at or past the target; ``inf`` when none is (a run
  that never reaches its target counts as infinitely slow, AlgoPerf's rule, not as a crash).
- Performance profile (Dolan and More 2002): on each workload an optimizer's time is divided by
  the fastest optimizer's time there, ``r``; ``rho(tau)`` is the fraction of workloads on which
  ``r <= tau``.
- Benchmark score (AlgoPerf, Dahl et al. 2023): the area under ``rho`` for ``tau`` in
  ``[1, R_MAX]`` divided by ``R_MAX - 1``, so 1 means fastest everywhere and 0 never within
  ``R_MAX`` times the fastest. ``rho`` is a step function, so the area is exact:
  every workload with ``r <= R_MAX`` adds ``(R_MAX - r) / (R_MAX - 1) / W``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

INF = math.inf
R_MAX = 4.0  # AlgoPerf's largest ratio to the fastest

Table = Mapping[str, Mapping[str, float]]  # workload -> optimizer -> time (inf: not reached)


def time_to_target(history: Sequence[Mapping[str, Any]], reached: Callable[[Any], bool],
                   metric: str) -> tuple[float, float]:
    """(steps, seconds) at the first point of ``history`` whose ``metric`` is at or past the
    target (``reached(value)``); (inf, inf) when none is."""
    for point in history:
        if reached(point.get(metric)):
            return float(point["step"]), float(point["seconds"])
    return INF, INF


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation (numpy's default); infinities are values
    like any other: interpolating towards one gives inf."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below, above = math.floor(position), math.ceil(position)
    a, b = ordered[below], ordered[above]
    if below == above or a == b:
        return a
    if math.isinf(b):
        return INF
    return a + (b - a) * (position - below)


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    return quantile(values, 0.5), quantile(values, 0.25), quantile(values, 0.75)


def ratios(table: Table) -> dict[str, dict[str, float]]:
    """workload -> optimizer -> time / the fastest time on that workload (inf where the
    optimizer, or every optimizer, never reached the target)."""
    result = {}
    for workload, times in table.items():
        best = min(times.values(), default=INF)
        result[workload] = {o: (t / best if math.isfinite(best) and math.isfinite(t) else INF)
                            for o, t in times.items()}
    return result


def profile(table: Table, taus: Iterable[float]) -> dict[str, list[float]]:
    """optimizer -> rho(tau) for each tau: the fraction of the table's workloads on which the
    optimizer is within a factor tau of the fastest."""
    r = ratios(table)
    workloads = list(r)
    optimizers = _optimizers(table)
    taus = list(taus)
    return {o: [sum(r[w].get(o, INF) <= tau for w in workloads) / len(workloads)
                for tau in taus] for o in optimizers}


def benchmark_score(table: Table, r_max: float = R_MAX) -> dict[str, float]:
    """optimizer -> the normalized area under its performance profile over [1, r_max]."""
    r = ratios(table)
    return {o: sum((r_max - r[w][o]) / (r_max - 1) for w in r
                   if r[w].get(o, INF) <= r_max) / len(r) for o in _optimizers(table)}


def _optimizers(table: Table) -> list[str]:
    return list(dict.fromkeys(o for times in table.values() for o in times))
