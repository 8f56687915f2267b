"""The report's findings, each a sentence with its evidence, computed from the results:
does any optimizer dominate, which workloads favour which optimizer, and how much tuning buys
over the defaults (and whether trying every optimizer at its defaults does as well as tuning
the best one, the question of Schmidt et al. 2021)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from descend.lab.benchmark import scoring
from descend.lab.benchmark.config import MODES
from descend.lab.benchmark.results import Results, show_time


@dataclass(frozen=True)
class Finding:
    claim: str
    evidence: str


def findings(results: Results, measure: str = "steps") -> list[Finding]:
    out = [f for mode in MODES if (f := dominance(results, mode, measure))]
    out += favourites(results, measure)
    out += [f for f in (tuning_gain(results, measure), defaults_vs_tuning(results, measure)) if f]
    return out


def _fastest(times: dict[str, float]) -> list[str]:
    best = min(times.values(), default=math.inf)
    return [o for o, t in times.items() if math.isfinite(best) and t == best]


def dominance(results: Results, mode: str, measure: str) -> Finding | None:
    """Whether one optimizer is the fastest (ties included) on every workload of a mode."""
    table = results.table(mode, measure)
    workloads = [w for w, times in table.items() if _fastest(times)]
    if not workloads:
        return None
    wins = {o: sum(o in _fastest(table[w]) for w in workloads) for o in results.config.optimizers}
    tally = ", ".join(f"{o} {n}" for o, n in sorted(wins.items(), key=lambda x: -x[1]) if n)
    evidence = (f"Workloads on which each optimizer is the fastest, of the {len(workloads)} "
                f"whose target some optimizer reached ({MODES[mode]}): {tally}.")
    everywhere = [o for o, n in wins.items() if n == len(table)]
    if everywhere:
        verb = "dominates" if len(everywhere) == 1 else "dominate (tied)"
        return Finding(f"{' and '.join(everywhere)} {verb} under {MODES[mode]}: the fastest "
                       f"to target on every workload.", evidence)
    return Finding(f"No optimizer dominates under {MODES[mode]}.", evidence)


def favourites(results: Results, measure: str) -> list[Finding]:
    """Per workload, the fastest optimizer under external tuning and its lead."""
    found = []
    for workload, times in results.table("external", measure).items():
        winners = _fastest(times)
        if not winners:
            found.append(Finding(f"{workload}: no optimizer reached the target "
                                 f"({results.config.workload(workload).show_target()}).",
                                 "every median time to target is infinite"))
            continue
        best = times[winners[0]]
        others = sorted((t / best, o) for o, t in times.items() if o not in winners)
        lead = (f"; next {others[0][1]} at {others[0][0]:.2f}x" if others and
                math.isfinite(others[0][0]) else "; no other optimizer reached it")
        never = [o for o, t in times.items() if not math.isfinite(t)]
        found.append(Finding(
            f"{workload} favours {' and '.join(winners)}.",
            f"median {show_time(best, measure)} {measure} to "
            f"{results.config.workload(workload).show_target()}{lead}"
            + (f"; never reached by {', '.join(never)}" if never else "") + "."))
    return found


def tuning_gain(results: Results, measure: str) -> Finding | None:
    """The benchmark score with and without tuning, per optimizer."""
    scores = results.scores(measure)
    ext, own = scores["external"], scores["self"]
    if not ext:
        return None
    gains = sorted(((ext[o] - own[o], o) for o in ext), reverse=True)
    mean_gain = sum(g for g, _ in gains) / len(gains)
    evidence = "; ".join(f"{o} {own[o]:.2f} -> {ext[o]:.2f}" for _, o in gains)
    return Finding(f"Tuning raises the benchmark score by {mean_gain:+.2f} on average "
                   f"(largest for {gains[0][1]}, {gains[0][0]:+.2f}).",
                   f"score at defaults -> tuned (each mode's scores are relative to that "
                   f"mode's fastest): {evidence}.")


def defaults_vs_tuning(results: Results, measure: str) -> Finding | None:
    """Trying every optimizer at its defaults and keeping the fastest, per workload, against
    the single optimizer with the best tuned score, on the same time scale."""
    ext = results.scores(measure)["external"]
    if not ext:
        return None
    best = max(ext, key=ext.get)
    tuned, defaults = results.table("external", measure), results.table("self", measure)
    table = {w: {f"{best} tuned": tuned[w].get(best, math.inf),
                 "best default": min(defaults[w].values(), default=math.inf)}
             for w in results.config.workloads}
    score = scoring.benchmark_score(table)
    lines = "; ".join(f"{w} {show_time(t[f'{best} tuned'], measure)} vs "
                      f"{show_time(t['best default'], measure)}" for w, t in table.items())
    a, b = score[f"{best} tuned"], score["best default"]
    verdict = ("does about as well as" if abs(a - b) < 0.1 else
               "beats" if b > a else "falls short of")
    return Finding(f"Trying every optimizer at its defaults and keeping the fastest {verdict} "
                   f"tuning the best single optimizer ({best}).",
                   f"head-to-head scores {b:.2f} (best default) vs {a:.2f} ({best} tuned); "
                   f"{measure} to target per workload, tuned vs best default: {lines}.")
