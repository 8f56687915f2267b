"""The fast engine's work split: every element in exactly one item, chunks of equal counts."""

import numpy as np
import pytest

from descend.engines.work_split import ALIGN, WorkSplit


def coverage(sizes: list[int], items: np.ndarray) -> list[np.ndarray]:
    """How many times each element of each tensor is in an item."""
    counts = [np.zeros(n, dtype=int) for n in sizes]
    for tensor, begin, count in items:
        assert count > 0
        counts[tensor][begin:begin + count] += 1
    return counts


@pytest.mark.parametrize("sizes", [[10, 0, 40_000, 7, 0], [1], [0, 5], list(range(1, 60)),
                                   [1024 + 92 * i for i in range(150)]])
@pytest.mark.parametrize("chunks", [1, 2, 3, 8])
def test_each_element_once_and_chunks_equal(sizes, chunks):
    items, first = WorkSplit(np.array(sizes, dtype=np.int64)).chunks(chunks)
    assert all((c == 1).all() for c in coverage(sizes, items))
    assert first[0] == 0 and first[-1] == len(items) and len(first) == chunks + 1
    per_chunk = [int(items[first[c]:first[c + 1], 2].sum()) for c in range(chunks)]
    # A cut moves back to a multiple of ALIGN elements within its tensor, or to the tensor's start.
    assert max(per_chunk) - min(per_chunk) <= 2 * ALIGN or sum(sizes) < chunks * 2 * ALIGN


def test_tensors_of_growing_sizes_are_split_in_equal_halves():
    """One item per tensor split in halves of consecutive tensors would give 28% and 72%."""
    sizes = [1024 + (13_776 * i) // 149 for i in range(150)]
    items, first = WorkSplit(np.array(sizes, dtype=np.int64)).chunks(2)
    halves = [int(items[first[c]:first[c + 1], 2].sum()) for c in range(2)]
    assert halves[0] + halves[1] == sum(sizes)
    assert abs(halves[0] - halves[1]) <= 2 * ALIGN  # the cut moved back by < ALIGN
    cut = items[first[1]]
    assert cut[1] % ALIGN == 0  # inside a tensor, at a multiple of ALIGN elements
