"""Live progress from the tracker, driven by a fake clock."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import stepwatch
from stepwatch.limits import Limits
from stepwatch.progress import DurationHistory, StepProfile, StepView, blend_eta, keep_steps
from stepwatch.semconv import Outcome
from stepwatch.testing import Harness, capture
from tests.helpers import run_ended_history


def test_mid_execution_progress(sw: Harness) -> None:
    with stepwatch.execution("etl", execution_id="e-1", total_steps=4) as ex:
        for name in ("extract", "clean"):
            with ex.step(name, step_type="compute"):
                sw.clock.advance(10)
        with ex.step("load", step_type="db"):
            progress = sw.monitor.progress("e-1")
            assert progress is not None
            assert progress.state == "executing"
            assert progress.total_steps == 4
            assert progress.completed_steps == 2
            assert progress.running_steps == 1
            assert progress.pending_steps == 1
            assert progress.percent == 50.0
            assert progress.current_step == "load"
            assert progress.started_at == pytest.approx(sw.clock() - 20)
            assert [s.state for s in progress.steps] == ["success", "success", "running"]
            assert progress.steps[0].duration == pytest.approx(10)
            sw.clock.advance(5)
    final = sw.monitor.progress("e-1")
    assert final is not None


def test_running_step_fraction_counts_toward_percent(sw: Harness) -> None:
    with stepwatch.execution("etl", execution_id="e-2", total_steps=2) as ex:
        with ex.step("one"):
            pass
        with ex.step("two") as st:
            st.progress(done=1, total=4, message="quarter")
            progress = sw.monitor.progress("e-2")
            assert progress is not None
            assert progress.percent == pytest.approx(62.5)
            assert progress.steps[-1].fraction == 0.25
            assert progress.steps[-1].message == "quarter"


def test_after_completion(sw: Harness) -> None:
    with stepwatch.execution("etl", execution_id="e-3", total_steps=3) as ex:
        for name in ("a", "b"):
            with ex.step(name):
                sw.clock.advance(1)
    progress = sw.monitor.progress("e-3")
    assert progress is not None
    assert progress.state == "success"
    assert progress.percent == 100.0
    assert progress.eta_seconds == 0.0
    assert progress.running_steps == 0


def test_after_failure_state_is_outcome(sw: Harness) -> None:
    def run() -> None:
        with stepwatch.execution("etl", execution_id="e-4", total_steps=2):
            with stepwatch.step("a"):
                pass
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        run()
    progress = sw.monitor.progress("e-4")
    assert progress is not None
    assert progress.state == "failure"
    assert progress.percent == 50.0
    assert progress.eta_seconds is None


def test_unknown_total(sw: Harness) -> None:
    with stepwatch.execution("open-ended", execution_id="u-1") as ex:
        with ex.step("s"):
            pass
        progress = sw.monitor.progress("u-1")
        assert progress is not None
        assert progress.total_steps is None
        assert progress.percent is None
        assert progress.pending_steps is None
        assert progress.completed_steps == 1
        ex.set_total_steps(4)
        progress = sw.monitor.progress("u-1")
        assert progress is not None
        assert progress.percent == 25.0


def test_pending_from_enqueue(sw: Harness) -> None:
    carrier = stepwatch.enqueue("queued-job", execution_id="q-1", queue="fast")
    progress = sw.monitor.progress("q-1")
    assert progress is not None
    assert progress.state == "pending"
    assert progress.started_at is None
    assert [p.execution_id for p in sw.monitor.active_executions()] == ["q-1"]
    sw.clock.advance(3)
    with stepwatch.execution("queued-job", carrier=carrier):
        progress = sw.monitor.progress("q-1")
        assert progress is not None
        assert progress.state == "executing"
        assert [p.state for p in sw.monitor.active_executions()] == ["executing"]
    assert sw.monitor.active_executions() == []


def test_unknown_execution() -> None:
    with capture() as sw:
        assert sw.monitor.progress("nope") is None


def test_eta_steady_pace_within_half_of_truth(sw: Harness) -> None:
    seconds_per_step = 7.0
    with stepwatch.execution("steady", execution_id="s-1", total_steps=6) as ex:
        for index in range(6):
            with ex.step(f"s{index}"):
                sw.clock.advance(seconds_per_step)
            if 1 <= index < 5:
                truth = seconds_per_step * (5 - index)
                eta = ex.progress().eta_seconds
                assert eta is not None
                assert abs(eta - truth) <= 0.5 * max(truth, 1e-9) + 1e-9
        # Every declared step done but the execution not returned yet: the end
        # is unknown, so no ETA (0 is only ever given after the success).
        assert ex.progress().eta_seconds is None
    assert ex.progress().eta_seconds == 0.0


def test_eta_from_history_of_same_name(sw: Harness) -> None:
    for run in range(3):
        with stepwatch.execution("nightly", execution_id=f"h-{run}"):
            sw.clock.advance(60)
    with stepwatch.execution("nightly", execution_id="h-now"):
        sw.clock.advance(20)
        progress = sw.monitor.progress("h-now")
        assert progress is not None
        assert progress.eta_seconds == pytest.approx(40)


def test_eta_none_without_information(sw: Harness) -> None:
    with stepwatch.execution("fresh", execution_id="n-1", total_steps=3) as ex:
        assert ex.progress().eta_seconds is None  # no step finished, no history
        with ex.step("running"):
            sw.clock.advance(5)
            assert ex.progress().eta_seconds is None
    with stepwatch.execution("fresh-unknown", execution_id="n-2") as ex, ex.step("x"):
        pass
    assert blend_eta(10, 0, None, None) is None


def test_blend_weights_history_early_and_pace_late() -> None:
    # history says 100 s total, the run's pace says 10 s per step.
    early = blend_eta(elapsed=10, finished=1, total=10, typical=100)
    late = blend_eta(elapsed=90, finished=9, total=10, typical=100)
    assert early == pytest.approx(0.1 * 90 + 0.9 * 90)
    assert late == pytest.approx(0.9 * 10 + 0.1 * 10)
    assert blend_eta(elapsed=150, finished=0, total=10, typical=100) is None


def test_to_dict_is_json_ready(sw: Harness) -> None:
    with stepwatch.execution("j", execution_id="j-1", total_steps=2) as ex, ex.step("s") as st:
        st.progress(0.5)
        progress = sw.monitor.progress("j-1")
    assert progress is not None
    encoded = progress.to_dict()
    assert json.loads(json.dumps(encoded)) == encoded
    assert encoded["started_at"] == "2023-11-14T22:13:20Z"
    assert encoded["steps"][0]["state"] == "running"
    assert encoded["steps"][0]["ended_at"] is None
    event = sw.events("step.progress")[0].to_dict()
    assert json.loads(json.dumps(event)) == event
    assert event["type"] == "step.progress"


def test_retention_bounds_memory() -> None:
    # Spans sampled out: this test is about the Monitor's memory, not span export.
    with capture(limits=Limits(max_finished=1_000, max_events=5_000), sampler=ALWAYS_OFF) as sw:
        for n in range(100_000):
            with (
                stepwatch.execution("bulk", execution_id=f"b-{n}", total_steps=1) as ex,
                ex.step("only"),
            ):
                pass
        sizes = sw.monitor.tracker.sizes()
        assert sizes["finished"] == 1_000
        assert sizes["running"] == 0
        assert len(sw.monitor.bus) == 5_000
        assert sw.monitor.progress("b-99999") is not None
        assert sw.monitor.progress("b-98999") is None


def test_retention_by_age(sw: Harness) -> None:
    with stepwatch.execution("old", execution_id="o-1"):
        pass
    stepwatch.enqueue("never-started", execution_id="p-1")
    sw.clock.advance(3601)
    with stepwatch.execution("new", execution_id="o-2"):
        pass
    assert sw.monitor.progress("o-1") is None
    assert sw.monitor.progress("p-1") is None
    assert sw.monitor.progress("o-2") is not None


def test_a_finished_execution_expires_on_time_with_nothing_else_happening(sw: Harness) -> None:
    with stepwatch.execution("old", execution_id="o-1"):
        pass
    stepwatch.enqueue("never-started", execution_id="p-1")
    sw.clock.advance(3599)
    assert sw.monitor.progress("o-1") is not None
    sw.clock.advance(2)
    assert sw.monitor.progress("o-1") is None
    assert sw.monitor.progress("p-1") is None


def test_sixteen_threads_thousand_executions_each() -> None:
    with capture(limits=Limits(max_finished=20_000, max_events=100_000)) as sw:
        _run_sixteen_threads(sw)


def _run_sixteen_threads(sw: Harness) -> None:
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        try:
            for n in range(1_000):
                with stepwatch.execution(
                    "threaded", execution_id=f"t{thread}-{n}", total_steps=2
                ) as ex:
                    with ex.step("a"):
                        pass
                    if n % 10 == 0:
                        with pytest.raises(ValueError, match="tenth"), ex.step("b"):
                            raise ValueError("tenth")
                    else:
                        with ex.step("b"):
                            pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive()
    assert errors == []
    for t in range(16):
        for n in range(1_000):
            progress = sw.monitor.progress(f"t{t}-{n}")
            assert progress is not None
            failed = 1 if n % 10 == 0 else 0
            assert (progress.completed_steps, progress.failed_steps) == (2 - failed, failed)
            assert progress.state == "success"
    seqs = [event.seq for event in sw.monitor.events()]
    # Per execution: started, 2 x (step started, step ended), completed.
    assert len(seqs) == 16 * 1_000 * 6
    assert all(a < b for a, b in itertools.pairwise(seqs))


def test_finished_execution_keeps_few_steps_failed_first(sw: Harness) -> None:
    with stepwatch.execution("big", execution_id="big-1", total_steps=300) as ex:
        for n in range(300):
            if n in (10, 150, 290):
                with pytest.raises(ValueError, match="bad"), ex.step(f"s{n}"):
                    raise ValueError("bad")
            else:
                with ex.step(f"s{n}"):
                    pass
        live = sw.monitor.progress("big-1")
        assert live is not None
        assert len(live.steps) == 256  # running: the most recent MAX_STEPS_KEPT
    final = sw.monitor.progress("big-1")
    assert final is not None
    assert (final.completed_steps, final.failed_steps) == (297, 3)  # counts stay exact
    names = [step.name for step in final.steps]
    assert len(names) == 8
    assert {"s150", "s290"} <= set(names)  # s10 had left the live window already
    assert names[-1] == "s299"


def test_active_executions_lists_running_first_then_the_oldest_pending(sw: Harness) -> None:
    stepwatch.enqueue("queued", execution_id="q-0")
    sw.clock.advance(1)
    with stepwatch.execution("a", execution_id="a-1"):
        sw.clock.advance(1)
        with stepwatch.execution("b", execution_id="b-2"):
            everything = sw.monitor.active_executions()
            assert [p.execution_id for p in everything] == ["a-1", "b-2", "q-0"]
            for limit in range(4):
                assert sw.monitor.active_executions(limit=limit) == everything[:limit]
            for index in range(200):  # a long queue never hides what runs
                stepwatch.enqueue("queued", execution_id=f"q-more-{index}")
            first = sw.monitor.active_executions(limit=100)
            assert [p.execution_id for p in first[:2]] == ["a-1", "b-2"]
            assert sw.monitor.active_executions(limit=0) == []
            with pytest.raises(ValueError, match="limit"):
                sw.monitor.active_executions(limit=-1)


@settings(max_examples=300)
@given(
    runs=st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), max_size=25),
    steps_kept=st.integers(min_value=1, max_value=8),
    keep=st.integers(min_value=0, max_value=10),
)
def test_an_ended_executions_listed_steps_are_found_without_reading_every_kept_step(
    runs: list[tuple[str, bool]], steps_kept: int, keep: int
) -> None:
    """``step_state(keep)`` lists what ``keep_steps`` picks from all kept steps (retries too)."""
    with (
        capture(limits=Limits(steps_kept=steps_kept)) as harness,
        stepwatch.execution("job") as ex,
    ):
        for name, fails in runs:
            with contextlib.suppress(RuntimeError), ex.step(name):
                harness.clock.advance(0.1)
                if fails:
                    raise RuntimeError(name)
        every = ex.step_state()
        listed = ex.step_state(keep)

    def failed(step: StepView) -> bool:
        return step.outcome is not Outcome.SUCCESS

    assert list(listed.steps) == keep_steps(every.steps, failed, keep)
    assert listed[:3] == every[:3] and listed.current == every.current


def test_a_step_still_running_when_its_execution_ends_counts_in_the_kept_progress(
    sw: Harness,
) -> None:
    running, release = threading.Event(), threading.Event()

    with stepwatch.execution("job", execution_id="early", total_steps=2) as ex:
        with ex.step("done"):
            pass

        def late() -> None:
            with ex.step("late") as step:
                step.progress(0.5)
                running.set()
                release.wait(30.0)

        thread = threading.Thread(target=late)
        thread.start()
        assert running.wait(30.0)
        ex.fail("gave up waiting")
    release.set()
    thread.join(30.0)  # the late step ends before anyone reads the execution's progress
    at_end = sw.monitor.progress("early")
    assert at_end is not None and at_end.state == "failure"
    assert (at_end.completed_steps, at_end.running_steps, at_end.percent) == (1, 1, 75.0)
    assert [(s.name, s.state) for s in at_end.steps] == [("done", "success"), ("late", "running")]


def _run_steps(
    sw: Harness,
    execution_id: str,
    durations: list[tuple[str, float]],
    sample_after: float | None = None,
) -> float | None:
    """Run ``durations`` as one "deploy" execution; the ETA ``sample_after`` seconds in."""
    eta: float | None = None
    started = sw.clock()
    with stepwatch.execution("deploy", execution_id=execution_id, total_steps=len(durations)) as ex:
        for name, seconds in durations:
            step_end = sw.clock() + seconds
            with ex.step(name):
                if sample_after is not None and sw.clock() <= started + sample_after < step_end:
                    sw.clock.advance(started + sample_after - sw.clock())
                    progress = sw.monitor.progress(execution_id)
                    assert progress is not None
                    eta = progress.eta_seconds
                sw.clock.advance(step_end - sw.clock())
    return eta


BACK_LOADED = [("fetch", 1.0), ("check", 1.0), ("plan", 1.0), ("apply", 37.0)]


@pytest.mark.parametrize(
    ("sample_after", "truth"),
    [(2.5, 37.5), (10.0, 30.0), (20.0, 20.0), (30.0, 10.0)],
)
def test_eta_learns_what_each_step_takes_from_ended_runs(
    sw: Harness, sample_after: float, truth: float
) -> None:
    for run in range(3):
        _run_steps(sw, f"learn-{run}", BACK_LOADED)
    eta = _run_steps(sw, "now", BACK_LOADED, sample_after)
    assert eta == pytest.approx(truth, rel=0.01)


def test_eta_before_any_learned_run_is_the_runs_own_pace(sw: Harness) -> None:
    eta = _run_steps(sw, "first", BACK_LOADED, sample_after=10.0)
    assert eta == pytest.approx(10.0 / 3)  # 3 steps done in 10 s, one step left


def test_eta_follows_a_run_slower_than_the_learned_ones(sw: Harness) -> None:
    for run in range(3):
        _run_steps(sw, f"learn-{run}", BACK_LOADED)
    slow = [(name, seconds * 2) for name, seconds in BACK_LOADED]
    eta = _run_steps(sw, "slow", slow, sample_after=60.0)  # 3/4 through a run twice as slow
    assert eta is not None
    assert abs(eta - 20.0) <= 0.25 * 20.0


def test_eta_counts_a_step_name_that_runs_several_times(sw: Harness) -> None:
    loop = [("poll", 2.0)] * 5 + [("store", 10.0)]
    for run in range(3):
        _run_steps(sw, f"learn-{run}", loop)
    eta = _run_steps(sw, "now", loop, sample_after=7.0)  # inside the fourth poll
    assert eta == pytest.approx(13.0, rel=0.01)


def test_eta_uses_the_fraction_a_running_step_reports(sw: Harness) -> None:
    for run in range(2):
        _run_steps(sw, f"learn-{run}", [("copy", 100.0)])
    with (
        stepwatch.execution("deploy", execution_id="now", total_steps=1) as ex,
        ex.step("copy") as st,
    ):
        sw.clock.advance(10.0)
        st.progress(0.5)  # half done in 10 s: twice as fast as the learned runs
        progress = sw.monitor.progress("now")
        assert progress is not None
        assert progress.eta_seconds is not None
        assert progress.eta_seconds < 0.75 * 50.0  # pace counts, not the learned 50 s alone


def test_step_profile_keeps_the_step_names_with_most_time() -> None:
    history = DurationHistory(Limits(history_steps=3))
    steps = [_Ended_step(f"s{index}", float(index)) for index in range(10)]
    history.learn("wide", 45.0, steps)
    profile = history.profile("wide")
    assert profile is not None
    assert sorted(profile) == ["s7", "s8", "s9"]
    assert profile["s9"] == StepProfile(seconds=9.0, occurrences=1.0)


def test_step_profile_is_not_learned_from_a_run_whose_steps_were_not_all_kept() -> None:
    with capture(limits=Limits(steps_kept=4)) as small:
        with stepwatch.execution("long", execution_id="l-1") as ex:
            for index in range(10):
                with ex.step(f"s{index}"):
                    small.clock.advance(1.0)
        assert small.monitor.history.typical("long") == pytest.approx(10.0)
        assert small.monitor.history.profile("long") is None


def test_step_profile_forgets_the_names_of_evicted_executions() -> None:
    history = DurationHistory(Limits(history_names=1))
    history.learn("a", 1.0, [_Ended_step("x", 1.0)])
    history.learn("b", 1.0, [_Ended_step("y", 1.0)])
    assert history.profile("a") is None
    assert history.profile("b") is not None


class _Ended_step:
    """A finished step as the profile reads it (name, start, end)."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.step_type: str | None = None
        self.attempt = 1
        self.outcome: Outcome | None = Outcome.SUCCESS
        self.started_at = 100.0
        self.ended_at: float | None = 100.0 + seconds
        self.fraction: float | None = None
        self.message: str | None = None
        self.reason: str | None = None


