"""Tasks by name: every module in this package that defines ``TASK`` (or a tuple ``TASKS``)
is registered."""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from descend.lab.tasks.base import Split, Splits, Task

__all__ = ["Split", "Splits", "Task", "available", "get"]


def _discover() -> dict[str, Task]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        tasks = getattr(module, "TASKS", ())
        if hasattr(module, "TASK"):
            tasks = (*tasks, module.TASK)
        for task in tasks:
            found[task.name] = task
    return found


def available() -> list[str]:
    return sorted(_discover())


def get(name: str) -> Task:
    """The task called ``name``, or a ValueError with the known names and a did-you-mean."""
    tasks = _discover()
    if name in tasks:
        return tasks[name]
    close = difflib.get_close_matches(name, tasks, n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"unknown task {name!r}; available: {', '.join(sorted(tasks))}.{hint}")
