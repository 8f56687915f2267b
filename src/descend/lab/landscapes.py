"""2-D test functions ("landscapes") and optimizer trajectories on them.

The seeds explain optimizers with pictures of a bowl, an elongated bowl, a saddle and functions
with several minima. Each one here is a :class:`Landscape`; :func:`run_trajectory` runs a descend
optimizer on it from its start point and measures what the pictures show: how many steps to a
minimum, which minimum, whether it escaped the saddle, whether it diverged.

The standard test functions and their minima are from Surjanovic and Bingham's "Virtual Library
of Simulation Experiments" (sfu.ca/~ssurjano) and Jamil and Yang 2013, "A literature survey of
benchmark functions for global optimization problems".

The plotting functions (``plot_trajectories``, ``animate_trajectories``, ``report_figures``)
live in :mod:`descend.lab.landscape_plots` and are importable from here too; they are loaded on
first use so that reading ``LANDSCAPES`` does not import matplotlib.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from descend.lab.spec import SEED_OPTIMIZERS, OptimizerSpec, parse_spec

Point = tuple[float, float]

#: A saddle run has escaped once its loss is this far below the saddle point's value (0):
#: on x^2 - y^2 that is |y| > 1 once x has settled, a thousand times the start's offset.
ESCAPE_LOSS = -1.0
#: Default tolerance: a run has reached a minimum when its (x, y) is this close to it.
DEFAULT_TOL = 1e-2
#: A run diverged when its loss is not finite or its point leaves the plot's box grown this much
#: around its center (on a saddle, leaving it downhill is the escape, not a divergence).
DIVERGENCE_BOX = 10.0


@dataclass(frozen=True)
class Landscape:
    """A 2-D function to minimize. ``fn(xy)`` takes ``xy`` of shape [..., 2] and returns [...]
    with torch ops, so autograd gives the gradient.

    ``minima`` lists the global minima first, then notable local ones; a saddle (unbounded
    below) has none and ``is_saddle`` set. ``bounds`` is the plotting window
    ((xmin, xmax), (ymin, ymax)); ``log_contours`` says the function spans decades there.
    """

    name: str
    description: str
    formula: str
    fn: Callable[[Tensor], Tensor]
    start: Point
    minima: list[Point]
    bounds: tuple[Point, Point]
    log_contours: bool = False
    is_saddle: bool = False
    steps: int = 200

    def value(self, point: Point) -> float:
        return float(self.fn(torch.tensor(point, dtype=torch.float64)))

    @property
    def global_minima(self) -> list[Point]:
        """The listed minima whose value equals the smallest listed value."""
        if not self.minima:
            return []
        values = [self.value(m) for m in self.minima]
        best = min(values)
        close = 1e-6 * (1 + abs(best))
        return [m for m, v in zip(self.minima, values, strict=True) if v <= best + close]

    def nearest_minimum(self, point: Point, tol: float) -> Point | None:
        """The listed minimum closest to ``point`` if it lies within ``tol``, else None."""
        if not self.minima:
            return None
        distances = np.hypot(*(np.asarray(self.minima) - np.asarray(point)).T)
        i = int(distances.argmin())
        return self.minima[i] if distances[i] <= tol else None

    def describe_minimum(self, minimum: Point | None) -> str:
        if minimum is None:
            return "none"
        kind = "global" if minimum in self.global_minima else "local"
        return f"{kind} ({minimum[0]:.3g}, {minimum[1]:.3g})"


# ---- the functions ------------------------------------------------------------------------

def _xy(t: Tensor) -> tuple[Tensor, Tensor]:
    return t[..., 0], t[..., 1]


def bowl(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return x**2 + y**2


def elongated_bowl(t: Tensor) -> Tensor:
    """Condition number 25: the Hessian is diag(2, 50)."""
    x, y = _xy(t)
    return x**2 + 25 * y**2


def saddle(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return x**2 - y**2


def rosenbrock(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def himmelblau(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def rastrigin(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


def six_hump_camel(t: Tensor) -> Tensor:
    x, y = _xy(t)
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def _rastrigin_minima(radius: int) -> list[Point]:
    """Rastrigin's local minima sit near the integer lattice, at the roots of
    d/dx (x^2 - 10 cos 2 pi x) = 2x + 20 pi sin(2 pi x) next to each integer (Newton's method)."""
    def root_near(n: int) -> float:
        x = float(n)
        for _ in range(20):
            x -= (2 * x + 20 * math.pi * math.sin(2 * math.pi * x)) / (
                2 + 40 * math.pi**2 * math.cos(2 * math.pi * x))
        return x

    ns = sorted(range(-radius, radius + 1), key=abs)  # (0, 0) first: the global minimum
    coords = {n: root_near(n) for n in ns}
    lattice = sorted(((i, j) for i in ns for j in ns), key=lambda ij: (abs(ij[0]) + abs(ij[1])))
    return [(coords[i], coords[j]) for i, j in lattice]


_ALL = [
    Landscape("bowl", "a round bowl: every direction equally steep", r"$x^2 + y^2$",
              bowl, (-4.0, 3.0), [(0.0, 0.0)], ((-5.0, 5.0), (-5.0, 5.0)), steps=150),
    Landscape("elongated-bowl", "an ill-conditioned bowl (condition number 25): steep across, "
              "flat along the valley", r"$x^2 + 25\,y^2$", elongated_bowl, (-4.5, 1.0),
              [(0.0, 0.0)], ((-5.0, 5.0), (-2.0, 2.0)), steps=200),
    Landscape("saddle", "a saddle point at the origin: a minimum along x, a maximum along y; "
              "unbounded below", r"$x^2 - y^2$", saddle, (1.0, 1e-3), [],
              ((-1.5, 1.5), (-1.5, 1.5)), is_saddle=True, steps=150),
    Landscape("rosenbrock", "Rosenbrock's banana valley: easy to enter, slow to follow to "
              "(1, 1)", r"$(1-x)^2 + 100\,(y-x^2)^2$", rosenbrock, (-2.0, 2.0), [(1.0, 1.0)],
              ((-2.5, 2.5), (-1.5, 4.0)), log_contours=True, steps=1000),
    Landscape("beale", "Beale's function: flat plateaus and sharp ridges around (3, 0.5)",
              r"$(1.5-x+xy)^2 + (2.25-x+xy^2)^2 + (2.625-x+xy^3)^2$", beale, (3.0, 4.0),
              [(3.0, 0.5)], ((-4.5, 4.5), (-4.5, 4.5)), log_contours=True, steps=1000),
    Landscape("himmelblau", "Himmelblau's function: four global minima; the start decides",
              r"$(x^2+y-11)^2 + (x+y^2-7)^2$", himmelblau, (0.0, 0.0),
              [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186),
               (3.584428, -1.848126)], ((-5.0, 5.0), (-5.0, 5.0)), log_contours=True,
              steps=300),
    Landscape("rastrigin", "Rastrigin's function: a bowl covered in local minima",
              r"$20 + \sum_{u=x,y} u^2 - 10\cos(2\pi u)$", rastrigin, (-2.0, 3.5),
              _rastrigin_minima(4), ((-4.5, 4.5), (-4.5, 4.5)), steps=300),
    Landscape("six-hump-camel", "the six-hump camel: two global and four local minima",
              r"$(4-2.1x^2+x^4/3)\,x^2 + xy + (4y^2-4)\,y^2$", six_hump_camel, (2.0, 1.0),
              [(0.089842, -0.712656), (-0.089842, 0.712656), (-1.703607, 0.796084),
               (1.703607, -0.796084), (-1.607105, -0.568651), (1.607105, 0.568651)],
              ((-2.2, 2.2), (-1.2, 1.2)), steps=300),
]

