"""Search spaces per optimizer, and the quasi-random points drawn from them.

A space is a few ``Param``s: a hyperparameter of the optimizer's constructor (``lr``,
``momentum``, ``weight_decay``...) or ``beta1`` / ``beta2``, which set one entry of ``betas``
(the others keep their defaults). ``SPACES`` declares the optimizers whose extra hyperparameters
matter; any other registry name gets ``lr`` on a log scale, a decade either side of its registry
default. ``--space adam:lr=1e-4..1e-2,beta1=0.85..0.95`` overrides a space from the command line
(``/log`` after a range puts a new parameter on a log scale).

The points are a scrambled Halton sequence (scipy.stats.qmc, which Optuna's QMCSampler also
wraps), seeded per optimizer: the quasi-random search of AlgoPerf's baselines.
"""

from __future__ import annotations

import inspect
import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from descend.registry import entry

BETAS = {"beta1": 0, "beta2": 1}


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: uniform in [low, high], or log-uniform when ``log``."""

    name: str
    low: float
    high: float
    log: bool = False

    def value(self, u: float) -> float:
        """The point ``u`` in [0, 1) mapped onto the range."""
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def clip(self, value: float) -> float:
        """``value`` moved into [low, high] (a rounded point may land just outside)."""
        return min(max(value, self.low), self.high)

    def show(self) -> str:
        return f"{self.name}={self.low:g}..{self.high:g}" + (" (log)" if self.log else "")


def _lr(low: float, high: float) -> Param:
    return Param("lr", low, high, log=True)


_ADAM = (_lr(1e-4, 3e-2), Param("beta1", 0.8, 0.95))
SPACES: dict[str, tuple[Param, ...]] = {
    "sgd": (_lr(1e-3, 1.0),),
    "momentum": (_lr(1e-4, 0.3), Param("momentum", 0.8, 0.99)),
    "nesterov": (_lr(1e-4, 0.3), Param("momentum", 0.8, 0.99)),
    "adagrad": (_lr(1e-3, 0.3),),
    "rmsprop": (_lr(1e-4, 3e-2),),
    "adam": _ADAM,
    "nadam": _ADAM,
    "radam": _ADAM,
    "adamax": (_lr(3e-4, 1e-1), Param("beta1", 0.8, 0.95)),
    "adamw": (*_ADAM, Param("weight_decay", 1e-4, 0.3, log=True)),
    "lion": (_lr(1e-5, 3e-3), Param("beta1", 0.8, 0.95)),
}


def space(name: str, overrides: dict[str, dict[str, Param]] | None = None) -> tuple[Param, ...]:
    """The search space of the registry name ``name``, with the overrides given for it."""
    declared = SPACES.get(name) or (_default_lr(name),)
    params = {p.name: p for p in declared}
    params.update((overrides or {}).get(name, {}))
    return tuple(params.values())


def _default_lr(name: str) -> Param:
    lr = entry(name).defaults().get("lr")
    lr = float(lr) if isinstance(lr, int | float) and lr > 0 else 1e-3
    return _lr(lr / 10, lr * 10)


def hyperparameters(name: str, values: dict[str, float]) -> dict[str, Any]:
    """A trial's point as constructor keywords (``beta1`` goes into ``betas``)."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        if key in BETAS:
            betas = list(result.get("betas", entry(name).defaults()["betas"]))
            betas[BETAS[key]] = value
            result["betas"] = tuple(betas)
        else:
            result[key] = value
    return result


def halton_points(params: tuple[Param, ...], n: int, seed: str) -> list[dict[str, float]]:
    """``n`` scrambled-Halton points of the space, the same for the same ``seed`` string."""
    from scipy.stats import qmc

    if not params or n == 0:
        return [{} for _ in range(n)]
    sampler = qmc.Halton(d=len(params), scramble=True, seed=zlib.crc32(seed.encode()))
    return [{p.name: p.clip(float(f"{p.value(u):.6g}")) for p, u in zip(params, row, strict=True)}
            for row in sampler.random(n)]


def allowed_names(name: str) -> list[str]:
    """What a space of ``name`` may search: its constructor's hyperparameters, and beta1 and
    beta2 where it has ``betas``."""
    e = entry(name)
    keys = [k for k in inspect.signature(e.cls.__init__).parameters if k not in ("self", "params")]
    if "betas" in e.defaults():
        keys += list(BETAS)[:len(e.defaults()["betas"])]
    return keys


def parse_override(text: str) -> tuple[str, dict[str, Param]]:
    """``NAME:PARAM=LOW..HIGH[/log],...`` -> (registry name, {param: Param}); a ValueError that
    says what is wrong and shows the syntax otherwise."""
    example = "e.g. --space adam:lr=1e-4..1e-2,beta1=0.85..0.95"
    name, colon, rest = text.strip().partition(":")
    name = entry(name).name  # unknown names fail here, with a did-you-mean
    if not colon or not rest.strip():
        raise ValueError(f"search-space override {text!r} names no parameter ({example})")
    declared = {p.name: p for p in space(name)}
    allowed = allowed_names(name)
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, _, bounds = item.partition("=")
        key = key.strip()
        if key not in allowed:
            raise ValueError(f"{name} has no hyperparameter {key!r} to search; allowed: "
                             f"{', '.join(allowed)}")
        params[key] = _range(key, bounds, declared.get(key), text, example)
    return name, params


def _range(key: str, bounds: str, declared: Param | None, text: str, example: str) -> Param:
    bounds, _, scale = bounds.strip().partition("/")
    low_text, dots, high_text = bounds.partition("..")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = math.nan
    if not dots or not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ValueError(f"bad range {key}={bounds!r} in {text!r}: write LOW..HIGH with "
                         f"LOW < HIGH ({example})")
    if scale not in ("", "log", "linear"):
        raise ValueError(f"bad scale /{scale} in {text!r}: use /log or /linear")
    log = scale == "log" or (not scale and (key == "lr" or (declared is not None
                                                            and declared.log)))
    if log and low <= 0:
        raise ValueError(f"{key}={bounds} in {text!r} is on a log scale: LOW must be > 0")
    return Param(key, low, high, log)


def to_json(params: tuple[Param, ...]) -> list[dict[str, Any]]:
    return [asdict(p) for p in params]


def from_json(data: list[dict[str, Any]]) -> tuple[Param, ...]:
    return tuple(Param(**p) for p in data)
