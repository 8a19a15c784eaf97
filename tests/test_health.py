"""Rules, alerts, component checks, health status and the evaluation loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

import stepwatch
from stepwatch import HealthStatus, Rules, Severity
from stepwatch.health import ComponentHealth, alert_id
from stepwatch.testing import Harness, capture

WAIT = 30.0


@pytest.fixture
def strict() -> Iterator[Harness]:
    """A Monitor with small thresholds, easy to trip."""
    with capture(rules=Rules(min_executions=10, queue_depth=5, stuck_after=600)) as harness:
        yield harness


def _runs(n: int, *, fail: int = 0, timeout: int = 0, name: str = "job") -> None:
    for i in range(n):
        try:
            with stepwatch.execution(name, sla=5.0):
                if i < fail:
                    raise RuntimeError("boom")
                if i < fail + timeout:
                    raise TimeoutError
        except (RuntimeError, TimeoutError):
            pass


def _rules_firing(h: Harness) -> set[str]:
    return {a.rule for a in h.monitor.health(refresh=True).alerts}


def test_healthy_run_fires_nothing(strict: Harness) -> None:
    _runs(50, fail=2)
    health = strict.monitor.health(refresh=True)
    assert health.status is HealthStatus.HEALTHY
    assert health.alerts == []
    assert strict.monitor.alerts() == []


def test_high_failure_rate_is_critical(strict: Harness) -> None:
    _runs(20, fail=8)
    health = strict.monitor.health(refresh=True)
    (alert,) = health.alerts
    assert alert.rule == "HighFailureRate"
    assert alert.severity is Severity.CRITICAL
    assert alert.labels == {"name": "job"}
    assert alert.value == pytest.approx(0.4)
    assert alert.threshold == 0.2
    assert health.status is HealthStatus.UNHEALTHY


def test_high_timeout_rate_is_warning(strict: Harness) -> None:
    _runs(20, timeout=4)
    health = strict.monitor.health(refresh=True)
    assert [a.rule for a in health.alerts] == ["HighTimeoutRate"]
    assert health.status is HealthStatus.DEGRADED


def test_below_min_executions_nothing_fires(strict: Harness) -> None:
    _runs(9, fail=9)
    assert _rules_firing(strict) == set()


def test_alert_resolves_when_failures_leave_the_window(strict: Harness) -> None:
    _runs(20, fail=10)
    fired = strict.monitor.health(refresh=True).alerts
    assert [a.rule for a in fired] == ["HighFailureRate"]
    strict.clock.advance(200)
    _runs(20)
    strict.monitor.health(refresh=True)  # 10 of 40 still failed: still firing
    assert [a.state.value for a in strict.monitor.alerts(active=True)] == ["firing"]
    strict.clock.advance(150)  # the failures are now older than the 300 s window
    health = strict.monitor.health(refresh=True)
    assert health.alerts == []
    assert health.status is HealthStatus.HEALTHY
    (resolved,) = strict.monitor.alerts(active=False)
    assert resolved.id == fired[0].id
    assert resolved.resolved_at == strict.clock()
    assert [
        e.type.value for e in strict.events() if e.type.value.startswith(("alert", "health"))
    ] == [
        "alert.fired",
        "health.changed",
        "alert.resolved",
        "health.changed",
    ]


def test_reevaluating_does_not_duplicate(strict: Harness) -> None:
    _runs(20, fail=10)
    for _ in range(3):
        strict.monitor.health(refresh=True)
    assert len(strict.monitor.alerts()) == 1
    assert len(strict.events("alert.fired")) == 1
    assert strict.monitor.alerts()[0].id == alert_id("HighFailureRate", {"name": "job"})


def test_for_seconds_delays_firing() -> None:
    with capture(rules=Rules(min_executions=10, for_seconds=60)) as sw:
        _runs(20, fail=10)
        assert _rules_firing(sw) == set()
        sw.clock.advance(30)
        assert _rules_firing(sw) == set()
        sw.clock.advance(31)
        assert _rules_firing(sw) == {"HighFailureRate"}


def test_for_seconds_restarts_when_condition_clears() -> None:
    with capture(rules=Rules(min_executions=10, for_seconds=60, window=60)) as sw:
        _runs(20, fail=10)
        assert _rules_firing(sw) == set()
        sw.clock.advance(71)  # past the 60 s window and its 10 s slot: condition cleared
        assert _rules_firing(sw) == set()
        _runs(20, fail=10)
        assert _rules_firing(sw) == set()  # pending again from now, not from before


def test_queue_backlog(strict: Harness) -> None:
    for n in range(6):
        stepwatch.enqueue("job", execution_id=f"q{n}")
    health = strict.monitor.health(refresh=True)
    assert [(a.rule, a.severity, a.value) for a in health.alerts] == [
        ("QueueBacklog", Severity.WARNING, 6)
    ]


def test_queue_backlog_from_observed_depth(strict: Harness) -> None:
    depth = {"value": 3}
    strict.monitor.observe_queue_depth(lambda: depth["value"])
    assert _rules_firing(strict) == set()
    depth["value"] = 500
    assert _rules_firing(strict) == {"QueueBacklog"}


@pytest.mark.internal_errors
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -3.0])
def test_a_queue_depth_that_is_no_count_is_left_out_and_summary_answers(
    strict: Harness, bad: float
) -> None:
    strict.monitor.observe_queue_depth(lambda: bad, queue="broken")
    strict.monitor.observe_queue_depth(lambda: 4, queue="fine")
    assert strict.monitor.summary().queue_depth == 4
    assert strict.monitor.health(refresh=True) is not None
    assert stepwatch.testing.internal_errors().get("monitor.queue_depth.invalid", 0) >= 1


def test_a_wall_clock_stepped_back_never_makes_a_stale_evaluation_fresh(strict: Harness) -> None:
    healthy = {"db": True}
    monitor = strict.monitor
    monitor.add_check("db", lambda: healthy["db"], critical=True)
    interval = monitor.evaluation_interval
    assert monitor.health(max_age=interval).status is HealthStatus.HEALTHY
    strict.clock.set(strict.clock() - 3_600.0)  # the wall clock steps back an hour
    healthy["db"] = False
    strict.clock.advance(interval)  # time goes on: the cached evaluation is stale
    assert monitor.health(max_age=interval).status is HealthStatus.UNHEALTHY


def test_stuck_executions(strict: Harness) -> None:
    with stepwatch.execution("long", execution_id="stuck-1"):
        strict.clock.advance(601)
        health = strict.monitor.health(refresh=True)
        (alert,) = health.alerts
        assert alert.rule == "StuckExecutions"
        assert "long/stuck-1" in alert.message
    assert _rules_firing(strict) == set()


def test_an_execution_that_keeps_moving_is_not_stuck_however_long_it_runs(
    strict: Harness,
) -> None:
    with stepwatch.execution("long", execution_id="moving-1") as ex:
        for index in range(12):  # two hours, a step every ten minutes
            with ex.step(f"s{index}"):
                strict.clock.advance(300)
            strict.clock.advance(300)
            assert _rules_firing(strict) == set()
        for _ in range(3):  # then only heartbeats
            strict.clock.advance(500)
            ex.heartbeat()
            assert _rules_firing(strict) == set()
        progress = strict.monitor.progress("moving-1")
        assert progress is not None
        assert progress.last_progress_at == strict.clock()
        strict.clock.advance(601)
        assert _rules_firing(strict) == {"StuckExecutions"}


def test_a_short_run_that_stopped_moving_is_stuck(strict: Harness) -> None:
    with stepwatch.execution("short", execution_id="hung-1") as ex:
        with ex.step("fetch"):
            strict.clock.advance(1)
        strict.clock.advance(601)  # ran 602 s in all, 601 of them without a sign of life
        (alert,) = strict.monitor.health(refresh=True).alerts
        assert alert.rule == "StuckExecutions"
        assert "no progress for 600 s" in alert.message


def test_sla_burn_rate_fast_and_slow() -> None:
    with capture(rules=Rules(min_executions=10, sla_objective=0.99)) as sw:
        for i in range(40):
            with stepwatch.execution("slo", sla=1.0):
                sw.clock.advance(2.0 if i % 4 == 0 else 0.1)  # 25% violate: burn 25x
        firing = {
            (a.rule, a.labels["burn"], a.severity) for a in sw.monitor.health(refresh=True).alerts
        }
        assert firing == {
            ("SLABurnRate", "fast", Severity.CRITICAL),
            ("SLABurnRate", "slow", Severity.WARNING),
        }


def test_sla_burn_rate_quiet_within_budget() -> None:
    with capture(rules=Rules(min_executions=10, sla_objective=0.9)) as sw:
        for i in range(40):
            with stepwatch.execution("slo", sla=1.0):
                sw.clock.advance(2.0 if i == 0 else 0.1)  # 2.5% violate, budget 10%
        assert _rules_firing(sw) == set()


def test_default_sla_from_rules() -> None:
    with capture(rules=Rules(sla=1.0)) as sw:
        with stepwatch.execution("implicit"):
            sw.clock.advance(2)
        assert sw.monitor.summary().sla.violations == 1


def test_component_down_critical_and_not(strict: Harness) -> None:
    strict.monitor.add_check("db", lambda: False, critical=True)
    strict.monitor.add_check("cache", lambda: False, critical=False)
    health = strict.monitor.health(refresh=True)
    by_component = {a.labels["component"]: a.severity for a in health.alerts}
    assert by_component == {"db": Severity.CRITICAL, "cache": Severity.WARNING}
    assert health.status is HealthStatus.UNHEALTHY
    assert {c.name: c.status for c in health.components} == {
        "db": HealthStatus.UNHEALTHY,
        "cache": HealthStatus.UNHEALTHY,
    }


def test_non_critical_component_only_degrades(strict: Harness) -> None:
    strict.monitor.add_check("cache", lambda: False, critical=False)
    assert strict.monitor.health(refresh=True).status is HealthStatus.DEGRADED


def test_async_check_and_component_health_result(strict: Harness) -> None:
    async def ping() -> bool:
        await asyncio.sleep(0)
        return True

    def detailed() -> ComponentHealth:
        return ComponentHealth(name="ignored", status=HealthStatus.DEGRADED, message="slow")

    strict.monitor.add_check("async", ping)
    strict.monitor.add_check("detailed", detailed, critical=False)
    health = strict.monitor.health(refresh=True)
    by_name = {c.name: c for c in health.components}
    assert by_name["async"].status is HealthStatus.HEALTHY
    assert by_name["detailed"].status is HealthStatus.DEGRADED
    assert by_name["detailed"].message == "slow"
    assert health.status is HealthStatus.DEGRADED


def test_a_check_duration_is_measured_whatever_the_check_returns_or_raises(
    strict: Harness,
) -> None:
    def timed(
        result: Callable[[], bool | ComponentHealth],
    ) -> Callable[[], bool | ComponentHealth]:
        def check() -> bool | ComponentHealth:
            strict.clock.advance(0.25)  # the check takes a quarter of a second
            return result()

        return check

    def raises() -> bool:
        raise ConnectionError("refused")

    strict.monitor.add_check("plain", timed(lambda: True))
    strict.monitor.add_check(
        "detailed", timed(lambda: ComponentHealth(name="x", status=HealthStatus.DEGRADED))
    )
    strict.monitor.add_check("raising", timed(raises))
    components = strict.monitor.health(refresh=True).components
    assert sorted(c.name for c in components) == ["detailed", "plain", "raising"]
    for component in components:  # the three run at once: each sees the others' time too
        assert component.duration is not None
        assert 0.25 <= component.duration <= 0.75


def test_raising_check_is_a_failure(strict: Harness) -> None:
    def broken() -> bool:
        raise ConnectionError("refused")

    strict.monitor.add_check("broker", broken)
    (component,) = strict.monitor.health(refresh=True).components
    assert component.status is HealthStatus.UNHEALTHY
    assert component.message == "ConnectionError: refused"


def test_hanging_check_times_out_and_health_returns(strict: Harness) -> None:
    release = threading.Event()
    calls: list[int] = []

    def hangs() -> bool:
        calls.append(1)
        release.wait(WAIT)
        return True

    strict.monitor.add_check("hung", hangs, timeout=0.2)
    try:
        health = strict.monitor.health(refresh=True)
        (component,) = health.components
        assert component.status is HealthStatus.UNHEALTHY
        assert component.message == "timed out after 0.2 s"
        assert health.status is HealthStatus.UNHEALTHY
        strict.monitor.health(refresh=True)
        assert calls == [1]  # a hung check is not started again while it hangs
    finally:
        release.set()


def test_telemetry_export_failing(strict: Harness) -> None:
    strict.monitor.export_status.record(True)
    assert _rules_firing(strict) == set()
    strict.monitor.export_status.record(False, "connection refused")
    (alert,) = strict.monitor.health(refresh=True).alerts
    assert alert.rule == "TelemetryExportFailing"
    assert "connection refused" in alert.message
    strict.monitor.export_status.record(True)
    assert _rules_firing(strict) == set()


@pytest.mark.internal_errors  # a dead backend: shutdown may give up (counted)
def test_configure_sees_its_own_exporters_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monitor = stepwatch.configure(service_name="outage", set_global=False)
    try:
        monitor.install()
        with stepwatch.execution("exported"):
            pass
        flush = getattr(monitor.tracer_provider, "force_flush", None)
        assert flush is not None
        flush()
        assert monitor.export_status.failures >= 1
        rules = {a.rule for a in monitor.health(refresh=True).alerts}
        assert rules == {"TelemetryExportFailing"}
    finally:
        monitor.shutdown()


def test_health_is_cached_until_refreshed(strict: Harness) -> None:
    first = strict.monitor.health()
    _runs(20, fail=10)
    assert strict.monitor.health() is first
    assert strict.monitor.health(refresh=True).status is HealthStatus.UNHEALTHY


def test_alert_queries(strict: Harness) -> None:
    _runs(20, fail=10)
    strict.monitor.add_check("cache", lambda: False, critical=False)
    strict.monitor.health(refresh=True)
    assert {a.rule for a in strict.monitor.alerts(severity="critical")} == {"HighFailureRate"}
    assert {a.rule for a in strict.monitor.alerts(severity=Severity.WARNING)} == {"ComponentDown"}
    assert len(strict.monitor.alerts(limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        strict.monitor.alerts(limit=-1)
    with pytest.raises(ValueError, match="loud"):
        strict.monitor.alerts(severity="loud")
    assert strict.monitor.alerts()[0].to_dict()["state"] == "firing"


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"failure_rate": 0}, ValueError, "failure_rate"),
        ({"failure_rate": 1.5}, ValueError, "failure_rate"),
        ({"timeout_rate": -0.1}, ValueError, "timeout_rate"),
        ({"timeout_rate": "high"}, TypeError, "timeout_rate"),
        ({"window": 0}, ValueError, "window"),
        ({"window": 5}, ValueError, "window"),
        ({"stuck_after": -1}, ValueError, "stuck_after"),
        ({"min_executions": 0}, ValueError, "min_executions"),
        ({"min_executions": 2.5}, TypeError, "min_executions"),
        ({"queue_depth": 0}, ValueError, "queue_depth"),
        ({"sla": 0}, ValueError, "sla"),
        ({"sla_objective": 1.0}, ValueError, "sla_objective"),
        ({"for_seconds": -1}, ValueError, "for_seconds"),
    ],
)
def test_rules_validation(kwargs: dict[str, object], error: type[Exception], argument: str) -> None:
    with pytest.raises(error, match=argument):
        Rules(**kwargs)  # type: ignore[arg-type]


def test_add_check_validation(sw: Harness) -> None:
    with pytest.raises(ValueError, match="name"):
        sw.monitor.add_check("", lambda: True)
    with pytest.raises(TypeError, match="check"):
        sw.monitor.add_check("x", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        sw.monitor.add_check("x", lambda: True, timeout=0)


def test_monitor_rejects_non_rules(sw: Harness) -> None:
    with pytest.raises(TypeError, match="rules"):
        stepwatch.Monitor(rules={"window": 60})  # type: ignore[arg-type]


def test_background_loop_evaluates_and_stops(sw: Harness) -> None:
    evaluated = threading.Event()

    def check() -> bool:
        evaluated.set()
        return True

    sw.monitor.add_check("probe", check)
    sw.monitor.start(interval=0.05)
    assert sw.monitor.running
    assert evaluated.wait(WAIT)
    sw.monitor.stop()
    running: bool = sw.monitor.running
    assert not running
    with pytest.raises(ValueError, match="interval"):
        sw.monitor.start(interval=0)


@pytest.mark.internal_errors
def test_background_loop_survives_its_own_errors(sw: Harness) -> None:
    ticks = threading.Semaphore(0)
    calls = {"n": 0}

    def check() -> bool:
        calls["n"] += 1
        ticks.release()
        return True

    sw.monitor.add_check("probe", check)
    refresh = sw.monitor.reader.refresh
    refreshes = {"n": 0}

    def explode() -> None:  # every other evaluation fails before its checks run
        refreshes["n"] += 1
        refresh()
        if refreshes["n"] % 2 == 0:
            raise RuntimeError("a bug in the evaluation")

    sw.monitor.reader.refresh = explode  # type: ignore[method-assign]
    sw.monitor.start(interval=0.01)
    for _ in range(3):
        assert ticks.acquire(timeout=WAIT)
    assert sw.monitor.running
    sw.monitor.stop()


@pytest.mark.asyncio
async def test_ahealth_keeps_the_event_loop_serving_while_checks_run(strict: Harness) -> None:
    released = threading.Event()

    def waits_for_the_loop() -> bool:
        return released.wait(WAIT)  # released by a coroutine on the awaiting loop

    async def release() -> None:
        released.set()

    strict.monitor.add_check("needs-the-loop", waits_for_the_loop, timeout=WAIT)
    health, _ = await asyncio.gather(strict.monitor.ahealth(refresh=True), release())
    (component,) = health.components
    assert component.status is HealthStatus.HEALTHY


@pytest.mark.internal_errors
def test_stepwatchs_own_contained_failures_show_in_health(strict: Harness) -> None:
    assert strict.monitor.health(refresh=True).status is HealthStatus.HEALTHY
    with stepwatch.execution("job") as ex:
        ex.set_total_steps(-1)  # refused: logged once, counted, never raised
    health = strict.monitor.health(refresh=True)
    (own,) = health.components
    assert own.name == "stepwatch"
    assert own.status is HealthStatus.DEGRADED
    assert own.message is not None and own.message.startswith("1 internal errors")
    assert health.status is HealthStatus.DEGRADED
    assert strict.monitor.health(refresh=True).components == []  # nothing new since


def _alert_events(h: Harness, kind: stepwatch.EventType) -> int:
    return len(h.monitor.events(event_type=kind))


def test_a_flapping_condition_is_damped_by_fire_after_and_resolve_after() -> None:
    rules = Rules(queue_depth=5, fire_after=2, resolve_after=3)
    depth = {"value": 0.0}
    with capture(rules=rules) as sw:
        sw.monitor.observe_queue_depth(lambda: depth["value"])
        seen = []
        for value in (500, 500, 0, 500, 0, 500, 0, 500, 0, 0, 0):
            depth["value"] = value
            seen.append("QueueBacklog" in _rules_firing(sw))
            sw.clock.advance(10)
        assert seen == [False] + [True] * 9 + [False]
        assert _alert_events(sw, stepwatch.EventType.ALERT_FIRED) == 1
        assert _alert_events(sw, stepwatch.EventType.ALERT_RESOLVED) == 1


def test_without_damping_each_flap_fires_again() -> None:
    depth = {"value": 0.0}
    with capture(rules=Rules(queue_depth=5)) as sw:
        sw.monitor.observe_queue_depth(lambda: depth["value"])
        for value in (500, 0, 500, 0, 500, 0):
            depth["value"] = value
            _rules_firing(sw)
        assert _alert_events(sw, stepwatch.EventType.ALERT_FIRED) == 3


def test_a_silenced_rule_is_evaluated_but_not_reported_until_the_silence_ends(
    strict: Harness,
) -> None:
    depth = {"value": 500.0}
    strict.monitor.observe_queue_depth(lambda: depth["value"])
    ends = strict.monitor.silence("QueueBacklog", 60)
    assert ends == strict.clock() + 60
    health = strict.monitor.health(refresh=True)
    assert health.alerts == []
    assert health.status is HealthStatus.HEALTHY
    assert strict.monitor.alerts() == []
    assert _alert_events(strict, stepwatch.EventType.ALERT_FIRED) == 0
    strict.clock.advance(61)
    assert _rules_firing(strict) == {"QueueBacklog"}
    assert _alert_events(strict, stepwatch.EventType.ALERT_FIRED) == 1
    strict.monitor.silence("QueueBacklog", 60)
    assert _rules_firing(strict) == set()
    strict.monitor.silence("QueueBacklog", 0)  # lifted
    assert _rules_firing(strict) == {"QueueBacklog"}
    assert _alert_events(strict, stepwatch.EventType.ALERT_FIRED) == 1  # never resolved


@pytest.mark.parametrize(
    ("rule", "seconds", "error"),
    [("NoSuchRule", 60, ValueError), ("QueueBacklog", -1, ValueError), (3, 60, TypeError)],
)
def test_silence_rejects_what_it_cannot_silence(
    sw: Harness, rule: object, seconds: float, error: type[Exception]
) -> None:
    with pytest.raises(error, match="rule" if rule != "QueueBacklog" else "for_seconds"):
        sw.monitor.silence(rule, seconds)  # type: ignore[arg-type]


def test_a_wall_clock_stepped_back_never_lengthens_a_silence(strict: Harness) -> None:
    strict.monitor.observe_queue_depth(lambda: 500.0)
    strict.monitor.silence("QueueBacklog", 60)
    strict.clock.set(strict.clock() - 3600)  # the wall clock steps back an hour
    assert _rules_firing(strict) == set()
    strict.clock.advance(61)
    assert _rules_firing(strict) == {"QueueBacklog"}