def test_the_handles_eta_learns_from_the_same_history_as_the_monitor(sw: Harness) -> None:
    for run in range(2):
        _run_steps(sw, f"learn-{run}", BACK_LOADED)
    with stepwatch.execution("deploy", execution_id="now", total_steps=4) as ex:
        sw.clock.advance(10.0)
        assert ex.progress().eta_seconds == pytest.approx(30.0)


def _sla_events(sw: Harness, execution_id: str) -> list[float]:
    return [
        event.timestamp
        for event in sw.monitor.events(execution_id=execution_id)
        if event.type is stepwatch.EventType.SLA_VIOLATED
    ]


def test_a_running_execution_past_its_sla_is_late_at_once(sw: Harness) -> None:
    with stepwatch.execution("deploy", execution_id="sla-1", sla=5.0) as ex:
        started = sw.clock()
        sw.clock.advance(3.0)
        early = ex.progress()
        assert early.sla_deadline == started + 5.0
        assert not early.late
        sw.clock.advance(3.0)
        assert ex.progress().late
        assert _sla_events(sw, "sla-1") == []  # announced when the Monitor evaluates
        sw.monitor.health(refresh=True)
        assert _sla_events(sw, "sla-1") == [started + 6.0]
        sw.clock.advance(10.0)
        sw.monitor.health(refresh=True)
    assert _sla_events(sw, "sla-1") == [started + 6.0]  # once, not again at the end
    ended = sw.monitor.progress("sla-1")
    assert ended is not None
    assert ended.late
    assert ended.sla_deadline == started + 5.0


