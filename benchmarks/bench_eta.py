"""How right the ETA is while a run is under way, against two reference estimators.

Run: ``python benchmarks/bench_eta.py [--json] [--trials N] [--chart PATH]``.

Each workload is a run of sequential steps whose durations follow a shape
(equal, front-loaded, back-loaded, random), each step jittered by up to
+/-10% per run. A trial starts a fresh Monitor on a fake clock, lets it learn
0, 1 or 3 successful runs of the workflow, then runs it once more and asks
for the ETA at 25%, 50% and 75% of that run's true duration. The figure is
the median absolute percentage error of those answers against the true time
left, over every trial; an estimator with no answer counts as 100% wrong.

The estimators, asked at the same instants of the same runs:

- ``stepwatch``: ``monitor.progress(id).eta_seconds`` through the public API;
- ``linear``: elapsed / fraction of steps done x fraction left;
- ``rich``: ``rich.progress`` with its defaults (a windowed speed over the
  last 30 s of updates), advanced by one at every step's end.

``--chart PATH`` draws the three estimates against the true time left over
one back-loaded run after three learned runs (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.progress import Progress

import stepwatch
from stepwatch.testing import FakeClock, capture

WORKLOADS: dict[str, Callable[[random.Random], list[float]]] = {
    "equal": lambda _rng: [5.0] * 7,
    "front-loaded": lambda _rng: [37.0, 1.0, 1.0, 1.0],
    "back-loaded": lambda _rng: [1.0, 1.0, 1.0, 37.0],
    "random": lambda rng: [round(rng.lognormvariate(1.0, 1.0), 2) for _ in range(8)],
}
"""Each workload's step durations (seconds); ``random`` is drawn once per trial."""

LEARNED = (0, 1, 3)
ESTIMATORS = ("stepwatch", "linear", "rich")
POINTS = (0.25, 0.50, 0.75)
JITTER = 0.10


@dataclass
class Run:
    """One observed run: the true time left and each estimator's answer at each sample."""

    truth: list[float] = field(default_factory=list)
    answers: dict[str, list[float | None]] = field(
        default_factory=lambda: {name: [] for name in ESTIMATORS}
    )


def jittered(shape: list[float], rng: random.Random) -> list[float]:
    return [d * rng.uniform(1.0 - JITTER, 1.0 + JITTER) for d in shape]


def run_once(
    monitor: stepwatch.Monitor,
    clock: FakeClock,
    durations: list[float],
    samples: list[float],
    run_id: str,
) -> Run:
    """Run ``durations`` as one execution, sampling every estimator at ``samples`` (offsets)."""
    observed = Run()
    total = sum(durations)
    pending = sorted(samples)
    start = clock()
    progress = Progress(get_time=clock, disable=True, auto_refresh=False)
    task = progress.add_task("run", total=len(durations))
    with stepwatch.execution("workflow", execution_id=run_id, total_steps=len(durations)) as ex:
        for done, duration in enumerate(durations):
            step_end = clock() + duration
            with ex.step(f"step-{done}"):
                while pending and start + pending[0] < step_end:
                    clock.advance(start + pending.pop(0) - clock())
                    elapsed = clock() - start
                    observed.truth.append(total - elapsed)
                    answer = monitor.progress(run_id)
                    observed.answers["stepwatch"].append(answer.eta_seconds if answer else None)
                    fraction = done / len(durations)
                    observed.answers["linear"].append(
                        elapsed / fraction * (1.0 - fraction) if fraction else None
                    )
                    observed.answers["rich"].append(progress.tasks[0].time_remaining)
                clock.advance(step_end - clock())
            progress.advance(task, 1)
    return observed


def trial(workload: str, learned: int, seed: int, samples: list[float] | None = None) -> Run:
    """A fresh Monitor learns ``learned`` runs of ``workload``, then one more run is observed."""
    rng = random.Random(seed)
    shape = WORKLOADS[workload](rng)
    clock = FakeClock(start=1_000_000.0)
    with capture(clock=clock) as sw:
        for index in range(learned):
            run_once(sw.monitor, clock, jittered(shape, rng), [], f"learn-{index}")
            clock.advance(1.0)
        durations = jittered(shape, rng)
        total = sum(durations)
        offsets = samples if samples is not None else [p * total for p in POINTS]
        return run_once(sw.monitor, clock, durations, offsets, "observed")


def percentage_error(answer: float | None, truth: float) -> float:
    return 100.0 if answer is None else abs(answer - truth) / truth * 100.0


def measure(trials: int) -> dict[str, dict[str, dict[str, float]]]:
    """Median absolute percentage error per workload, learned runs and estimator."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for workload in WORKLOADS:
        table[workload] = {}
        for learned in LEARNED:
            errors: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
            for seed in range(trials):
                run = trial(workload, learned, seed)
                for name in ESTIMATORS:
                    errors[name].extend(
                        percentage_error(answer, truth)
                        for answer, truth in zip(run.answers[name], run.truth, strict=True)
                    )
            table[workload][str(learned)] = {
                name: round(statistics.median(values), 1) for name, values in errors.items()
            }
    return table


def chart(path: str) -> None:
    """ETA against the true time left over one back-loaded run, after three learned runs."""
    import matplotlib  # noqa: PLC0415 - optional, only for the chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rng = random.Random(7)
    shape = WORKLOADS["back-loaded"](rng)
    total = sum(shape)
    offsets = [total * i / 200 for i in range(1, 200)]
    run = trial("back-loaded", 3, 7, samples=offsets)
    elapsed = [total - left for left in run.truth]
    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=100)
    axes.plot(elapsed, run.truth, color="black", linewidth=2, label="true time left")
    styles = {"stepwatch": "tab:blue", "linear": "tab:orange", "rich": "tab:green"}
    for name, colour in styles.items():
        points = [(e, a) for e, a in zip(elapsed, run.answers[name], strict=True) if a is not None]
        axes.plot([e for e, _ in points], [a for _, a in points], color=colour, label=name)
    axes.set_xlabel("seconds into the run (steps of about 1, 1, 1, 37 s)")
    axes.set_ylabel("ETA (s)")
    axes.set_ylim(0, total * 1.5)
    axes.legend()
    axes.set_title("ETA on a back-loaded run, after 3 learned runs")
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--chart", metavar="PATH")
    args = parser.parse_args()
    table = measure(args.trials)
    if args.chart:
        chart(args.chart)
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print(f"median absolute % error of the ETA at 25/50/75% of a run ({args.trials} trials)")
    print(f"{'workload':<14}{'learned':>8}" + "".join(f"{n:>11}" for n in ESTIMATORS))
    for workload, rows in table.items():
        for learned, row in rows.items():
            print(f"{workload:<14}{learned:>8}" + "".join(f"{row[n]:>11}" for n in ESTIMATORS))


if __name__ == "__main__":
    main()
