"""The ``stepwatch`` command: demo, top, health and rules.

Usage::

    stepwatch demo [--executions N] [--concurrency K] [--failure-rate P] [--serve PORT]
    stepwatch top URL [--token T] [--interval S] [--once]
    stepwatch health URL [--token T]          # exit 0 pass, 1 warn, 2 fail, 3 unreachable
    stepwatch rules [--config FILE]           # Prometheus alerting rules (YAML)

``demo`` and ``top`` draw with ``rich`` (``pip install 'stepwatch[cli]'``);
``health`` and ``rules`` need nothing beyond stepwatch itself. ``--token``
defaults to the ``STEPWATCH_TOKEN`` variable (out of shell history and ``ps``).

Errors are one line on stderr, never a traceback, whatever the output is
(terminal or pipe). Exit codes: 2 for what the user must fix (a bad
argument, a busy ``--serve`` port, a missing or invalid ``--config`` file;
also ``health``'s "fail"), 3 for a server that cannot be reached or whose
answer is not a stepwatch answer (a proxy's error page, the wrong JSON, a
body over :data:`MAX_ANSWER_BYTES`), 4 for a failure of stepwatch itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
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

__all__ = ["MAX_ANSWER_BYTES", "build_parser", "main"]

EXIT_PASS, EXIT_WARN, EXIT_FAIL, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_USER = 2
"""Something the user must fix: a bad argument, a busy port, a missing config file."""
EXIT_INTERNAL = 4
"""stepwatch itself failed (the one line says how)."""
TOKEN_VARIABLE = "STEPWATCH_TOKEN"
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The most ``top`` and ``health`` read of one answer; a longer one is refused."""
_MAX_TEXT = 200
"""Characters of one id, name or message shown by ``top`` (the rest is cut)."""
_HEALTH_EXIT = {"pass": EXIT_PASS, "warn": EXIT_WARN, "fail": EXIT_FAIL}
_MISSING_RICH = (
    "stepwatch {command}: draws with 'rich', which is not installed: pip install 'stepwatch[cli]'"
)
_STATUS_STYLE = {
    "pass": "bold green",
    "healthy": "bold green",
    "warn": "bold yellow",
    "degraded": "bold yellow",
    "fail": "bold red",
    "unhealthy": "bold red",
}


class CommandError(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USER) -> None:
        super().__init__(message)
        self.code = code


