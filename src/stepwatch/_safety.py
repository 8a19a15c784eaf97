"""Containment of stepwatch's own failures: log once, count always, never raise.

Every piece of stepwatch work that runs on the host's call path goes through
:func:`report` when it fails. The host's exceptions never come here: they are
re-raised by the wrappers untouched.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import Counter

_logger = logging.getLogger("stepwatch")

_MAX_LOGGED_KINDS = 1024
"""How many distinct failure kinds are remembered for log-once (bounded)."""

RECURSION_HEADROOM = 100
"""Python frames kept free below the recursion limit for stepwatch's bookkeeping."""

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_logged: set[str] = set()


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - a parent thread may have held the old lock at fork time
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def report(kind: str, message: str, *args: object, exc_info: bool = False) -> None:
    """Count a stepwatch-internal problem and log it the first time its kind is seen.

    Args:
        kind: A short, bounded key naming the problem (e.g. ``"step.progress"``).
        message: A ``logging``-style format string.
        *args: Arguments for ``message``.
        exc_info: Attach the exception being handled to the log record.

    Never raises.
    """
    try:
        with _lock:
            _counts[kind] += 1
            first = kind not in _logged
            if first and len(_logged) < _MAX_LOGGED_KINDS:
                _logged.add(kind)
        if first:
            _logger.warning(message, *args, exc_info=exc_info)
    except Exception:  # pragma: no cover - logging itself failed; nothing left to do
        pass


def internal_errors() -> dict[str, int]:
    """Return a copy of the counts of stepwatch-internal problems by kind."""
    with _lock:
        return dict(_counts)


def reset_internal_errors() -> None:
    """Forget the counts and the log-once memory (for tests)."""
    with _lock:
        _counts.clear()
        _logged.clear()


def near_recursion_limit() -> bool:
    """Whether the calling thread is within :data:`RECURSION_HEADROOM` frames of the limit.

    A run started there could not finish its bookkeeping (span, metrics, the
    Monitor's record) before the interpreter's recursion limit, and would be
    left running; the instrument layer leaves such a call unobserved instead.
    Counts Python frames (C-level recursion is not visible here, so the
    headroom is generous). About 0.6 us at a typical depth: one C-level walk.
    """
    try:
        sys._getframe(sys.getrecursionlimit() - RECURSION_HEADROOM)
    except ValueError:
        return False
    return True