LANDSCAPES: dict[str, Landscape] = {landscape.name: landscape for landscape in _ALL}


def get(name: str) -> Landscape:
    """The landscape called ``name``, or a ValueError listing the names with a did-you-mean."""
    if name in LANDSCAPES:
        return LANDSCAPES[name]
    close = difflib.get_close_matches(name.lower(), LANDSCAPES, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"unknown landscape {name!r}; available: {', '.join(LANDSCAPES)}.{hint}")


# ---- default learning rates ---------------------------------------------------------------


# Per landscape, the learning rate each seed optimizer runs with when the spec sets none
# (columns in SEED_OPTIMIZERS order). Chosen from a log-spaced sweep to reach the minimum in
# few steps without diverging, a notch below the fastest (which oscillates at the edge of
# stability); on the saddle the three gradient methods share one lr so that momentum's effect
# shows. The gradient methods' lr multiplies the gradient, so it scales with 1/curvature; the
# adaptive ones' lr is about a step length in (x, y).
# Adadelta's effective step starts at sqrt(eps) = 1e-3 per unit lr, hence its large values.
# Optimizers not listed (adamw) use Adam's column.
_LR_TABLE: dict[str, tuple[float, ...]] = {
    #                  sgd    momentum nesterov adagrad rmsprop rms-nest adadelta adam
    "bowl":           (0.1,   0.05,    0.05,    1.0,    0.1,    0.01,    20.0,    0.3),
    "elongated-bowl": (0.035, 0.01,    0.01,    1.0,    0.1,    0.01,    20.0,    0.3),
    "saddle":         (0.1,   0.1,     0.1,     0.1,    0.01,   1e-3,    10.0,    0.05),
    "rosenbrock":     (1e-3,  5e-4,    5e-4,    1.0,    0.01,   1e-3,    10.0,    0.7),
    "beale":          (3e-5,  3e-5,    3e-6,    1.0,    0.1,    0.01,    3.0,     0.5),
    "himmelblau":     (0.01,  3e-3,    3e-3,    1.0,    0.03,   3e-3,    3.0,     0.1),
    "rastrigin":      (3e-3,  1e-3,    1e-3,    0.3,    0.01,   1e-3,    3.0,     0.05),
    "six-hump-camel": (0.03,  0.01,    0.01,    0.3,    0.01,   1e-3,    10.0,    0.05),
}


