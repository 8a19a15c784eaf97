"""One-call set-up: SDK providers from the standard ``OTEL_*`` variables, plus the Monitor.

Usage::

    monitor = stepwatch.configure(service_name="billing-engine")

Configuration:

- ``exporter``: ``"otlp"``, ``"console"`` or ``"none"``. ``None`` reads
  ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (comma lists, e.g.
  ``otlp,console``; metrics also ``prometheus``, which warns and is left out
  when it cannot start), else picks ``"otlp"`` when any
  ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set, else ``"none"``
  (in-process only).
- Providers already set globally (the distro's, the application's) are
  reused, and their exporters observed for ``TelemetryExportFailing``.
- ``STEPWATCH_MULTIPROCESS_DIR``: the process group's directory; an unusable
  one logs a warning and the Monitor runs without a group.
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
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import weakref
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, MetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import TracerProvider

from stepwatch import _checks as checks
from stepwatch import _telemetry
from stepwatch._exporters import observe_exporters
from stepwatch._otel_internals import global_meter_provider_unset
from stepwatch._pipeline import Pipeline, new_instance_id
from stepwatch.group import ENVIRONMENT_VARIABLE
from stepwatch.health import ExportStatus, Rules
from stepwatch.limits import Limits
from stepwatch.monitor import Monitor

__all__ = ["configure"]

_logger = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = ("http/protobuf", "grpc")
_DEFAULT_PROTOCOL = "http/protobuf"
_MAX_PORT = 65535
_ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


def _choose_exporters(exporter: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The span and the metric exporter kinds (each an ordered tuple, empty for none).

    ``exporter`` wins for both signals; else ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_METRICS_EXPORTER`` each choose their own, as comma lists
    (``otlp,console``; the specification allows lists); else ``otlp`` when an
    ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set and none otherwise. An
    unknown entry in a variable is logged and left out (a variable is not
    code: it must not stop the engine).
    """
    if exporter is not None:
        kind = checks.choice(exporter, "exporter", EXPORTERS)
        kinds = () if kind == "none" else (kind,)
        return kinds, kinds
    default = "otlp" if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES) else "none"
    return (
        _exporter_variable("OTEL_TRACES_EXPORTER", EXPORTERS, default),
        _exporter_variable("OTEL_METRICS_EXPORTER", (*EXPORTERS, "prometheus"), default),
    )


def _exporter_variable(name: str, known: tuple[str, ...], default: str) -> tuple[str, ...]:
    entries = [entry.strip().lower() for entry in os.environ.get(name, "").split(",")]
    entries = [entry for entry in entries if entry] or [default]
    kinds: list[str] = []
    for entry in entries:
        if entry not in known:
            _logger.warning(
                "stepwatch: %s entry %r is not one of %s; skipping it", name, entry, known
            )
        elif entry != "none" and entry not in kinds:
            kinds.append(entry)
    return tuple(kinds)


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


