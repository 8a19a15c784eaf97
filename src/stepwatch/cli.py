"""The ``stepwatch`` command: demo, top, health and rules.

Usage::

    stepwatch demo [--executions N] [--concurrency K] [--failure-rate P] [--serve PORT]
    stepwatch top URL [--token T] [--interval S] [--once]
    stepwatch health URL [--token T]          # exit 0 pass, 1 warn, 2 fail, 3 unreachable
    stepwatch rules [--config FILE]           # Prometheus alerting rules (YAML)

``demo`` and ``top`` draw with ``rich`` (``pip install 'stepwatch[cli]'``);
``health`` and ``rules`` need nothing beyond stepwatch itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stepwatch.semconv import EXECUTION_ENDED_TYPES, ExecutionEndedData
from stepwatch.version import __version__

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from stepwatch.monitor import Monitor

__all__ = ["build_parser", "main"]

EXIT_PASS, EXIT_WARN, EXIT_FAIL, EXIT_UNREACHABLE = 0, 1, 2, 3
_HEALTH_EXIT = {"pass": EXIT_PASS, "warn": EXIT_WARN, "fail": EXIT_FAIL}
_MISSING_RICH = (
    "stepwatch {command} draws with 'rich', which is not installed.\n"
    "Install the CLI extra: pip install 'stepwatch[cli]'"
)
_STATUS_STYLE = {
    "pass": "bold green",
    "healthy": "bold green",
    "warn": "bold yellow",
    "degraded": "bold yellow",
    "fail": "bold red",
    "unhealthy": "bold red",
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stepwatch`` command."""
    parser = argparse.ArgumentParser(
        prog="stepwatch",
        description="OpenTelemetry instrumentation for workflow engines.",
    )
    parser.add_argument("--version", action="version", version=f"stepwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a sample engine with live progress")
    demo.add_argument("--executions", type=_positive_int, default=24)
    demo.add_argument("--concurrency", type=_positive_int, default=4)
    demo.add_argument("--failure-rate", type=_ratio, default=0.15)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--speed", type=_seconds, default=1.0, help="multiplier on every delay")
    demo.add_argument("--serve", type=int, metavar="PORT", help="serve the HTTP API on PORT")

    top = commands.add_parser(
        "top", help="live view of a served Monitor, or of a process group's directory"
    )
    top.add_argument("url", nargs="?", help="a served Monitor's base URL")
    top.add_argument(
        "--dir",
        type=Path,
        help="read a process group's directory instead (no process needs to serve HTTP)",
    )
    top.add_argument("--token")
    top.add_argument("--interval", type=_seconds, default=1.0)
    top.add_argument("--once", action="store_true", help="render once and exit")

    health = commands.add_parser("health", help="print a served Monitor's health")
    health.add_argument("url")
    health.add_argument("--token")
    health.add_argument("--timeout", type=_seconds, default=5.0)

    rules = commands.add_parser("rules", help="print the rules as Prometheus alerting rules")
    rules.add_argument("--config", type=Path, help="TOML or JSON file of Rules fields")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``stepwatch`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    command: str = args.command
    if command == "rules":
        return _rules(args)
    if command == "health":
        return _health(args)
    try:
        import rich  # noqa: F401, PLC0415 - only demo and top need it
    except ImportError:
        print(_MISSING_RICH.format(command=command), file=sys.stderr)
        return 2
    if command == "demo":
        return _demo(args)
    return _top(args)


# ------------------------------------------------------------------- rules
def _rules(args: argparse.Namespace) -> int:
    from stepwatch.health import Rules  # noqa: PLC0415 - keep `stepwatch --help` light
    from stepwatch.prometheus import rules_yaml  # noqa: PLC0415

    fields: dict[str, Any] = {}
    if args.config is not None:
        text = args.config.read_text()
        try:
            fields = json.loads(text) if args.config.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            print(f"stepwatch rules: cannot parse {args.config}: {exc}", file=sys.stderr)
            return 2
        fields = fields.get("rules", fields)
    try:
        rules = Rules(**fields)
    except (TypeError, ValueError) as exc:
        print(f"stepwatch rules: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(rules_yaml(rules))
    return 0


# ------------------------------------------------------------------ health
def _get(url: str, token: str | None, timeout: float) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, None


def _health(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/healthz"
    try:
        status, body = _get(url, args.token, args.timeout)
    except (OSError, ValueError) as exc:
        print(f"unreachable: {url}: {exc}")
        return EXIT_UNREACHABLE
    if status == 401:
        print(f"unauthorised: {url} needs a valid --token")
        return EXIT_UNREACHABLE
    if not isinstance(body, dict) or body.get("status") not in _HEALTH_EXIT:
        print(f"unexpected answer from {url}: HTTP {status}")
        return EXIT_UNREACHABLE
    verdict = str(body["status"])
    print(verdict)
    for key, entries in sorted(body.get("checks", {}).items()):
        for entry in entries:
            print(f"  {entry.get('status', '?'):<4} {key}: {entry.get('output', '')}")
    return _HEALTH_EXIT[verdict]


# -------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415

    import stepwatch  # noqa: PLC0415
    from stepwatch._demo import DemoConfig  # noqa: PLC0415

    console = Console()
    config = DemoConfig(
        executions=args.executions,
        concurrency=args.concurrency,
        failure_rate=args.failure_rate,
        seed=args.seed,
        speed=args.speed,
    )
    monitor = stepwatch.configure(
        service_name="stepwatch-demo",
        rules=stepwatch.Rules(min_executions=5, window=300),
    )
    handle = None
    if args.serve is not None:
        handle = monitor.serve(port=args.serve)
        console.print(f"serving the Monitor at [bold]{handle.url}[/] (try /healthz, /events)")
    try:
        asyncio.run(_demo_run(monitor, config, console))
        _demo_report(monitor, console)
    finally:
        if handle is not None:
            handle.close()
        monitor.shutdown()
    return 0


async def _demo_run(monitor: Monitor, config: Any, console: Console) -> None:
    from stepwatch._demo import run_engine  # noqa: PLC0415

    engine = asyncio.create_task(run_engine(config))
    if console.is_terminal:
        await _demo_live(monitor, config.executions, engine, console)
    else:
        await _demo_lines(monitor, engine, console)
    await engine


async def _demo_lines(monitor: Monitor, engine: asyncio.Task[Any], console: Console) -> None:
    seen = 0
    while True:
        for event in monitor.events(since=seen):
            seen = event.seq
            if event.type in EXECUTION_ENDED_TYPES:
                data = cast(ExecutionEndedData, event.data)
                console.print(
                    f"{event.execution_id} {data['outcome']} in {data['duration']:.2f} s"
                    f" ({data['completed_steps']} steps done)",
                    highlight=False,
                )
        if engine.done():
            return
        await asyncio.sleep(0.1)


async def _demo_live(
    monitor: Monitor, total: int, engine: asyncio.Task[Any], console: Console
) -> None:
    from rich.live import Live  # noqa: PLC0415

    with Live(console=console, refresh_per_second=8, transient=False) as live:
        while True:
            live.update(_demo_view(monitor, total))
            if engine.done():
                return
            await asyncio.sleep(0.12)


def _bar(percent: float | None, width: int = 24) -> str:
    """A progress bar that reads in plain text too (no colour needed)."""
    if percent is None:
        return "[dim]" + "·" * width + "[/]"
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return "[green]" + "█" * filled + "[/][dim]" + "░" * (width - filled) + "[/]"


def _demo_view(monitor: Monitor, total: int) -> RenderableType:
    from rich.console import Group  # noqa: PLC0415

    active = monitor.active_executions()
    ended = sum(len(monitor.events(event_type=kind)) for kind in EXECUTION_ENDED_TYPES)
    running = [p for p in active if p.state != "pending"]
    queued = len(active) - len(running)
    table = _executions_table([p.to_dict() for p in running[:12]])
    overall = 100 * ended / total if total else 100.0
    header = f"[bold]overall[/] {_bar(overall, 40)} {ended}/{total} executions ended"
    return Group(header, table, f"[dim]{queued} queued[/]")


def _demo_report(monitor: Monitor, console: Console) -> None:
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    summary = monitor.summary()
    table = Table(title="stepwatch summary", title_justify="left", show_header=True)
    for column in ("what", "count", "rate", "p50 s", "p95 s", "max s"):
        table.add_column(column, justify="right" if column != "what" else "left")

    def stats_row(label: str, count: int, rate: float | None, stats: Any) -> None:
        def cell(value: float | None) -> str:
            return "" if value is None else f"{value:.3f}"

        table.add_row(
            label,
            str(count),
            "" if rate is None else f"{rate:.0%}",
            cell(stats.p50),
            cell(stats.p95),
            cell(stats.max),
        )

    stats_row("executions", summary.total, summary.success_rate, summary.duration)
    for outcome, count in summary.outcomes.items():
        if count:
            table.add_row(f"  {outcome}", str(count), f"{count / summary.total:.0%}", "", "", "")
    stats_row("queue wait", summary.queue_wait.count, None, summary.queue_wait)
    for step_type, step in summary.steps.items():
        failure = step.failure_rate
        stats_row(
            f"step {step_type}",
            step.total,
            None if failure is None else 1 - failure,
            step.duration,
        )
    console.print(table)
    compliance = summary.sla.compliance
    console.print(
        f"SLA: {summary.sla.violations} violations, compliance "
        f"{'n/a' if compliance is None else f'{compliance:.0%}'}"
    )
    health = monitor.health(refresh=True)
    style = _STATUS_STYLE.get(health.status.value, "bold")
    console.print(f"health: [{style}]{health.status.value}[/]")
    for alert in health.alerts:
        console.print(
            escape(f"  [{alert.severity.value}] {alert.rule}: {alert.message}"), highlight=False
        )


# --------------------------------------------------------------------- top
def _top(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    console = Console()
    if (args.url is None) == (args.dir is None):
        console.print("stepwatch top: give a URL or --dir DIR (one of them)")
        return 2
    source: Callable[[], RenderableType]
    monitor: Monitor | None = None
    if args.dir is not None:
        from stepwatch.monitor import Monitor as _Monitor  # noqa: PLC0415

        where = str(args.dir)
        if not args.dir.is_dir():
            console.print(f"unreachable: {where}: not a directory")
            return EXIT_UNREACHABLE
        group_monitor = _Monitor(multiprocess_dir=args.dir, publish_interval=None)
        monitor = group_monitor
        source = lambda: _top_view_group(where, group_monitor)  # noqa: E731
    else:
        where = args.url.rstrip("/")
        source = lambda: _top_view(where, args.token)  # noqa: E731
    try:
        try:
            view = source()
        except (OSError, ValueError) as exc:
            console.print(f"unreachable: {escape_text(where)}: {escape_text(str(exc))}")
            return EXIT_UNREACHABLE
        if args.once:
            console.print(view)
            return 0
        with Live(view, console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                try:
                    live.update(source())
                except (OSError, ValueError) as exc:
                    live.update(
                        f"[red]unreachable: {escape_text(where)}: {escape_text(str(exc))}[/]"
                    )
    except KeyboardInterrupt:
        return 0
    finally:
        if monitor is not None:
            monitor.shutdown()


def escape_text(text: str) -> str:
    """``text`` with rich markup escaped (ids and names are data, never markup)."""
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)


def _top_view(base: str, token: str | None) -> RenderableType:
    status, health = _get(f"{base}/healthz", token, 5.0)
    if status == 401:
        raise ValueError("unauthorised: pass a valid --token")
    _, executions = _get(f"{base}/executions", token, 5.0)
    _, alerts = _get(f"{base}/alerts?active=true", token, 5.0)
    _, events = _get(f"{base}/events?format=json&limit=8", token, 5.0)
    _, summary = _get(f"{base}/summary", token, 5.0)
    return _render_top(
        base,
        str(health.get("status", "?")),
        alerts.get("alerts", []),
        executions.get("executions", []),
        events.get("events", []),
        summary,
    )


def _top_view_group(where: str, monitor: Monitor) -> RenderableType:
    """The same view from a process group's directory: its Monitors' published data."""
    health = monitor.health(refresh=True)
    return _render_top(
        f"{where} (process group)",
        health.status.value,
        [a.to_dict() for a in monitor.alerts(active=True)],
        [p.to_dict() for p in monitor.active_executions()],
        None,
        monitor.summary().to_dict(),
    )


def _executions_table(executions: list[dict[str, Any]]) -> RenderableType:
    """The live executions table of ``demo`` and ``top``: ids and names shown as text."""
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("execution", "name", "state", "progress", "", "step", "eta"):
        table.add_column(column)
    for progress in executions:
        percent = progress.get("percent")
        eta = progress.get("eta_seconds")
        table.add_row(
            escape(str(progress["execution_id"])),
            escape(str(progress["name"])),
            escape(str(progress["state"])),
            _bar(percent),
            "" if percent is None else f"{percent:3.0f}%",
            escape(str(progress.get("current_step") or "")),
            "" if eta is None else f"{eta:.0f}s",
        )
    return table


def _render_top(
    where: str,
    verdict: str,
    alerts: list[dict[str, Any]],
    executions: list[dict[str, Any]],
    events: list[dict[str, Any]] | None,
    summary: object = None,
) -> RenderableType:
    from rich.console import Group  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415

    parts: list[RenderableType] = [
        f"[bold]stepwatch top[/] {escape(where)}   health: "
        f"[{_STATUS_STYLE.get(verdict, 'bold')}]{escape(verdict)}[/]   {time.strftime('%H:%M:%S')}"
    ]
    for alert in alerts:
        parts.append(
            "  [red]▲[/] " + escape(f"[{alert['severity']}] {alert['rule']}: {alert['message']}")
        )
    table = _executions_table(executions)
    parts.append(table)
    if isinstance(summary, dict):
        figures = [
            f"{label} {summary[key]}"
            for label, key in (
                ("queued", "queue_depth"),
                ("scheduled", "scheduled"),
                ("running", "active_executions"),
            )
            if isinstance(summary.get(key), int)
        ]
        lost = (
            summary.get("outcomes", {}).get("lost")
            if isinstance(summary.get("outcomes"), dict)
            else None
        )
        if isinstance(lost, int) and lost:
            figures.append(f"[red]lost {lost}[/]")
        parts.append("[dim]" + "   ".join(figures) + "[/]")
    if events is not None:
        parts.append("[bold]latest events[/]")
        for event in events:
            parts.append(
                escape(f"  {event['seq']:>6} {event['type']:<20} {event.get('execution_id') or ''}")
            )
    return Group(*parts)
