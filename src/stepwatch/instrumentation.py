"""``StepwatchInstrumentor``: stepwatch under ``opentelemetry-instrument``, with no code.

Usage::

    opentelemetry-instrument python engine.py        # the Monitor is installed for you
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=stepwatch opentelemetry-instrument ...  # all off

    StepwatchInstrumentor().instrument()              # the same, in code

The ``opentelemetry_instrumentor`` entry point ``stepwatch`` points here. The
auto-instrumentation runs the distro's configurator (which sets the global
SDK providers) before the instrumentors, so :meth:`instrument` installs a
Monitor on those providers (``configure()`` reuses them and builds nothing);
an application's later ``stepwatch.configure()`` returns that same Monitor.
When ``stepwatch`` is in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, the
decorators emit nothing at all (see :func:`stepwatch._telemetry.disabled`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from stepwatch import configuration
from stepwatch.package import _instruments

__all__ = ["StepwatchInstrumentor"]


class StepwatchInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Installs stepwatch's Monitor on the global providers; ``uninstrument()`` removes it.

    ``instrument(**kwargs)`` passes its keyword arguments to
    :func:`stepwatch.configure` (``rules=``, ``limits=``, ``service_name=``...).
    Idempotent, as every ``BaseInstrumentor``.

    .. versionadded:: 0.2.0
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """stepwatch instruments the application's own functions: no library to require."""
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        configuration.adopt(configuration.configure(**kwargs))

    def _uninstrument(self, **kwargs: Any) -> None:
        monitor = configuration.adopted()
        configuration.adopt(None)
        if monitor is not None:
            monitor.shutdown()