def default_lr(landscape: Landscape, optimizer: str) -> float:
    """The table's learning rate for ``optimizer`` on ``landscape`` (Adam's if not listed)."""
    column = SEED_OPTIMIZERS.index(optimizer if optimizer in SEED_OPTIMIZERS else "adam")
    return _LR_TABLE[landscape.name][column]


def landscape_spec(landscape: Landscape, spec: OptimizerSpec | str) -> OptimizerSpec:
    """``spec`` with the landscape's default learning rate filled in when it sets none."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if "lr" in spec.hyperparameters or landscape.name not in _LR_TABLE:
        return spec
    return spec.with_lr(default_lr(landscape, spec.name))


def default_specs(landscape: Landscape) -> list[OptimizerSpec]:
    return [landscape_spec(landscape, name) for name in SEED_OPTIMIZERS]


# ---- running an optimizer -----------------------------------------------------------------

@dataclass
class Trajectory:
    """One optimizer's path: ``points[k]`` and ``losses[k]`` after k steps (k = 0 is the start).

    ``reached_step``: the first k whose point lies within ``tol`` (Euclidean, in x, y) of a
    listed minimum, ``reached_minimum`` that minimum. ``ended_in``: the listed minimum within
    ``tol`` of the last point. ``escaped_step`` (saddles only): the first k with loss <=
    ESCAPE_LOSS. ``diverged``: the loss became NaN/inf or the point left the divergence box.
    """

    spec: OptimizerSpec
    points: np.ndarray
    losses: np.ndarray
    tol: float
    reached_step: int | None = None
    reached_minimum: Point | None = None
    ended_in: Point | None = None
    escaped_step: int | None = None
    diverged: bool = False
    is_saddle: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def steps_run(self) -> int:
        return len(self.points) - 1

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def escaped(self) -> bool | None:
        return self.escaped_step is not None if self.is_saddle else None

    def summary(self, landscape: Landscape) -> dict[str, Any]:
        """The numbers a table or a JSON file shows (no path)."""
        return {
            "optimizer": self.label,
            "steps_run": self.steps_run,
            "reached_step": self.reached_step,
            "reached_minimum": landscape.describe_minimum(self.reached_minimum)
            if self.reached_minimum else None,
            "ended_in": landscape.describe_minimum(self.ended_in),
            "escaped": self.escaped,
            "escaped_step": self.escaped_step,
            "final_point": [float(v) for v in self.points[-1]],
            "final_loss": self.final_loss,
            "diverged": self.diverged,
        }


def _left_box(landscape: Landscape, point: list[float]) -> bool:
    for value, (low, high) in zip(point, landscape.bounds, strict=True):
        center, half = (low + high) / 2, (high - low) / 2
        if abs(value - center) > DIVERGENCE_BOX * half:
            return True
    return False


def run_trajectory(landscape: Landscape, spec: OptimizerSpec | str, steps: int | None = None,
                   tol: float = DEFAULT_TOL, start: Point | None = None) -> Trajectory:
    """Runs ``spec`` (its lr defaults to the landscape's table value) for ``steps`` steps
    (default ``landscape.steps``) from ``start`` (default ``landscape.start``), in float64.

    The run stops early when it diverges, or on a saddle when it leaves the divergence box.
    """
    if steps is not None and steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}: it is a distance in (x, y), e.g. 0.01")
    spec = landscape_spec(landscape, spec)
    steps = landscape.steps if steps is None else steps
    xy = torch.nn.Parameter(torch.tensor(start or landscape.start, dtype=torch.float64))
    # The eager engine unless the spec names one: a 2-element tensor has nothing to fuse, and
    # compiling a kernel per optimizer would cost more than the whole run.
    optimizer = OptimizerSpec(spec.name, {"impl": "reference", **spec.hyperparameters}).build([xy])
    points, losses, diverged = [], [], False
    for k in range(steps + 1):
        optimizer.zero_grad()
        loss = landscape.fn(xy)
        points.append(xy.detach().tolist())
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or _left_box(landscape, points[-1]):
            # Off to -inf down a saddle's slope is the escape; anything else is a divergence.
            diverged = not (landscape.is_saddle and losses[-1] <= ESCAPE_LOSS)
            break
        if k == steps:
            break
        loss.backward()
        optimizer.step()
    return _measure(landscape, spec, np.array(points), np.array(losses), tol, diverged)


def _measure(landscape: Landscape, spec: OptimizerSpec, points: np.ndarray, losses: np.ndarray,
             tol: float, diverged: bool) -> Trajectory:
    run = Trajectory(spec, points, losses, tol, diverged=diverged, is_saddle=landscape.is_saddle)
    if landscape.minima:
        minima = np.asarray(landscape.minima)
        with np.errstate(invalid="ignore", over="ignore"):
            distances = np.linalg.norm(points[:, None, :] - minima[None, :, :], axis=-1)
        hits = np.flatnonzero(distances.min(axis=1) <= tol)
        if hits.size:
            run.reached_step = int(hits[0])
            run.reached_minimum = landscape.minima[int(distances[hits[0]].argmin())]
        if not diverged:
            run.ended_in = landscape.nearest_minimum(tuple(points[-1]), tol)
    if landscape.is_saddle:
        escapes = np.flatnonzero(losses <= ESCAPE_LOSS)
        run.escaped_step = int(escapes[0]) if escapes.size else None
    return run


def run_all(landscape: Landscape, specs: list[OptimizerSpec] | None = None,
            steps: int | None = None, tol: float = DEFAULT_TOL,
            start: Point | None = None) -> list[Trajectory]:
    """One trajectory per spec (default: the seed optimizers at the landscape's lrs)."""
    specs = default_specs(landscape) if specs is None else specs
    return [run_trajectory(landscape, spec, steps, tol, start) for spec in specs]


_PLOTTING = ("plot_trajectories", "animate_trajectories", "report_figures")


def __getattr__(name: str) -> Any:
    # The plotting functions import matplotlib: load them only when asked for.
    if name in _PLOTTING:
        from descend.lab import landscape_plots

        return getattr(landscape_plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
