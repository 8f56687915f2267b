"""How a rule is applied to many tensors. An engine knows how rules are called, not their math.

``reference``: eager torch ops, one call of the rule per parameter, every device and dtype.
``fast``: the rule traced once per configuration and compiled with numba into one kernel per
call that updates many CPU tensors in place (``descend.engines.fast``; needs ``descend[fast]``).
``auto`` (the default): the fast engine where it applies, the reference engine elsewhere
(other devices, bfloat16/float16, tensor subclasses, or numba not installed).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

from descend.engines import reference

IMPLS = ("auto", "reference", "foreach", "numba", "fast")


@functools.cache
def fast_available() -> bool:
    """Whether numba is installed (checked without importing it: that takes a while)."""
    return importlib.util.find_spec("numba") is not None


def check_impl(impl: str) -> None:
    """A ValueError unless ``impl`` names a backend choice."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl={impl!r}; choose one of {list(IMPLS)}")


@functools.cache
def select(impl: str):
    """The engine for ``impl``: an object with
    ``apply(rule, params, grads, states, names, hyper)``."""
    if impl == "reference":
        return reference
    if impl == "foreach":
        from descend.engines import foreach

        return foreach
    if impl not in IMPLS:
        raise ValueError(f"unknown impl={impl!r}; choose one of {list(IMPLS)}")
    if not fast_available():
        if impl == "auto":
            return reference
        raise ValueError("impl='fast' needs numba, which is not installed: "
                         "pip install 'descend[fast]' (or use impl='auto' or 'reference')")
    try:
        from descend.engines.fast import FastEngine
    except ImportError as e:  # numba present but unusable (e.g. built for another numpy)
        if impl == "fast":
            raise ValueError(f"impl='fast' needs a working numba: importing it failed ({e}); "
                             "reinstall it with pip install -U 'descend[fast]'") from e
        warnings.warn(f"descend: the fast engine is unavailable ({e}); using the reference "
                      "engine", RuntimeWarning, stacklevel=3)
        return reference
    return FastEngine(strict=impl == "fast")
