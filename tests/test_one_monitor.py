"""One Monitor per process: configure() keeps it until exit and returns it again; get_monitor().

Each case runs in a new process (the process's Monitor is process-wide state).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import ROOT, clean_environment


def _run(code: str, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(**env),
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    parsed["stderr"] = result.stderr
    return parsed


def test_configure_twice_returns_the_installed_monitor_and_warns_when_arguments_differ() -> None:
    probe = _run(
        """
        import json, warnings
        import stepwatch
        before = stepwatch.get_monitor()
        first = stepwatch.configure(service_name="one")
        with warnings.catch_warnings(record=True) as same:
            warnings.simplefilter("always")
            again = stepwatch.configure(service_name="one")
        with warnings.catch_warnings(record=True) as other:
            warnings.simplefilter("always")
            different = stepwatch.configure(service_name="two")
        found = stepwatch.get_monitor()
        first.shutdown()
        after_shutdown = stepwatch.get_monitor()
        fresh = stepwatch.configure(service_name="two")
        print(json.dumps({
            "before": before is None,
            "again": again is first, "same_warned": len(same),
            "different": different is first,
            "other_warned": [str(w.message) for w in other],
            "category": [w.category.__name__ for w in other],
            "found": found is first,
            "after_shutdown": after_shutdown is None,
            "fresh": fresh is not first and stepwatch.get_monitor() is fresh,
            "exported": "get_monitor" in stepwatch.__all__,
        }))
        """
    )
    assert probe["before"] is True
    assert (probe["again"], probe["same_warned"]) == (True, 0)
    assert probe["different"] is True
    assert probe["category"] == ["RuntimeWarning"]
    warned = probe["other_warned"]
    assert isinstance(warned, list) and "already called" in warned[0]
    assert probe["found"] is True
    assert probe["after_shutdown"] is True
    assert probe["fresh"] is True
    assert probe["exported"] is True


def test_a_dropped_monitor_stays_installed_and_flushes_at_exit() -> None:
    probe = _run(
        """
        import gc, json
        import stepwatch
        stepwatch.configure()
        gc.collect()
        monitor = stepwatch.get_monitor()
        with stepwatch.execution("kept", execution_id="k-1"):
            pass
        print(json.dumps({
            "kept": monitor is not None and monitor.installed,
            "seen": monitor is not None and monitor.progress("k-1") is not None,
        }))
        """
    )
    assert probe == {"kept": True, "seen": True, "stderr": ""}


def test_flush_timeout_from_the_argument_else_the_environment_else_one_second() -> None:
    code = """
        import json
        import stepwatch
        monitor = stepwatch.configure({args})
        print(json.dumps({{"timeout": monitor.flush_timeout}}))
        """
    assert _run(code.format(args=""))["timeout"] == 1.0
    assert _run(code.format(args=""), STEPWATCH_FLUSH_TIMEOUT="0.25")["timeout"] == 0.25
    assert (
        _run(code.format(args="flush_timeout=3"), STEPWATCH_FLUSH_TIMEOUT="0.25")["timeout"] == 3.0
    )
    invalid = _run(code.format(args=""), STEPWATCH_FLUSH_TIMEOUT="soon")
    assert invalid["timeout"] == 1.0
    assert "STEPWATCH_FLUSH_TIMEOUT" in str(invalid["stderr"])


def test_flush_timeout_out_of_range_is_a_value_error_naming_it() -> None:
    probe = _run(
        """
        import json
        import stepwatch
        errors = []
        for value in (0, -1, float("nan"), "1"):
            try:
                stepwatch.configure(flush_timeout=value)
            except (TypeError, ValueError) as exc:
                errors.append([type(exc).__name__, "flush_timeout" in str(exc)])
        print(json.dumps({"errors": errors, "monitor": stepwatch.get_monitor() is None}))
        """
    )
    assert probe["errors"] == [
        ["ValueError", True],
        ["ValueError", True],
        ["ValueError", True],
        ["TypeError", True],
    ]
    assert probe["monitor"] is True
