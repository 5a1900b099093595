"""The progress bar of ``clover-pl fit / validate / test / predict``: optimiser steps against ``max_steps``.

Lightning's default bar counts the batches of the current epoch (``Epoch 0/-2 ... 60/60`` for a step-based run,
``80/19`` after a resume, ``v_num`` as a metric). Here the training bar counts optimiser steps against the run's
total (``trainer.max_steps``, or the estimated steps of an epoch-based run), starts at the resumed step, and shows
the rate, the ETA, the training loss and the last value of the selection metric; the epoch appears only when the
run is epoch-based. Bars go to stderr through :func:`clover_pl.progress.progress`, so they become periodic plain
lines in a log file.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from tqdm.std import tqdm

from clover_pl.progress import is_terminal, progress
from clover_pl.trainer_attributes import log_every_n_steps


def _finite(total: float | int | None) -> int | None:
    """A bar total: None when unknown or infinite (an iterable dataset without a length)."""
    if total is None or (isinstance(total, float) and not math.isfinite(total)) or total <= 0:
        return None
    return int(total)


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


class StepProgressBar(ProgressBar):
    """Steps done of the run's total steps, with rate and ETA; evaluation batches of their total.

    Args:
        show_metrics: logged scalars shown after the bar, by their logged name (missing ones are left out); the
            monitored metric of the run's first ``ModelCheckpoint`` is added.
    """

    def __init__(self, show_metrics: tuple[str, ...] = ("train/loss",)) -> None:
        super().__init__()
        self.show_metrics = tuple(show_metrics)
        self._enabled = True
        self.train_bar: tqdm | None = None
        self.eval_bar: tqdm | None = None

    # ------------------------------------------------------------------ switches
    def disable(self) -> None:
        """No output (ranks other than zero)."""
        self._enabled = False

    def enable(self) -> None:
        """Output again."""
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        """Whether the bar writes anything."""
        return self._enabled

    # ------------------------------------------------------------------ training
    @staticmethod
    def epoch_based(trainer: L.Trainer) -> bool:
        """Whether epochs mean something for this run: it stops after ``max_epochs``, not after ``max_steps``."""
        return trainer.max_steps is None or trainer.max_steps < 0

    @staticmethod
    def total_steps(trainer: L.Trainer) -> int | None:
        """The optimiser steps of the run: ``max_steps``, else the estimate for ``max_epochs`` (None if unknown)."""
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return trainer.max_steps
        try:
            return _finite(trainer.estimated_stepping_batches)
        except Exception:  # noqa: BLE001  (no length known: a count without a total is still useful)
            return None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open the training bar at the current (resumed) step."""
        if not self._enabled:
            return
        total = self.total_steps(trainer)
        initial = trainer.global_step if total is None else min(trainer.global_step, total)
        self.train_bar = progress(total=total, initial=initial, desc=self._train_desc(trainer), unit="step")

    def _train_desc(self, trainer: L.Trainer) -> str:
        if self.epoch_based(trainer) and trainer.max_epochs is not None and trainer.max_epochs > 0:
            return f"fit (epoch {trainer.current_epoch + 1}/{trainer.max_epochs})"
        return "fit"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Name the epoch in the bar's label when the run is epoch-based."""
        if self.train_bar is not None and self.epoch_based(trainer):
            self.train_bar.set_description(self._train_desc(trainer), refresh=False)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Advance to the trainer's step (several batches per step under gradient accumulation)."""
        bar = self.train_bar
        if bar is None:
            return
        target = trainer.global_step if bar.total is None else min(trainer.global_step, bar.total)
        if target <= bar.n:
            return
        if target % max(1, log_every_n_steps(trainer)) == 0:  # read metrics only when they are logged anyway
            bar.set_postfix(self._metrics(trainer), refresh=False)
        bar.update(target - bar.n)

    def _metrics(self, trainer: L.Trainer) -> dict[str, str]:
        names = list(self.show_metrics)
        checkpoint = trainer.checkpoint_callback
        monitor = getattr(checkpoint, "monitor", None)
        if monitor and monitor not in names:
            names.append(monitor)
        shown = {}
        for name in names:
            value = _scalar(trainer.callback_metrics.get(name))
            if value is not None:
                shown[name.split("/", 1)[-1]] = f"{value:.4g}"
        return shown

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the training bar with the final metrics."""
        if self.train_bar is not None:
            self.train_bar.set_postfix(self._metrics(trainer), refresh=False)
            self.train_bar.close()
            self.train_bar = None

    # ---------------------------------------------------------------- evaluation
    def _open_eval(self, trainer: L.Trainer, desc: str, total: float | int | None) -> None:
        if not self._enabled:
            return
        inside_fit = self.train_bar is not None
        if inside_fit and not is_terminal(sys.stderr):
            return  # in a log file a validation inside fit is summarised by the training line's metrics
        self.eval_bar = progress(total=_finite(total), desc=desc, unit="batch", leave=not inside_fit)

    def _advance_eval(self) -> None:
        if self.eval_bar is not None:
            self.eval_bar.update(1)

    def _close_eval(self, trainer: L.Trainer) -> None:
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None
        if self.train_bar is not None:  # a validation inside fit: show its result on the training line
            self.train_bar.set_postfix(self._metrics(trainer), refresh=True)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open a validation bar (transient inside fit)."""
        desc = "sanity check" if trainer.sanity_checking else "validate"
        self._open_eval(trainer, desc, self.total_val_batches)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """One batch more."""
        self._advance_eval()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the validation bar."""
        self._close_eval(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open the test bar."""
        self._open_eval(trainer, "test", sum(trainer.num_test_batches))

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """One batch more."""
        self._advance_eval()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the test bar."""
        self._close_eval(trainer)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open the predict bar."""
        self._open_eval(trainer, "predict", sum(trainer.num_predict_batches))

    def on_predict_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """One batch more."""
        self._advance_eval()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the predict bar."""
        self._close_eval(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Close any open bar so the error message starts on its own line."""
        for bar in (self.eval_bar, self.train_bar):
            if bar is not None:
                bar.close()
        self.eval_bar = self.train_bar = None
