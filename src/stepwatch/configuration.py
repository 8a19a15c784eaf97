"""One-call set-up: SDK providers from the standard ``OTEL_*`` variables, plus the Monitor.

Usage::

    monitor = stepwatch.configure(service_name="billing-engine")

Configuration:

- ``exporter``: ``"otlp"``, ``"console"`` or ``"none"``. ``None`` picks
  ``"otlp"`` when any ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set, else
  ``"none"`` (in-process only).
- OTLP protocol: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
  ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``,
  else ``http/protobuf`` (the specification's default). ``grpc`` is the other
  supported value; an unknown value logs a warning and falls back.
- Endpoints, headers, timeouts, compression, certificates and metric
  temporality: read by the OTLP exporters themselves from their standard variables.
- Resource: ``service_name`` (when given) over ``OTEL_SERVICE_NAME`` over
  ``OTEL_RESOURCE_ATTRIBUTES``, as :meth:`Resource.create` merges them; a
  random ``service.instance.id`` unless those set one (a forked child always
  gets a new one: see ``docs/processes.md``).
- Sampler: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``, read by the
  SDK's ``TracerProvider``.
- Export interval: ``OTEL_METRIC_EXPORT_INTERVAL``, read by the SDK.
- ``flush_timeout`` (env ``STEPWATCH_FLUSH_TIMEOUT``, default 1 s): the bound
  on a forked child's per-execution flush and on the flush at SIGTERM.
- ``STEPWATCH_HANDLE_SIGTERM=false``: leave SIGTERM alone (see
  :mod:`stepwatch._sigterm`).

One Monitor per process: the first ``configure()`` (with ``set_global``)
installs it and stepwatch keeps it until exit, where it is shut down
(flushed); later calls return it. See ``docs/processes.md``.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, MetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import TracerProvider

from stepwatch import _checks as checks
from stepwatch import _sigterm, _telemetry
from stepwatch._flush import DEFAULT_FLUSH_TIMEOUT
from stepwatch._otel_internals import global_meter_provider_unset
from stepwatch._pipeline import Pipeline, new_instance_id
from stepwatch.group import ENVIRONMENT_VARIABLE
from stepwatch.health import ExportStatus, Rules
from stepwatch.limits import Limits
from stepwatch.monitor import Monitor

__all__ = ["FLUSH_TIMEOUT_VARIABLE", "configure"]

FLUSH_TIMEOUT_VARIABLE = "STEPWATCH_FLUSH_TIMEOUT"

_logger = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = ("http/protobuf", "grpc")
_DEFAULT_PROTOCOL = "http/protobuf"
_ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


def _choose_exporters(exporter: str | None) -> tuple[str, str]:
    """The span and the metric exporter kinds.

    ``exporter`` wins for both signals; else ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_METRICS_EXPORTER`` (their first entry) each choose their own; else
    ``otlp`` when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set and
    ``none`` otherwise. An unknown value in a variable is logged and read as
    ``none`` (a variable is not code: it must not stop the engine).
    """
    if exporter is not None:
        kind = checks.choice(exporter, "exporter", EXPORTERS)
        return kind, kind
    default = "otlp" if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES) else "none"
    return (
        _exporter_variable("OTEL_TRACES_EXPORTER", EXPORTERS, default),
        _exporter_variable("OTEL_METRICS_EXPORTER", (*EXPORTERS, "prometheus"), default),
    )


def _exporter_variable(name: str, known: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name, "").split(",")[0].strip().lower()
    if not raw:
        return default
    if raw not in known:
        _logger.warning("stepwatch: %s=%r is not one of %s; exporting nothing", name, raw, known)
        return "none"
    return raw


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _protocol(signal: str) -> str:
    raw = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or _DEFAULT_PROTOCOL
    ).strip()
    if raw not in _PROTOCOLS:
        _logger.warning(
            "stepwatch: unsupported OTLP protocol %r for %s; using %s",
            raw,
            signal.lower(),
            _DEFAULT_PROTOCOL,
        )
        return _DEFAULT_PROTOCOL
    return raw


def _export_timeout() -> float:
    """Seconds ``shutdown()`` waits for the exporters: ``OTEL_EXPORTER_OTLP_TIMEOUT`` or 10.

    The Python OTLP exporters read this variable in seconds.
    """
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if raw:
        try:
            value = float(raw)
            if value > 0:
                return value
        except ValueError:
            pass
        _logger.warning("stepwatch: invalid OTEL_EXPORTER_OTLP_TIMEOUT %r; using 10 s", raw)
    return 10.0


def _flush_timeout() -> float:
    """``STEPWATCH_FLUSH_TIMEOUT`` seconds, else :data:`~stepwatch._flush.DEFAULT_FLUSH_TIMEOUT`."""
    raw = os.environ.get(FLUSH_TIMEOUT_VARIABLE)
    if raw:
        try:
            value = float(raw)
            if 0 < value <= checks.MAX_SECONDS:
                return value
        except ValueError:
            pass
        _logger.warning(
            "stepwatch: invalid %s %r; using %s s",
            FLUSH_TIMEOUT_VARIABLE,
            raw,
            DEFAULT_FLUSH_TIMEOUT,
        )
    return DEFAULT_FLUSH_TIMEOUT


def _span_exporter(kind: str) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _prometheus_reader() -> MetricReader:
    """A Prometheus pull reader, served on ``OTEL_EXPORTER_PROMETHEUS_HOST:PORT``.

    Needs the ``prometheus`` extra (``opentelemetry-exporter-prometheus``).
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    from prometheus_client import start_http_server  # noqa: PLC0415

    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
    port = int(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
    start_http_server(port=port, addr=host)
    return PrometheusMetricReader()


def _metric_exporter(kind: str) -> MetricExporter:
    if kind == "console":
        return ConsoleMetricExporter()
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def configure(
    *,
    service_name: str | None = None,
    exporter: str | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    rules: Rules | None = None,
    set_global: bool = True,
    multiprocess_dir: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    flush_timeout: float | None = None,
) -> Monitor:
    """Set up OpenTelemetry for an engine process and return its :class:`Monitor`.

    Args:
        service_name: ``service.name`` of the resource (wins over ``OTEL_SERVICE_NAME``).
        exporter: ``"otlp"``, ``"console"``, ``"none"`` or ``None`` (``"otlp"``
            when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set, else ``"none"``).
        tracer_provider: Use this provider as it is instead of building one.
        meter_provider: Use this provider as it is instead of building one.
        rules: :class:`~stepwatch.Rules` for the Monitor (default ``Rules()``).
        set_global: Install the Monitor for the decorators and, for providers
            built here, set them as the global OpenTelemetry providers when
            none is set yet.
        multiprocess_dir: A directory the processes of one group share
            (default: the ``STEPWATCH_MULTIPROCESS_DIR`` variable, else none):
            the Monitor publishes there and answers for the whole group (see
            :mod:`stepwatch.group`).

            .. versionadded:: 0.2.0
        limits: Every memory bound of the Monitor (:class:`~stepwatch.Limits`).

            .. versionadded:: 0.2.0
        flush_timeout: Seconds a forked child's per-execution flush, and the
            flush on SIGTERM, may hold the process up (default: the
            ``STEPWATCH_FLUSH_TIMEOUT`` variable, else 1).

            .. versionadded:: 0.3.0

    Returns:
        The process's Monitor. With ``set_global`` (the default) it is
        installed and kept until exit, when it is shut down (flushed): its
        result may be dropped. A later call returns the same Monitor while it
        is not shut down (warning when its arguments differ). With
        ``set_global=False`` and no process Monitor yet: a new Monitor, which
        the caller keeps and shuts down. Providers built here are shut down
        with it.

    .. versionchanged:: 0.3.0 One Monitor per process, kept until exit;
       SIGTERM handled where nothing else handles it.

    Raises:
        TypeError: an argument of the wrong type, named in the message.
        ValueError: an argument out of range (an unknown ``exporter``, an
            empty ``service_name``), named in the message.

    .. versionadded:: 0.1.0
    """
    trace_kind, metric_kind = _choose_exporters(exporter)
    checks.name(service_name, "service_name", optional=True)
    if rules is not None:
        checks.instance(rules, "rules", Rules, "a stepwatch.Rules")
    if limits is not None:
        checks.instance(limits, "limits", Limits, "a stepwatch.Limits")
    checks.path(multiprocess_dir, "multiprocess_dir", optional=True)
    checks.seconds(flush_timeout, "flush_timeout", optional=True)
    arguments: dict[str, Any] = {
        "service_name": service_name,
        "exporter": exporter,
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
        "rules": rules,
        "multiprocess_dir": multiprocess_dir,
        "limits": limits,
        "flush_timeout": flush_timeout,
    }
    installed_now = _process_monitor
    if installed_now is not None and not installed_now.closed:
        # One Monitor per process (the instrumentor's under opentelemetry-instrument).
        if arguments != _arguments.get(installed_now):
            warnings.warn(
                "stepwatch.configure() was already called in this process with other "
                "arguments: returning the installed Monitor unchanged (shut it down first "
                "to configure again)",
                RuntimeWarning,
                stacklevel=2,
            )
        return installed_now
    attributes: dict[str, str] = {SERVICE_NAME: service_name} if service_name else {}
    resource = Resource.create(attributes)
    if SERVICE_INSTANCE_ID not in resource.attributes:
        # Each process is its own telemetry source (a forked child gets another).
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: new_instance_id()}))
    disabled = _sdk_disabled()
    if _telemetry.disabled():
        # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS lists stepwatch: no telemetry at all.
        disabled = True
        tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        meter_provider = meter_provider or metrics.NoOpMeterProvider()
    if tracer_provider is None:
        tracer_provider = _global_sdk_tracer_provider()
    if meter_provider is None:
        meter_provider = _global_sdk_meter_provider()
    pipeline = Pipeline(
        resource=resource,
        status=ExportStatus(),
        span_exporter=(
            None if trace_kind == "none" else functools.partial(_span_exporter, trace_kind)
        ),
        metric_exporter=(
            None
            if metric_kind in ("none", "prometheus")
            else functools.partial(_metric_exporter, metric_kind)
        ),
        metric_reader=_prometheus_reader if metric_kind == "prometheus" else None,
        build_tracer=tracer_provider is None and not disabled,
        build_meter=meter_provider is None and not disabled,
        export_timeout=_export_timeout(),
        reused=tuple(p for p in (tracer_provider, meter_provider) if p is not None),
    )
    if multiprocess_dir is None:
        multiprocess_dir = os.environ.get(ENVIRONMENT_VARIABLE) or None
    monitor = Monitor(
        tracer_provider=tracer_provider or pipeline.tracer_provider,
        meter_provider=meter_provider or pipeline.meter_provider,
        rules=rules,
        limits=limits,
        pipeline=pipeline,
        multiprocess_dir=multiprocess_dir,
        flush_timeout=_flush_timeout() if flush_timeout is None else flush_timeout,
    )
    if set_global:
        if pipeline.tracer_provider is not None and isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider
        ):
            trace.set_tracer_provider(pipeline.tracer_provider)
        if pipeline.meter_provider is not None and global_meter_provider_unset():
            metrics.set_meter_provider(pipeline.meter_provider)
        monitor.install()
        _keep(monitor)
    _arguments[monitor] = arguments
    _flush_at_multiprocessing_exit(monitor)
    if set_global:
        atexit.register(_shutdown_at_exit, lambda: monitor)
    else:
        atexit.register(_shutdown_at_exit, weakref.ref(monitor))
    return monitor


