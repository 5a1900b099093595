"""Cost of the TensorBoard pictures: training step time with and without them, on the tiny quickstart run.

Runs `clover-pl fit --config conf/quickstart.yaml` in-process (synthetic data, CPU, one compute thread), rounds of
"pictures on" and "pictures off" (``Pictures(max_clips=0, num_queries=0)``) interleaved, and reports per variant:
the median training step (the time between two step starts, leaving out the steps that contain a validation), the
wall time per step over the whole fit (validations and drawing included), and the drawing time per validation.

    python bench/pictures.py --data data/synthetic --steps 60 --every 20 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402

from clover_pl.callbacks import Pictures  # noqa: E402
from clover_pl.lightning_cli import CloverCLI  # noqa: E402
from clover_pl.quiet import silence_known_warnings  # noqa: E402
from clover_pl.subcommands import DESCRIPTION  # noqa: E402

OFF = '{"class_path": "clover_pl.callbacks.Pictures", "init_args": {"max_clips": 0, "num_queries": 0}}'


class StepTimer(L.Callback):
    """Start-to-start time of every training step; a step during which a validation ran is left out."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self._last: float | None = None
        self._validated = False

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if self._last is not None and not self._validated:
            self.steps.append(now - self._last)
        self._last, self._validated = now, False

    def on_validation_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._validated = True


def run(data: str, steps: int, every: int, pictures: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        os.environ["CLOVER_OUT"] = out
        args = [
            "--config=conf/quickstart.yaml",
            f"--data.init_args.tokenizer={data}/vocab.txt",
            f"--data.init_args.video_shards={data}/webvid/{{00000..00007}}.tar",
            f"--data.init_args.image_shards={data}/cc3m/{{00000..00003}}.tar",
            f"--data.init_args.validation_shards={data}/validation/{{00008..00009}}.tar",
            f"--trainer.max_steps={steps}",
            f"--trainer.val_check_interval={every}",
            "--trainer.enable_progress_bar=false",
        ]
        if not pictures:
            args.append(f"--trainer.callbacks+={OFF}")
        cli = CloverCLI(
            model_class=None,
            datamodule_class=None,
            parser_kwargs={"parser_mode": "omegaconf+", "description": DESCRIPTION},
            args=args,
            run=False,
        )
        timer = StepTimer()
        cli.trainer.callbacks.append(timer)
        drawer = next(callback for callback in cli.trainer.callbacks if isinstance(callback, Pictures))
        drawing: list[float] = []
        original = drawer.on_validation_end

        def timed(trainer: L.Trainer, module: L.LightningModule) -> None:
            original(trainer, module)
            drawing.append(drawer.last_seconds)

        drawer.on_validation_end = timed  # type: ignore[method-assign]
        start = time.perf_counter()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        wall = time.perf_counter() - start
    return {
        "step_s": statistics.median(timer.steps[5:]),
        "wall_per_step_s": wall / steps,
        "draw_s": statistics.mean(drawing) if pictures and drawing else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=20, help="validation interval (steps)")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    silence_known_warnings()
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(options.rounds):
        for name in ("off", "on"):
            results[name].append(run(options.data, options.steps, options.every, name == "on"))
    print(
        f"{options.steps} steps, validation every {options.every}, {options.rounds} interleaved rounds, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print("| pictures | median step s | wall s per step (validation included) | drawing s per validation |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        step = statistics.median(row["step_s"] for row in rows)
        wall = statistics.median(row["wall_per_step_s"] for row in rows)
        draw = statistics.median(row["draw_s"] for row in rows)
        print(f"| {name} | {step:.4f} | {wall:.4f} | {draw:.3f} |")


if __name__ == "__main__":
    main()
