"""The objective study (conf/sweeps/objective_study.yaml): run it seed by seed, and summarise it with paired intervals.

``python -m clover_pl.sweeps.study run --config conf/sweeps/objective_study.yaml`` runs the sweep's cells in
*seed-major* order (seed 0 of every arm, then seed 1, ...), each through ``clover-pl sweep --only``, so that a study
stopped early leaves complete, paired seeds rather than all seeds of the first arms. Cells already ok are skipped.

``python -m clover_pl.sweeps.study report --config ... [--out DIR]`` reads the results store and writes
``study.md`` (per arm: mean and 95 % t-interval over seeds of every metric; paired differences of the reference arm
and each other arm, with a 95 % t-interval over the seeds both finished) and ``study.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

from clover_pl.files import write_text_atomic
from clover_pl.sweeps.config import load_sweep
from clover_pl.sweeps.grid import Cell, expand
from clover_pl.sweeps.store import OK, ResultStore

# Two-sided 95 % Student t quantiles by degrees of freedom (1-30); beyond that the normal 1.96.
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_interval(values: list[float]) -> tuple[float, float, float] | None:
    """Mean and the 95 % Student-t interval ``(mean, low, high)`` of ``values``.

    One value gives the mean alone as its interval (no spread to estimate); no value gives None.
    """
    if not values:
        return None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, mean, mean
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    dof = len(values) - 1
    half = (_T95[dof - 1] if dof <= len(_T95) else 1.96) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def seed_major(cells: list[Cell], arms: list[str] | None = None) -> list[list[Cell]]:
    """Training cells with their evaluation cells, ordered by seed, then by ``arms`` (default: sweep order)."""
    trains = [cell for cell in cells if cell.kind == "train"]
    order = arms or list(dict.fromkeys(cell.group for cell in trains))
    unknown = sorted({*order} - {cell.group for cell in trains})
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(unknown)}; the sweep's arms: {', '.join(c.group for c in trains)}")
    chosen = [cell for cell in trains if cell.group in order]
    chosen.sort(key=lambda cell: (cell.seed if cell.seed is not None else -1, order.index(cell.group)))
    return [[train, *[cell for cell in cells if cell.after == train.id]] for train in chosen]


def collect(config: str) -> dict[str, dict[int, dict[str, float]]]:
    """``{arm: {seed: {"<benchmark>/<metric>": value}}}`` from the sweep's results store (ok evaluations only)."""
    sweep = load_sweep(config)
    records = ResultStore(sweep.output_dir).latest()
    results: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for cell in expand(sweep):
        record = records.get(cell.id)
        if cell.kind != "evaluate" or record is None or record.get("status") != OK or cell.seed is None:
            continue
        metrics = results[cell.group].setdefault(cell.seed, {})
        for name, value in (record.get("metrics") or {}).items():
            metrics[f"{cell.benchmark}/{name}"] = float(value)
    return dict(results)


