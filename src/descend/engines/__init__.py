"""How a rule is applied to many tensors. An engine knows how rules are called, not their math.

``reference``: eager torch ops, one call of the rule per parameter, every device and dtype.
"""

from __future__ import annotations

from descend.engines import reference

ENGINES = {"reference": reference}


def select(impl: str):
    """The engine for ``impl`` ("auto" picks the fastest engine that is available)."""
    if impl == "auto":
        return reference
    try:
        return ENGINES[impl]
    except KeyError:
        raise ValueError(
            f"unknown impl={impl!r}; choose one of {['auto', *ENGINES]}"
        ) from None