def test_a_breach_nobody_evaluated_in_time_is_announced_at_the_end(sw: Harness) -> None:
    with stepwatch.execution("deploy", execution_id="sla-2", sla=5.0):
        sw.clock.advance(6.0)
    assert len(_sla_events(sw, "sla-2")) == 1
    with stepwatch.execution("deploy", execution_id="sla-3", sla=5.0):
        sw.clock.advance(4.0)
    within = sw.monitor.progress("sla-3")
    assert within is not None
    assert not within.late
    assert _sla_events(sw, "sla-3") == []


def test_an_execution_whose_eta_passes_its_deadline_is_at_risk(sw: Harness) -> None:
    for run in range(2):
        _run_steps(sw, f"learn-{run}", BACK_LOADED)  # 40 s each
    with stepwatch.execution("deploy", execution_id="risky", total_steps=4, sla=30.0) as ex:
        sw.clock.advance(5.0)
        risky = ex.progress()
        assert risky.at_risk  # 5 s in, about 35 s to go: ends at about 40 s, past 30
        assert not risky.late
    with stepwatch.execution("deploy", execution_id="safe", total_steps=4, sla=60.0) as ex:
        sw.clock.advance(5.0)
        assert not ex.progress().at_risk
    with stepwatch.execution("other", execution_id="no-sla") as ex:
        progress = ex.progress()
        assert progress.sla_deadline is None
        assert not progress.late
        assert not progress.at_risk


