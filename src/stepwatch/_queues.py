"""Broker queue depths read by callbacks: the ``workflow.execution.queue.depth`` gauge.

The Monitor's :meth:`~stepwatch.Monitor.observe_queue_depth` registers a
callback per queue here. The gauge is created on the first registration and
again on a new meter provider (a forked child's); ``summary()`` and the
``QueueBacklog`` rule read the sum over queues through :meth:`total`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, ObservableGauge, Observation

from stepwatch import semconv
from stepwatch._safety import report
from stepwatch.version import __version__

__all__ = ["QueueDepths"]


class QueueDepths:
    """The registered queue-depth callbacks and the gauge that reports them."""

    def __init__(self) -> None:
        self._callbacks: dict[str, Callable[[], float]] = {}
        self._gauge: ObservableGauge | None = None
        self._provider: MeterProvider | None = None

    def observe(
        self, queue: str, callback: Callable[[], float], provider: MeterProvider | None
    ) -> None:
        """Read ``queue``'s depth with ``callback`` (replacing an earlier one)."""
        self._callbacks[queue] = callback
        if self._gauge is None:
            self.attach(provider)

    def attach(self, provider: MeterProvider | None) -> None:
        """Create the gauge on ``provider`` (once callbacks exist): at first use and after fork."""
        self._provider = provider
        if not self._callbacks:
            return
        meter = metrics.get_meter(
            semconv.INSTRUMENTATION_SCOPE, __version__, meter_provider=provider
        )
        self._gauge = meter.create_observable_gauge(
            semconv.QUEUE_DEPTH.name,
            callbacks=[self._observe],
            unit=semconv.QUEUE_DEPTH.unit,
            description=semconv.QUEUE_DEPTH.description,
        )

    def read(self) -> dict[str, float]:
        """Each queue's depth now; a failing callback is reported and left out.

        A depth that is not a finite number >= 0 (NaN, infinity, negative) is
        reported and left out too: it is no count of queued items.
        """
        depths: dict[str, float] = {}
        for queue, callback in list(self._callbacks.items()):
            try:
                depth = float(callback())
            except Exception:
                report(
                    "monitor.queue_depth",
                    "stepwatch: queue depth callback for %r failed",
                    queue,
                    exc_info=True,
                )
                continue
            if not (math.isfinite(depth) and depth >= 0.0):
                report(
                    "monitor.queue_depth.invalid",
                    "stepwatch: queue depth callback for %r returned %r; left out",
                    queue,
                    depth,
                )
                continue
            depths[queue] = depth
        return depths

    def total(self) -> float | None:
        """The sum over queues, or ``None`` when no callback is registered."""
        if not self._callbacks:
            return None
        return sum(self.read().values())

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(depth, {semconv.WORKFLOW_EXECUTION_QUEUE: queue})
            for queue, depth in self.read().items()
        ]
