"""A crashed or hung rank fails the test quickly with a clear message, never hangs it."""

from __future__ import annotations

import time

import pytest
from dist_launch import RanksFailed, run_ranks


@pytest.mark.timeout(60)
def test_a_crashing_rank_fails_fast_with_its_traceback(tmp_path):
    started = time.monotonic()
    with pytest.raises(RanksFailed) as failure:
        run_ranks("crash", tmp_path, world_size=2, timeout=45)
    message = str(failure.value)
    assert "exited with status" in message
    assert "rank 1 crashed on purpose" in message  # the crashed rank's own traceback
    assert time.monotonic() - started < 40, "the launcher waited for the timeout"


@pytest.mark.timeout(60)
def test_a_hanging_rank_is_killed_at_the_timeout(tmp_path):
    started = time.monotonic()
    with pytest.raises(RanksFailed, match=r"rank\(s\) \[.*1.*\] still running after 8 s"):
        run_ranks("hang", tmp_path, world_size=2, timeout=8)
    assert time.monotonic() - started < 16, "the ranks were not killed at the timeout"
