"""Engines that fork workers after configure(): children export and monitor; the parent goes on."""

from __future__ import annotations

import json

from tests.helpers import run_engine
from tests.otlp_receivers import http_receiver


def test_forked_workers_export_and_monitor() -> None:
    with http_receiver() as (endpoint, received):
        result = run_engine(
            "tests.engines.fork_engine",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            # No flush call in the engine: multiprocessing's exit finalizers deliver.
            OTEL_BSP_SCHEDULE_DELAY="60000",
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["exit_codes"] == [0, 0, 0]
        for number, child in enumerate(report["children"]):
            assert child["number"] == number
            assert (child["state"], child["percent"]) == ("success", 100.0)
            assert child["health"] == "healthy"
            assert child["loop_running"] is True  # the evaluation loop restarted in the child
            # The parent's in-flight execution is not the child's to track.
            assert child["parent_executions_seen_running"] == []
        assert report["parent_after"] == "success"
        assert report["parent_total"] == 2  # the children's executions stay in the children
        assert report["parent_loop_running"] is True

        wanted = {f"child-{n}" for n in range(3)} | {"parent-during", "parent-after"}
        assert received.wait_for(
            lambda r: wanted <= {str(s.attributes.get("workflow.execution.id")) for s in r.spans}
        )
        children = [s for s in received.spans if s.name == "execution child-job"]
        assert all(s.resource["service.name"] == "fork-engine" for s in children)
        assert received.wait_for(
            lambda r: any(m.name == "workflow.execution.duration" for m in r.metrics)
        )
