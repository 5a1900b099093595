"""Checkpointing: Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is always the latest state."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from clover_pl.files import remove_stale_partials
from clover_pl.trainer_attributes import fast_dev_run


class ModelCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) whose ``last.ckpt`` is always the latest state.

    Lightning 2.6 refreshes ``last.ckpt`` only at a step where it also wrote a top-k checkpoint, i.e. when the
    monitored metric improved. After a validation that does not improve, ``last.ckpt`` stays at the older best step,
    so ``--ckpt_path last`` silently resumes from there and repeats the steps since, and "the last checkpoint" of a
    sweep is really the best one. Here every validation end and the end of training also write ``last.ckpt`` when
    ``save_last`` is set and nothing was saved at this step yet. On SIGTERM (a cluster preempting the job)
    ``last.ckpt`` is saved mid-epoch with the data position, so ``--ckpt_path last`` continues loss for loss; the
    ``clover-pl`` command then exits with status 143. Temporary files of interrupted saves
    (:mod:`clover_pl.files`) are deleted when a run starts. Writes go through the trainer's checkpoint IO
    (:class:`clover_pl.checkpoint_io.SafeCheckpointIO` under ``clover-pl``: atomic, beside the target).
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Resolve the folder, then delete the temporary files a crashed save left in it (rank zero)."""
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath:
            for path in remove_stale_partials(str(self.dirpath)):
                rank_zero_info(f"removed {path}, left by an interrupted checkpoint save")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """On SIGTERM (a preempted job) save ``last.ckpt`` where training stands, data position included."""
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException) or not self.save_last or trainer.state.fn != "fit":
            return
        if trainer.sanity_checking or fast_dev_run(trainer):
            return
        if self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved == self.last_model_path:
            rank_zero_info(f"SIGTERM: the state at step {trainer.global_step} is saved already")
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        rank_zero_info(f"SIGTERM: saved step {trainer.global_step} to {self.last_model_path}; exiting with 143")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's saves, then ``last.ckpt`` if they skipped it."""
        super().on_validation_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's end-of-training save, then ``last.ckpt`` at the final step if it is not there yet."""
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return  # also skipped when this step was saved already (top-k and last together)
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
