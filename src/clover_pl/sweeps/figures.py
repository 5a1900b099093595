"""The report's figures: a PNG per metric against training step, and a TensorBoard hparams view.

- ``plots/<nn>_<column>.png``: the column's values against the training step of each row's checkpoint, one line
  per series (a run directory, or a trained variant), error bars over seeds, the paper's figure as a dashed line.
- ``tensorboard/``: one hparams run per row (checkpoint, series, step, seeds -> every column's mean), plus each
  column as a scalar against training step, one run per series, and the plots as images (``sweep/plots/...``).
  Rewritten from scratch on every report.
"""

from __future__ import annotations

import os
import re
import shutil

from clover_pl.sweeps.report import Table


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _series(table: Table, index: int) -> dict[str, list[tuple[float, float, float]]]:
    """Series name -> sorted (step, mean, std) of the rows with a known step and a value in column ``index``."""
    series: dict[str, list[tuple[float, float, float]]] = {}
    for row in table.rows:
        entry = table.entries.get((row.label, index))
        if row.step is None or entry is None or entry.mean is None:
            continue
        series.setdefault(row.group, []).append((row.step, entry.mean, entry.std or 0.0))
    return {name: sorted(points) for name, points in series.items()}


def write_plots(table: Table, folder: str) -> list[str]:
    """Write one PNG per column that has values at known steps; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    written = []
    for index, column in enumerate(table.columns):
        series = _series(table, index)
        if not series:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, points in series.items():
            steps, means, stds = zip(*points, strict=True)
            axes.errorbar(steps, means, yerr=stds, marker="o", capsize=3, label=name)
        if column.paper is not None:
            axes.axhline(column.paper, linestyle="--", color="grey", label="Clover paper")
        axes.set_xlabel("training step")
        axes.set_ylabel(column.metric)
        axes.set_title(column.label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = os.path.join(folder, f"{index:02d}_{slug(column.label)}.png")
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def write_tensorboard(table: Table, folder: str, plots: list[str] | None = None) -> None:
    """Write the hparams view, the per-series scalars and the plots as images (see the module docstring).

    Args:
        table: the results table.
        folder: the TensorBoard folder (rewritten).
        plots: PNG files (:func:`write_plots`) shown under ``sweep/plots/<name>`` in the images tab.
    """
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(folder, ignore_errors=True)
    if plots:
        from matplotlib.image import imread

        with SummaryWriter(os.path.join(folder, "plots")) as writer:
            for path in plots:
                image = imread(path)  # (H, W, 3 or 4) float in [0, 1] for a PNG
                name = os.path.splitext(os.path.basename(path))[0]
                writer.add_image(f"sweep/plots/{name}", image[..., :3], global_step=0, dataformats="HWC")
    tags = [f"sweep/{column.benchmark}/{column.setting}/{column.metric}" for column in table.columns]
    with SummaryWriter(os.path.join(folder, "hparams")) as writer:
        for row in table.rows:
            metrics = {}
            for index, tag in enumerate(tags):
                entry = table.entries.get((row.label, index))
                if entry is not None and entry.mean is not None:
                    metrics[tag] = entry.mean
            if not metrics:
                continue
            hparams = {
                "checkpoint": row.label,
                "series": row.group,
                "step": -1 if row.step is None else int(row.step),
                "seeds": len(row.seeds),
            }
            writer.add_hparams(hparams, metrics, run_name=slug(row.label))
    scalars: dict[str, list[tuple[str, float, float]]] = {}
    for index, tag in enumerate(tags):
        for name, points in _series(table, index).items():
            scalars.setdefault(name, []).extend((tag, step, mean) for step, mean, _ in points)
    for name, values in scalars.items():
        with SummaryWriter(os.path.join(folder, "scalars", slug(name))) as writer:
            for tag, step, mean in values:
                writer.add_scalar(tag, mean, global_step=int(step))
