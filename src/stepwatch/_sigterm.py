"""SIGTERM, the way Kubernetes and systemd stop a process: flush within a bound, then die as asked.

Python's default for SIGTERM is to die at once: no ``atexit`` hook runs, so
what the SDK still queues is lost. Where nothing else handles the signal
(``SIG_DFL``, set up from the main thread), :func:`install` puts a handler
that flushes the process's Monitor within ``flush_timeout`` seconds, then
restores ``SIG_DFL`` and sends the signal again: the process ends exactly as
it would have (killed by SIGTERM, exit status 143 in a shell, ``-15`` from
``subprocess``). A handler the application or the engine set (Celery's and
RQ's warm shutdown) is left alone, and one set later replaces this one.
Opt out with ``STEPWATCH_HANDLE_SIGTERM=false``.

The flush runs on a daemon thread and the handler waits for it with the
bound: the handler runs between two bytecodes of the main thread, which may
hold a lock the flush needs; then the bound passes and the process dies.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from stepwatch._safety import report

__all__ = ["ENVIRONMENT_VARIABLE", "enabled", "install"]

ENVIRONMENT_VARIABLE = "STEPWATCH_HANDLE_SIGTERM"


def enabled() -> bool:
    """Whether ``STEPWATCH_HANDLE_SIGTERM`` allows the handler (anything but false, 0, no, off)."""
    raw = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    return raw not in ("false", "0", "no", "off")


def install(flush: Callable[[], object], timeout: Callable[[], float]) -> bool:
    """Install the handler if nothing else handles SIGTERM here; whether it was installed.

    Args:
        flush: Flushes (and shuts down) the process's Monitor; run on a daemon thread.
        timeout: Returns the seconds to wait for ``flush`` (read when the signal comes).

    Never raises: a process where it cannot be installed keeps its default.
    """
    if not enabled() or threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False  # the application's or the engine's: theirs to run
        handler = _handler(flush, timeout)
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not settable
        return False
    return True


def _handler(
    flush: Callable[[], object], timeout: Callable[[], float]
) -> Callable[[int, FrameType | None], None]:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        try:
            done = threading.Event()

            def run() -> None:
                try:
                    flush()
                except Exception:
                    report("sigterm.flush", "stepwatch: flushing on SIGTERM failed", exc_info=True)
                finally:
                    done.set()

            threading.Thread(target=run, name="stepwatch-sigterm", daemon=True).start()
            if not done.wait(timeout()):
                report(
                    "sigterm.timeout",
                    "stepwatch: telemetry not flushed within the bound on SIGTERM; exiting",
                )
        except Exception:
            report("sigterm.flush", "stepwatch: flushing on SIGTERM failed", exc_info=True)
        finally:
            # Die as the default would have: killed by the signal.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    return on_sigterm
