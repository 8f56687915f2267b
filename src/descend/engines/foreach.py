"""The foreach backend: the traced rule run as torch._foreach_* calls over a group's lists.

(Being written: see the engine issue.)
"""

from __future__ import annotations

from descend.engines.reference import advance_steps, apply  # noqa: F401  placeholder
