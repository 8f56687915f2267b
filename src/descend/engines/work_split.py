"""How a kernel call's elements are shared among threads: chunks of equal element counts.

numba's ``prange`` gives each thread an equal run of consecutive iterations. Looping over
fixed-size blocks of each tensor made those runs unequal in elements: on a small model every
tensor is one block, and tensors of growing sizes left the last thread about 72% of the work.
So the elements of the whole batch, laid end to end, are cut into as many chunks of (nearly) equal
counts as there are threads; each chunk is a list of work items, a run of one tensor's elements
``(tensor, begin, count)``, and the kernel runs one chunk per thread.
"""

from __future__ import annotations

import numpy as np

ALIGN = 16  # a cut inside a tensor falls on a multiple of 16 elements: whole 64-byte cache lines


class WorkSplit:
    """The work items and chunks of one batch (tensor sizes), per chunk count, built once."""

    def __init__(self, sizes: np.ndarray) -> None:
        self.starts = np.zeros(len(sizes) + 1, dtype=np.int64)  # each tensor's first element
        np.cumsum(sizes, out=self.starts[1:])
        self.total = int(self.starts[-1])
        self._splits: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def chunks(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``(items, chunk_first)``: items as rows ``(tensor, begin, count)``, chunk ``c`` being
        items ``chunk_first[c]`` to ``chunk_first[c + 1]``."""
        split = self._splits.get(count)
        if split is None:
            split = self._splits[count] = self._cut(count)
        return split

    def _cut(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        starts = self.starts
        bounds = np.arange(count + 1, dtype=np.int64) * self.total // count
        inner = bounds[1:-1]
        owner = np.searchsorted(starts, inner, side="right") - 1
        inner -= (inner - starts[owner]) % ALIGN  # aligned within the tensor it falls in
        cuts = np.union1d(starts, bounds)  # sorted, distinct: zero-size tensors vanish
        first = cuts[:-1]
        tensor = np.searchsorted(starts, first, side="right") - 1
        items = np.stack([tensor, first - starts[tensor], np.diff(cuts)], axis=1)
        return np.ascontiguousarray(items), np.searchsorted(first, bounds).astype(np.int64)