def summarise(
    results: dict[str, dict[int, dict[str, float]]], metrics: list[str], reference: str, others: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-arm rows and paired-difference rows.

    Returns:
        ``(arms, differences)``: ``{"arm", "seeds", metric: (mean, low, high)}`` per arm, and
        ``{"pair", "seeds", metric: (mean, low, high)}`` for ``reference - other`` over the seeds both have.
    """
    arms = []
    for arm, seeds in results.items():
        row: dict[str, Any] = {"arm": arm, "seeds": sorted(seeds)}
        for metric in metrics:
            row[metric] = t_interval([values[metric] for values in seeds.values() if metric in values])
        arms.append(row)
    differences = []
    for other in others:
        if reference not in results or other not in results:
            continue
        shared = sorted(set(results[reference]) & set(results[other]))
        row = {"pair": f"{reference} - {other}", "seeds": shared}
        for metric in metrics:
            deltas = [
                results[reference][seed][metric] - results[other][seed][metric]
                for seed in shared
                if metric in results[reference][seed] and metric in results[other][seed]
            ]
            row[metric] = t_interval(deltas)
        differences.append(row)
    return arms, differences


def _show(value: tuple[float, float, float] | None, digits: int, seeds: int) -> str:
    if value is None:
        return "-"
    mean, low, high = value
    if seeds < 2:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def to_markdown(rows: list[dict[str, Any]], key: str, metrics: list[str]) -> str:
    """A markdown table: one row per arm (or pair), ``mean [95 % interval]`` per metric."""
    header = f"| {key} | seeds | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for row in rows:
        digits = [3 if metric.endswith("mrr") else 1 for metric in metrics]
        cells = [_show(row[metric], d, len(row["seeds"])) for metric, d in zip(metrics, digits, strict=True)]
        lines.append(f"| {row[key]} | {','.join(map(str, row['seeds']))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def references(results: dict[str, dict[int, dict[str, float]]]) -> dict[str, list[tuple[str, float, float]]]:
    """Reference levels per metric, ``(label, low, high)``.

    One-fact multiple choice at chance (20 %, with the 95 % binomial band of one run over its questions); retrieval
    MRR at chance and for a model that ranks the clips of the right ground first and at random among them (a
    quarter of the gallery).
    """
    found = [values for seeds in results.values() for values in seeds.values()]
    lines: dict[str, list[tuple[str, float, float]]] = {}
    questions = next((values["mc/questions"] for values in found if "mc/questions" in values), None)
    if questions:
        half = 196.0 * math.sqrt(0.2 * 0.8 / questions)
        lines["mc/accuracy"] = [("chance (95 % band of one run)", 20.0 - half, 20.0 + half)]
    chance_r1 = next((values["retrieval/chance_r@1"] for values in found if "retrieval/chance_r@1" in values), None)
    gallery = round(100.0 / chance_r1) if chance_r1 else None
    if gallery:

        def mrr(size: int) -> float:  # the expected reciprocal rank of a uniformly random rank in 1..size
            return sum(1.0 / rank for rank in range(1, size + 1)) / size

        chance, ground = mrr(int(gallery)), mrr(int(gallery) // 4)
        lines["retrieval/t2v_mrr"] = [("chance", chance, chance), ("ground only", ground, ground)]
    return lines


def plot(arms: list[dict[str, Any]], metrics: list[str], results: dict[str, Any], path: str) -> None:
    """One panel per metric: every seed a dot, the mean and its 95 % interval a bar, the references grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = references(results)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8))
    for axis, metric in zip(axes if len(metrics) > 1 else [axes], metrics, strict=True):
        for index, (label, low, high) in enumerate(levels.get(metric, [])):
            if high > low:
                axis.axhspan(low, high, color="0.85", label=label, zorder=1)
            else:
                axis.axhline(low, color=f"{0.3 + 0.3 * index}", linestyle="--", label=label, zorder=1)
        for position, row in enumerate(arms):
            values = [seed_values[metric] for seed_values in results[row["arm"]].values() if metric in seed_values]
            axis.scatter([position] * len(values), values, s=14, color="0.5", zorder=3)
            if row[metric] is not None:
                mean, low, high = row[metric]
                axis.errorbar(position, mean, yerr=[[mean - low], [high - mean]], fmt="o", color="C0", capsize=5)
        axis.set_xticks(range(len(arms)), [row["arm"] for row in arms], rotation=30, ha="right")
        axis.set_xlim(-0.5, len(arms) - 0.5)
        axis.set_title(metric)
        axis.grid(axis="y", alpha=0.3)
        if metric in levels:
            axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m clover_pl.sweeps.study", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--config", default="conf/sweeps/objective_study.yaml")
    parser.add_argument("--arms", help="comma-separated arms in run order (default: the sweep's order)")
    parser.add_argument("--reference", default="clover", help="the arm the paired differences start from")
    parser.add_argument("--metrics", default="mc/accuracy,retrieval/t2v_mrr,retrieval/t2v_r@1,retrieval/t2v_r@5")
    parser.add_argument("--out", help="folder for study.md and study.png (default: the sweep's output_dir)")
    args = parser.parse_args(argv)
    arms = args.arms.split(",") if args.arms else None
    if args.command == "run":
        sweep = load_sweep(args.config)
        for group in seed_major(expand(sweep), arms):
            for cell in group:
                print(f"study: {cell.describe()} [{cell.id}]", flush=True)
                command = [sys.executable, "-m", "clover_pl", "sweep", "--config", args.config, "--only", cell.id]
                subprocess.run(command, check=False)
        return 0
    sweep = load_sweep(args.config)
    results = collect(args.config)
    metrics = args.metrics.split(",")
    order = arms or list(dict.fromkeys(c.group for c in expand(sweep) if c.kind == "train"))
    results = {arm: results[arm] for arm in order if arm in results}
    others = [arm for arm in results if arm != args.reference]
    arm_rows, differences = summarise(results, metrics, args.reference, others)
    per_fact = [f"mc/accuracy_{fact}" for fact in ("object", "material", "action")]
    per_fact += [f"{name}_pair" for name in per_fact]
    fact_rows, fact_differences = summarise(results, per_fact, args.reference, others)
    out = args.out or sweep.output_dir
    os.makedirs(out, exist_ok=True)
    text = "\n\n".join(
        [
            "Per arm: mean [95 % t-interval over seeds]",
            to_markdown(arm_rows, "arm", metrics),
            "Paired differences (same seed): mean [95 % t-interval]",
            to_markdown(differences, "pair", metrics),
            "One-fact multiple choice per fact (percent; _pair: two-entity scenes)",
            to_markdown(fact_rows, "arm", per_fact),
            to_markdown(fact_differences, "pair", per_fact),
        ]
    )
    write_text_atomic(os.path.join(out, "study.md"), text + "\n")
    if arm_rows:
        plot(arm_rows, metrics[:2], results, os.path.join(out, "study.png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