def _shutdown_at_exit(monitor_ref: Callable[[], Monitor | None]) -> None:
    """At interpreter exit: shut down within the export timeout, whatever the backend does.

    The providers ``configure()`` builds have no SDK exit hook of their own
    (which would wait on an export stuck on an unreachable backend and hold
    the process up); this one flushes until ``monitor.shutdown_timeout``
    (``OTEL_EXPORTER_OTLP_TIMEOUT``) and lets the process go. The process's
    Monitor is held strongly until then (dropping ``configure()``'s result
    loses nothing); one made with ``set_global=False`` weakly.
    """
    monitor = monitor_ref()
    if monitor is not None:
        monitor.shutdown()


_process_monitor: Monitor | None = None
_arguments: weakref.WeakKeyDictionary[Monitor, dict[str, Any]] = weakref.WeakKeyDictionary()
"""What each Monitor ``configure()`` made was asked for (to warn when a later call differs)."""


def _keep(monitor: Monitor) -> None:
    """Make ``monitor`` the process's Monitor, and handle SIGTERM for it if nobody does."""
    global _process_monitor  # noqa: PLW0603 - one Monitor per process
    _process_monitor = monitor
    _sigterm.install(_shutdown_on_sigterm, _sigterm_timeout)


def _shutdown_on_sigterm() -> None:
    monitor = _process_monitor
    if monitor is not None:
        monitor.shutdown(timeout=monitor.flush_timeout)


