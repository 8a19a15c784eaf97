"""The engine versions stepwatch's integrations support (contrib's ``package.py`` convention).

Each integration's ``instrumentation_dependencies()`` returns its tuple, so
``BaseInstrumentor.instrument()`` refuses an engine outside the range (it
logs the conflict and instruments nothing). Lower bounds: the oldest release
with the hooks the integration uses; upper bounds: the next major release
after the newest one the test suite ran against.

The distribution declares no ``instruments`` extra: the auto-instrumentation
reads that extra for the whole distribution, so listing the four engines
there would skip every stepwatch instrumentor (the engine-free ``stepwatch``
one too) wherever one engine is missing. Each engine has its own extra
(``stepwatch[celery]``...) instead.
"""

from __future__ import annotations

_instruments: tuple[str, ...] = ()
"""The ``stepwatch`` instrumentor instruments the application's own functions: no library."""

_instruments_celery = ("celery >= 5.3, < 6",)
_instruments_rq = ("rq >= 2.0, < 4",)
_instruments_dramatiq = ("dramatiq >= 1.17, < 3",)
_instruments_huey = ("huey >= 2.5, < 4",)

_supports_metrics = True