def _prometheus_reader() -> MetricReader | None:
    """A Prometheus pull reader, served on ``OTEL_EXPORTER_PROMETHEUS_HOST:PORT``.

    Needs the ``prometheus`` extra (``opentelemetry-exporter-prometheus``).
    When it cannot start (the extra missing, the port busy, a bad port
    value) this logs a warning and returns ``None``: the other exporters and
    the Monitor carry on (telemetry must not stop the engine from starting).
    """
    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
    raw_port = os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
    try:
        port = int(raw_port)
        if not 0 <= port <= _MAX_PORT:
            raise ValueError("not a port number")
    except ValueError:
        _logger.warning(
            "stepwatch: OTEL_EXPORTER_PROMETHEUS_PORT=%r is not a port number; "
            "no Prometheus endpoint (the other exporters carry on)",
            raw_port,
        )
        return None
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
        from prometheus_client import start_http_server  # noqa: PLC0415
    except ImportError as exc:
        _logger.warning(
            "stepwatch: OTEL_METRICS_EXPORTER lists prometheus, but %s; install "
            "'stepwatch[prometheus]' (the other exporters carry on)",
            exc,
        )
        return None
    try:
        start_http_server(port=port, addr=host)
    except OSError as exc:
        _logger.warning(
            "stepwatch: cannot serve Prometheus metrics on %s:%s (%s); "
            "no Prometheus endpoint (the other exporters carry on)",
            host,
            port,
            exc,
        )
        return None
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

    Returns:
        The Monitor (installed when ``set_global``). Call ``shutdown()`` at
        exit to flush; providers built here are shut down with it.

    Raises:
        TypeError: an argument of the wrong type, named in the message.
        ValueError: an argument out of range (an unknown ``exporter``, an
            empty ``service_name``, a ``multiprocess_dir`` that cannot be
            created or written), named in the message. An unusable
            ``STEPWATCH_MULTIPROCESS_DIR`` only logs a warning: the Monitor
            then runs without a process group.

    .. versionadded:: 0.1.0
    """
    trace_kinds, metric_kinds = _choose_exporters(exporter)
    checks.name(service_name, "service_name", optional=True)
    if rules is not None:
        checks.instance(rules, "rules", Rules, "a stepwatch.Rules")
    if limits is not None:
        checks.instance(limits, "limits", Limits, "a stepwatch.Limits")
    checks.path(multiprocess_dir, "multiprocess_dir", optional=True)
    adopted_now = _adopted
    if adopted_now is not None and not adopted_now.closed:
        # StepwatchInstrumentor (opentelemetry-instrument) configured this process.
        return adopted_now
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
    # Providers set globally by the distro (or the application) are adopted,
    # and their exporters observed like the ones built here.
    adopted_tracer = adopted_meter = None
    if tracer_provider is None:
        tracer_provider = adopted_tracer = _global_sdk_tracer_provider()
    if meter_provider is None:
        meter_provider = adopted_meter = _global_sdk_meter_provider()
    # Checked before any exporter thread starts: nothing is left running when it raises.
    multiprocess_dir = _group_directory(multiprocess_dir)
    pipeline = Pipeline(
        resource=resource,
        status=ExportStatus(),
        span_exporters=[functools.partial(_span_exporter, kind) for kind in trace_kinds],
        metric_exporters=[
            functools.partial(_metric_exporter, kind)
            for kind in metric_kinds
            if kind != "prometheus"
        ],
        metric_readers=[_prometheus_reader] if "prometheus" in metric_kinds else [],
        build_tracer=tracer_provider is None and not disabled,
        build_meter=meter_provider is None and not disabled,
        export_timeout=_export_timeout(),
    )
    if not disabled:
        observe_exporters(adopted_tracer, adopted_meter, pipeline.status)
    try:
        monitor = Monitor(
            tracer_provider=tracer_provider or pipeline.tracer_provider,
            meter_provider=meter_provider or pipeline.meter_provider,
            rules=rules,
            limits=limits,
            pipeline=pipeline,
            multiprocess_dir=multiprocess_dir,
        )
    except BaseException:
        for provider in pipeline.owned:  # stop the exporter threads started above
            provider.shutdown()
        raise
    if set_global:
        if pipeline.tracer_provider is not None and isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider
        ):
            trace.set_tracer_provider(pipeline.tracer_provider)
        if pipeline.meter_provider is not None and global_meter_provider_unset():
            metrics.set_meter_provider(pipeline.meter_provider)
        monitor.install()
    _flush_at_multiprocessing_exit(monitor)
    atexit.register(_shutdown_at_exit, weakref.ref(monitor))
    return monitor


def _group_directory(
    given: str | os.PathLike[str] | None,
) -> str | os.PathLike[str] | None:
    """The process group directory to use: ``given``, else ``STEPWATCH_MULTIPROCESS_DIR``.

    Created when missing. A ``given`` directory that cannot be created or
    written raises ``ValueError`` (an argument is code); an unusable variable
    logs a warning and gives ``None`` (the Monitor runs without a group:
    telemetry must not stop the engine from starting).
    """
    if given is not None:
        problem = _unusable_directory(given)
        if problem is not None:
            raise ValueError(f"multiprocess_dir {os.fspath(given)!r} cannot be used: {problem}")
        return given
    raw = os.environ.get(ENVIRONMENT_VARIABLE)
    if not raw:
        return None
    problem = _unusable_directory(raw)
    if problem is not None:
        _logger.warning(
            "stepwatch: %s=%r cannot be used (%s); running without a process group",
            ENVIRONMENT_VARIABLE,
            raw,
            problem,
        )
        return None
    return raw


def _unusable_directory(directory: str | os.PathLike[str]) -> str | None:
    """Why ``directory`` cannot hold a process group (created when missing), or ``None``."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    if not path.is_dir():
        return "not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _shutdown_at_exit(monitor_ref: weakref.ref[Monitor]) -> None:
    """At interpreter exit: shut down within the export timeout, whatever the backend does.

    The providers ``configure()`` builds have no SDK exit hook of their own
    (which would wait on an export stuck on an unreachable backend and hold
    the process up); this one flushes until ``monitor.shutdown_timeout``
    (``OTEL_EXPORTER_OTLP_TIMEOUT``) and lets the process go.
    """
    monitor = monitor_ref()
    if monitor is not None:
        monitor.shutdown()


_adopted: Monitor | None = None


def adopt(monitor: Monitor | None) -> None:
    """Make ``monitor`` the one a later :func:`configure` returns (the instrumentor's)."""
    global _adopted  # noqa: PLW0603 - the process-wide auto-configured Monitor
    _adopted = monitor


def adopted() -> Monitor | None:
    """The Monitor :class:`~stepwatch.instrumentation.StepwatchInstrumentor` installed, if any."""
    return _adopted


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
