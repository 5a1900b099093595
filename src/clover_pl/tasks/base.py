"""CloverTask: what the pretraining, retrieval and VideoQA tasks share."""

from __future__ import annotations

import inspect
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig

from clover_pl.models import CloverBackbone
from clover_pl.models.load_report import LoadReport
from clover_pl.tasks.optimization import Optimization, configure_optimization, step_seed
from clover_pl.tasks.pixels import normalize_batch_video
from clover_pl.tasks.self_describing import SelfDescribingTask


class CloverTask(SelfDescribingTask, L.LightningModule):
    """Base of the three tasks: one backbone, one optimisation group, one way to evaluate and to expose results.

    What it does for every task:

    - keeps the injected :class:`~clover_pl.models.CloverBackbone` as ``backbone``;
    - ``configure_optimizers`` from the task's :class:`~clover_pl.tasks.optimization.Optimization` group
      (``model.init_args.optimization.*``), with the learning-rate scales of :meth:`lr_scales`;
    - seeds dropout and drop-path from (``seed``, optimiser step, micro-batch, rank) before each training batch, so a
      resumed run repeats an uninterrupted one exactly (``step_seeded``);
    - normalises uint8 clips on the device, batched (float clips pass unchanged);
    - routes validation and test batches to :meth:`evaluation_step` and the end of those epochs to
      :meth:`evaluation_end`, whose metrics are kept in ``results[stage]`` (``"val"``, ``"test"``): the one place
      callbacks, sweeps and scripts read a task's results from.

    Subclasses call ``super().__init__(backbone, optimization, seed)`` first, then :meth:`record_hyperparameters`.
    """

    def __init__(
        self,
        backbone: CloverBackbone,
        optimization: Optimization | dict[str, Any],
        seed: int,
        step_seeded: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.optimization = Optimization.of(optimization)
        self.seed = seed
        self.step_seeded = step_seeded
        self.results: dict[str, dict[str, float]] = {}
        """Metrics of the last evaluation of each stage (``"val"``, ``"test"``)."""
        self.load_report: LoadReport | None = None
        """What ``init_from`` (or a foreign ``--ckpt_path``) loaded, when it did."""

    def record_hyperparameters(self, ignore: tuple[str, ...] = ()) -> None:
        """Save the calling ``__init__``'s arguments as hyper-parameters (checkpoint, TensorBoard).

        Injected modules (:attr:`MODULE_ARGUMENTS`) are described in the checkpoint instead, and the optimisation
        group is stored as plain values, so the checkpoint loads with ``weights_only=True``.
        """
        frame: FrameType | None = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        self.save_hyperparameters(ignore=[*self.MODULE_ARGUMENTS, "optimization", *ignore], frame=caller)
        self.hparams["optimization"] = self.optimization.as_dict()

    # ---------------------------------------------------------------- training
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise uint8 clips on the device, batched (the lean sample path; float clips pass unchanged)."""
        return normalize_batch_video(batch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Seed model-side randomness from the step, so a resumed run repeats an uninterrupted one."""
        if self.step_seeded:
            micro_batch = batch_idx % self.trainer.accumulate_grad_batches
            torch.manual_seed(step_seed(self.seed, self.global_step, micro_batch, self.global_rank))

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW over decay groups with the group's schedule, stepped every optimiser step."""
        return configure_optimization(self, self.optimization, self.lr_scales())

    def lr_scales(self) -> dict[str, float] | None:
        """``{parameter name prefix: multiplier of lr}``; None: one rate for every parameter."""
        return None

    # -------------------------------------------------------------- evaluation
    def evaluation_step(self, batch: Any) -> None:
        """Score or embed one validation or test batch (collected until :meth:`evaluation_end`)."""
        raise NotImplementedError(f"{type(self).__name__} does not evaluate")

    def evaluation_end(self, stage: str) -> dict[str, float]:
        """The metrics of the whole split, logged as ``<stage>/<name>`` and kept in ``results[stage]``."""
        raise NotImplementedError(f"{type(self).__name__} does not evaluate")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """One validation batch."""
        self.evaluation_step(batch)

    def on_validation_epoch_end(self) -> None:
        """The validation split's metrics (``val/...``; the checkpoint callback selects on one of them)."""
        self.evaluation_end("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """One test batch."""
        self.evaluation_step(batch)

    def on_test_epoch_end(self) -> None:
        """The test split's metrics (``test/...``; only reported, never used for model selection)."""
        self.evaluation_end("test")


def task_results(module: L.LightningModule, stage: str) -> dict[str, float] | None:
    """The last evaluation metrics of a stage (``"val"``, ``"test"``) of a clover-pl task; None for other modules."""
    return module.results.get(stage) if isinstance(module, CloverTask) else None
