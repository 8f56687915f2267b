"""MNIST-1D, generated (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439).

Ten hand-drawn 1-D templates of 12 points, one per digit, each turned into a 40-point signal by
the paper's chain of random transformations: pad with 36-60 zeros and stretch to 72 points,
scale by 1 +- 0.2, roll by 0-47 points, fill the background with correlated noise (white noise
of scale 0.25 smoothed by a Gaussian of width 2), add white noise of scale 0.02, shear by up to
+-0.375 across the signal, and resample to 40 points. The dataset is then standardized. With
the paper's defaults linear models reach ~32% test accuracy and MLPs ~68%; no download.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
IID_NOISE_SCALE = 0.02
SHEAR_SCALE = 0.75
LENGTH = 40


def templates() -> np.ndarray:
    """The templates standardized per digit, shifted to start at 0, divided by 6 (as in the
    paper's code)."""
    x = TEMPLATES - TEMPLATES.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of ``x`` onto ``n`` evenly spaced points over the same span."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def transform(template: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random 40-point example of ``template``."""
    eps = 1e-8  # keeps the template's own zeros apart from the padding
    low, high = PADDING
    padded = np.concatenate([template + eps, np.zeros(low + int(rng.random() * (high - low + 1)))])
    x = resample(padded, len(template) + high)
    x *= 1 + SCALE_COEFF * (rng.random() - 0.5)
    x = np.roll(x, int(rng.integers(MAX_TRANSLATION)))
    background = gaussian_filter1d(CORR_NOISE_SCALE * rng.standard_normal(len(x)), 2)
    x = np.where(x != 0, x, background)
    x += IID_NOISE_SCALE * rng.standard_normal(len(x))
    x -= SHEAR_SCALE * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return resample(x, LENGTH)


@lru_cache(maxsize=4)
def make_dataset(num_samples: int = 5000, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """``num_samples`` examples (equal per digit, shuffled), standardized: (x [N, 40], y [N])."""
    rng = np.random.default_rng(seed)
    shapes = templates()
    per_class = num_samples // len(shapes)
    y = np.repeat(np.arange(len(shapes)), per_class)
    x = np.stack([transform(shapes[label], rng) for label in y])
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    return (x - x.mean()) / x.std(), y
