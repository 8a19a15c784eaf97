"""Which fork of the process this is: a counter bumped in every forked child.

Handles record the generation they started in; a handle inherited through
``os.fork`` (the parent's open execution or step) is not the child's to end,
and exporters built before a fork know they hold the parent's state. Reading
the counter is one attribute load, cheap enough for the hot path.
"""

from __future__ import annotations

import os

__all__ = ["current", "in_forked_child"]

current = 0
"""0 in the process that imported stepwatch first; +1 in each forked child (and grandchild)."""


def in_forked_child() -> bool:
    """Whether this process was forked from one where stepwatch was already imported."""
    return current > 0


def _after_fork_in_child() -> None:
    global current  # noqa: PLW0603 - the one process-wide counter
    current += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