def _sigterm_timeout() -> float:
    monitor = _process_monitor
    return DEFAULT_FLUSH_TIMEOUT if monitor is None else monitor.flush_timeout


def adopt(monitor: Monitor | None) -> None:
    """Make ``monitor`` the one a later :func:`configure` returns (the instrumentor's)."""
    global _process_monitor  # noqa: PLW0603 - one Monitor per process
    _process_monitor = monitor


def adopted() -> Monitor | None:
    """The process's Monitor (the instrumentor's or the first ``configure()``'s), if any."""
    return _process_monitor


def _global_sdk_tracer_provider() -> TracerProvider | None:
    """The global tracer provider when it is an SDK one (set by the distro or the application)."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, SdkTracerProvider) else None


def _global_sdk_meter_provider() -> MeterProvider | None:
    """The global meter provider when it is an SDK one (set by the distro or the application)."""
    provider = metrics.get_meter_provider()
    return provider if isinstance(provider, SdkMeterProvider) else None


def _flush_at_multiprocessing_exit(monitor: Monitor) -> None:
    """In a ``multiprocessing`` child, shut the Monitor down (flushing) when the child ends.

    Such a child (spawn, forkserver or fork start method; ``Pool`` and
    ``ProcessPoolExecutor`` workers) leaves with ``os._exit`` after its
    target returns: atexit handlers, where the SDK flushes, never run, but
    ``multiprocessing``'s own finalizers do.
    """
    module = sys.modules.get("multiprocessing")
    if module is None or module.parent_process() is None:
        return
    from multiprocessing import util  # noqa: PLC0415 - only in multiprocessing children

    util.Finalize(monitor, monitor.shutdown, exitpriority=10)