def test_current_step_is_a_step_still_running_when_a_parallel_one_ends(sw: Harness) -> None:
    with stepwatch.execution("fan-out", execution_id="par-1") as ex:
        first, second, third = ex.step("a"), ex.step("b"), ex.step("c")
        first.__enter__()
        second.__enter__()
        third.__enter__()
        third.__exit__(None, None, None)  # the newest ends: the newest still running is current
        assert ex.progress().current_step == "b"
        first.__exit__(None, None, None)  # an older one ends: current stays
        assert ex.progress().current_step == "b"
        second.__exit__(None, None, None)
        assert ex.progress().current_step is None


def test_executions_lists_running_pending_and_ended_runs_with_filters(sw: Harness) -> None:
    start = sw.clock()
    run_ended_history(sw.clock)
    stepwatch.enqueue("nightly", execution_id="n-queued")
    with stepwatch.execution("nightly", execution_id="n-running"):
        sw.clock.advance(5)
        monitor = sw.monitor
        every = [p.execution_id for p in monitor.executions()]
        assert every == ["n-running", "n-queued", "h-0", "n-2", "n-1", "n-0"]
        assert [p.execution_id for p in monitor.executions(workflow="nightly", limit=3)] == [
            "n-running",
            "n-queued",
            "n-2",
        ]
        assert [p.execution_id for p in monitor.executions(outcome="failure")] == ["n-1"]
        assert [p.execution_id for p in monitor.executions(state=["success", "pending"])] == [
            "n-queued",
            "h-0",
            "n-2",
            "n-0",
        ]
        ended_late = [p.execution_id for p in monitor.executions(since=start + 20)]
        assert ended_late == ["n-running", "n-queued", "h-0", "n-2", "n-1"]  # n-1 ended at +20
        began_early = monitor.executions(until=datetime.fromtimestamp(start + 10, UTC))
        assert [p.execution_id for p in began_early] == ["n-0"]
        with pytest.raises(ValueError, match="state"):
            monitor.executions(state="finished")
        with pytest.raises(TypeError, match="since"):
            monitor.executions(since="yesterday")  # type: ignore[arg-type]


def test_a_retried_step_is_listed_once_with_its_latest_attempt(sw: Harness) -> None:
    with stepwatch.execution("deploy", execution_id="r-1", total_steps=2) as ex:
        for _ in range(2):
            with contextlib.suppress(RuntimeError), ex.step("fetch"):
                raise RuntimeError("flaky")
        with ex.step("fetch"):
            pass
        for _ in range(2):  # a loop: the same name after a success is a new step
            with ex.step("poll"):
                pass
        progress = ex.progress()
    listed = [(s.name, s.state, s.attempt, s.attempts) for s in progress.steps]
    assert listed == [
        ("fetch", "success", 3, 3),
        ("poll", "success", 1, 1),
        ("poll", "success", 1, 1),
    ]