class BadAnswer(ValueError):
    """The server answered, but not with what a stepwatch server sends."""


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


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0-65535), got {value}")
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
    demo.add_argument("--serve", type=_port, metavar="PORT", help="serve the HTTP API on PORT")

    top = commands.add_parser(
        "top", help="live view of a served Monitor, or of a process group's directory"
    )
    top.add_argument("url", nargs="?", help="a served Monitor's base URL")
    top.add_argument(
        "--dir",
        type=Path,
        help="read a process group's directory instead (no process needs to serve HTTP)",
    )
    top.add_argument("--token", help=f"bearer token (default: ${TOKEN_VARIABLE})")
    top.add_argument("--interval", type=_seconds, default=1.0)
    top.add_argument("--once", action="store_true", help="render once and exit")

    health = commands.add_parser("health", help="print a served Monitor's health")
    health.add_argument("url")
    health.add_argument("--token", help=f"bearer token (default: ${TOKEN_VARIABLE})")
    health.add_argument("--timeout", type=_seconds, default=5.0)

    rules = commands.add_parser("rules", help="print the rules as Prometheus alerting rules")
    rules.add_argument("--config", type=Path, help="TOML or JSON file of Rules fields")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``stepwatch`` command; returns the exit code.

    Every failure is one line on stderr (no traceback), see the module's
    exit codes.
    """
    args = build_parser().parse_args(argv)
    command: str = args.command
    if getattr(args, "token", None) is None and command in ("top", "health"):
        args.token = os.environ.get(TOKEN_VARIABLE) or None
    try:
        return _dispatch(command, args)
    except CommandError as exc:
        _error(command, str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _error(command, f"failed: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


def _error(command: str, message: str) -> None:
    """One line on stderr: ``stepwatch COMMAND: message`` (newlines folded)."""
    text = " ".join(f"stepwatch {command}: {message}".split())
    print(text, file=sys.stderr, flush=True)


def _dispatch(command: str, args: argparse.Namespace) -> int:
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
        try:
            text = args.config.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CommandError(f"cannot read {args.config}: {reason}") from None
        try:
            fields = json.loads(text) if args.config.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise CommandError(f"cannot parse {args.config}: {exc}") from None
        if not isinstance(fields, dict):
            raise CommandError(f"{args.config}: expected a table of Rules fields")
        fields = fields.get("rules", fields)
        if not isinstance(fields, dict):
            raise CommandError(f"{args.config}: 'rules' must be a table of Rules fields")
    try:
        rules = Rules(**fields)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    sys.stdout.write(rules_yaml(rules))
    return 0


# ------------------------------------------------------------------ health
def _get(url: str, token: str | None, timeout: float) -> tuple[int, Any]:
    """GET ``url`` as JSON: ``(status, decoded body)``, ``None`` for a body that is not JSON.

    Reads at most :data:`MAX_ANSWER_BYTES`, within ``timeout`` seconds for the
    whole answer (an endless or trickling body is cut off).

    Raises:
        OSError: the server cannot be reached (or timed out).
        BadAnswer: the answer is too large.
    """
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(_read_bounded(response, deadline))
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _decode(_read_bounded(error, deadline))


def _read_bounded(response: Any, deadline: float) -> bytes:
    """The body, at most :data:`MAX_ANSWER_BYTES`, read before ``deadline`` (monotonic)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not end in time")
        read = getattr(response, "read1", None) or response.read  # read1: one recv at most
        chunk = read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise BadAnswer(f"the answer is over {MAX_ANSWER_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # an HTML error page, text, invalid UTF-8...
        return None


def _health(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/healthz"
    try:
        status, body = _get(url, args.token, args.timeout)
    except BadAnswer as exc:
        print(f"unexpected answer from {url}: {exc}")
        return EXIT_UNREACHABLE
    except (OSError, ValueError) as exc:
        print(" ".join(f"unreachable: {url}: {exc}".split()))
        return EXIT_UNREACHABLE
    if status == 401:
        print(f"unauthorised: {url} needs a valid --token (or ${TOKEN_VARIABLE})")
        return EXIT_UNREACHABLE
    if not isinstance(body, dict) or body.get("status") not in _HEALTH_EXIT:
        kind = "not JSON" if body is None else f"no health status in the {type(body).__name__}"
        print(f"unexpected answer from {url}: HTTP {status}, {kind}")
        return EXIT_UNREACHABLE
    verdict = str(body["status"])
    print(verdict)
    checks = body.get("checks")
    for key, entries in sorted(checks.items() if isinstance(checks, dict) else []):
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                status_text = _plain(entry.get("status", "?"), 8)
                print(f"  {status_text:<4} {_plain(key)}: {_plain(entry.get('output', ''))}")
    return _HEALTH_EXIT[verdict]


def _plain(value: object, limit: int = _MAX_TEXT) -> str:
    """``value`` as one line of printable text: control characters replaced, length bounded.

    Ids, names and messages come from the server (and from whoever named an
    execution): a terminal control sequence in them (a title change, a screen
    clear) must reach the terminal as text, never as a command.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return text
    # Not printable: C0/C1 controls (ESC starts every terminal sequence), DEL,
    # bidi and other format characters, line and paragraph separators.
    return "".join(char if char.isprintable() else "?" for char in text)


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
        try:
            handle = monitor.serve(port=args.serve)
        except OSError as exc:
            monitor.shutdown()
            reason = exc.strerror or str(exc)
            raise CommandError(f"cannot serve on port {args.serve}: {reason}") from None
        console.print(
            f"dashboard: [bold]{handle.url}/[/]   (JSON: /healthz, /executions, /summary, /events)"
        )
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

    ended: dict[str, int] = {}
    engine = asyncio.create_task(run_engine(config, ended))
    if console.is_terminal:
        await _demo_live(monitor, config.executions, ended, engine, console)
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
    monitor: Monitor,
    total: int,
    ended: dict[str, int],
    engine: asyncio.Task[Any],
    console: Console,
) -> None:
    from rich.live import Live  # noqa: PLC0415

    with Live(console=console, refresh_per_second=8, transient=False) as live:
        while True:
            live.update(_demo_view(monitor, total, sum(ended.values())))
            if engine.done():
                return
            await asyncio.sleep(0.12)


def _bar(percent: float | None, width: int = 24) -> str:
    """A progress bar that reads in plain text too (no colour needed)."""
    if percent is None:
        return "[dim]" + "·" * width + "[/]"
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return "[green]" + "█" * filled + "[/][dim]" + "░" * (width - filled) + "[/]"


def _demo_view(monitor: Monitor, total: int, ended: int) -> RenderableType:
    """One frame of the demo: ``ended`` comes from the engine (the event history is bounded)."""
    from rich.console import Group  # noqa: PLC0415

    active = monitor.active_executions()
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
        raise CommandError("give a URL or --dir DIR (one of them)")
    source: Callable[[], RenderableType]
    monitor: Monitor | None = None
    if args.dir is not None:
        from stepwatch.monitor import Monitor as _Monitor  # noqa: PLC0415

        where = str(args.dir)
        if not args.dir.is_dir():
            print(_plain(f"unreachable: {where}: not a directory", 1000))
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
        except BadAnswer as exc:
            print(_plain(f"unexpected answer from {where}: {exc}", 1000))
            return EXIT_UNREACHABLE
        except (OSError, ValueError) as exc:
            print(_plain(f"unreachable: {where}: {exc}", 1000))
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
                    live.update(f"[red]{_text(f'unreachable: {where}: {exc}', 1000)}[/]")
    except KeyboardInterrupt:
        return 0
    finally:
        if monitor is not None:
            monitor.shutdown()


def escape_text(text: str) -> str:
    """``text`` with rich markup escaped (ids and names are data, never markup)."""
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)


def _text(value: object, limit: int = _MAX_TEXT) -> str:
    """A server-supplied value for rich: printable (see :func:`_plain`), markup escaped."""
    return escape_text(_plain(value, limit))


def _number(value: object) -> float | None:
    """A finite number from an answer, else ``None`` (a wrong type is treated as unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _records(answer: tuple[int, Any], key: str, route: str) -> list[dict[str, Any]]:
    """The list under ``key`` of a JSON object answer (its non-object items left out)."""
    status, body = answer
    items = body.get(key) if isinstance(body, dict) else None
    if status != 200 or not isinstance(items, list):
        raise BadAnswer(f"{route}: HTTP {status}, not a stepwatch answer")
    return [item for item in items if isinstance(item, dict)]


def _top_view(base: str, token: str | None) -> RenderableType:
    status, health = _get(f"{base}/healthz", token, 5.0)
    if status == 401:
        raise ValueError(f"unauthorised: pass a valid --token (or ${TOKEN_VARIABLE})")
    if not isinstance(health, dict) or not isinstance(health.get("status"), str):
        raise BadAnswer(f"/healthz: HTTP {status}, not a stepwatch health answer")
    listing = _get(f"{base}/executions?offset=0&steps=false", token, 5.0)
    rows = _records(listing, "executions", "/executions")
    alerts = _records(_get(f"{base}/alerts?active=true", token, 5.0), "alerts", "/alerts")
    events = _records(_get(f"{base}/events?format=json&limit=8", token, 5.0), "events", "/events")
    _, summary = _get(f"{base}/summary", token, 5.0)
    total = listing[1].get("total") if isinstance(listing[1], dict) else None
    return _render_top(
        base,
        health["status"],
        alerts,
        rows,
        events,
        summary if isinstance(summary, dict) else None,
        total if isinstance(total, int) and not isinstance(total, bool) else len(rows),
    )


def _top_view_group(where: str, monitor: Monitor) -> RenderableType:
    """The same view from a process group's directory: its Monitors' published data."""
    health = monitor.health(refresh=True)
    active = monitor.active_executions()
    return _render_top(
        f"{where} (process group)",
        health.status.value,
        [a.to_dict() for a in monitor.alerts(active=True)],
        [p.to_dict() for p in active[:100]],
        None,
        monitor.summary().to_dict(),
        len(active),
    )


def _eta(seconds: object) -> str:
    """An ETA for people: ``?`` when unknown, never ``0s``.

    Under 10 s with a tenth (``0.3s``; ``<0.1s`` below that), then whole
    seconds, ``3m04s`` and ``2h05m``. ``top`` and ``demo`` list running
    executions, whose remaining time is never exactly zero.
    """
    value = _number(seconds)
    if value is None or value < 0:
        return "?"
    if value < 0.1:
        return "<0.1s"
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(round(value) // 60, 60)
    return f"{hours}h{rest:02d}m"


def _executions_table(executions: list[dict[str, Any]]) -> RenderableType:
    """The live executions table of ``demo`` and ``top``: ids and names shown as plain text."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("execution", "name", "state", "progress", "", "step", "eta"):
        table.add_column(column)
    for progress in executions:
        percent = _number(progress.get("percent"))
        table.add_row(
            _text(progress.get("execution_id", "?")),
            _text(progress.get("name", "?")),
            _text(progress.get("state", "?")),
            _bar(percent),
            "" if percent is None else f"{percent:3.0f}%",
            _text(progress.get("current_step") or ""),
            _eta(progress.get("eta_seconds")),
        )
    return table


def _seconds_text(value: Any) -> str:
    """Seconds written as the dashboard's page writes them."""
    if not isinstance(value, int | float):
        return "n/a"
    if value < 1:
        return f"{int(value * 1000 + 0.5)} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value + 0.5), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _figures(summary: dict[str, Any]) -> str:
    """The summary figures of the dashboard's page (``/``): same labels, order and formats."""

    def part(key: str) -> dict[str, Any]:
        value = summary.get(key)
        return value if isinstance(value, dict) else {}

    def rate(value: Any) -> str:
        return f"{value:.1%}" if isinstance(value, int | float) else "n/a"

    duration, wait, sla = part("duration"), part("queue_wait"), part("sla")
    figures = [
        ("Running", summary.get("active_executions", "n/a")),
        ("Queued", summary.get("queue_depth", "n/a")),
        ("Scheduled", summary.get("scheduled", "n/a")),
        ("Ended", summary.get("total", "n/a")),
        ("Success rate", rate(summary.get("success_rate"))),
        ("Failure rate", rate(summary.get("failure_rate"))),
        ("Timeout rate", rate(summary.get("timeout_rate"))),
        ("Retry rate", rate(summary.get("retry_rate"))),
        ("Lost rate", rate(summary.get("lost_rate"))),
        ("Duration p50", _seconds_text(duration.get("p50"))),
        ("Duration p95", _seconds_text(duration.get("p95"))),
        ("Queue wait p50", _seconds_text(wait.get("p50"))),
        ("Queue wait p95", _seconds_text(wait.get("p95"))),
        ("SLA violations", sla.get("violations", "n/a")),
        ("SLA compliance", rate(sla.get("compliance"))),
    ]
    return "  ".join(f"{label}: {value}" for label, value in figures)


def _render_top(
    where: str,
    verdict: str,
    alerts: list[dict[str, Any]],
    executions: list[dict[str, Any]],
    events: list[dict[str, Any]] | None,
    summary: dict[str, Any] | None = None,
    total: int | None = None,
) -> RenderableType:
    from rich.console import Group  # noqa: PLC0415

    verdict = _plain(verdict, 16)
    parts: list[RenderableType] = [
        f"[bold]stepwatch top[/] {_text(where, 1000)}   health: "
        f"[{_STATUS_STYLE.get(verdict, 'bold')}]{escape_text(verdict)}[/]   "
        f"{time.strftime('%H:%M:%S')}"
    ]
    if summary is not None:
        parts.append(_text(_figures(summary), 2000))
    for alert in alerts:
        severity, rule = alert.get("severity", "?"), alert.get("rule", "?")
        parts.append(
            "  [red]▲[/] " + _text(f"[{severity}] {rule}: {alert.get('message', '')}", 1000)
        )
    table = _executions_table(executions)
    parts.append(table)
    if total is not None:
        parts.append(f"[dim]{len(executions)} shown of {total}[/]")
    if events is not None:
        parts.append("[bold]latest events[/]")
        for event in events:
            seq, kind = _plain(event.get("seq", ""), 12), _plain(event.get("type", "?"), 40)
            parts.append(_text(f"  {seq:>6} {kind:<20} {event.get('execution_id') or ''}", 1000))
    return Group(*parts)
