"""What a run puts in TensorBoard besides Lightning's scalars.

The selection metric in the hparams view, and at each validation two pictures (training clips as the model receives
them; held-out retrieval examples).

Both callbacks are added to every run with a TensorBoardLogger by :class:`clover_pl.lightning_cli.CloverCLI`;
name one in a config's ``trainer.callbacks`` to change its arguments (``Pictures(max_clips=0, num_queries=0)``
draws nothing).
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from clover_pl.callbacks.validation_gallery import GalleryCollector, ValidationGallery
from clover_pl.trainer_attributes import attached_datamodule


def tensorboard_loggers(trainer: L.Trainer) -> list[TensorBoardLogger]:
    """The trainer's TensorBoard loggers."""
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def selection_metric(trainer: L.Trainer) -> str | None:
    """The metric the run selects checkpoints by: the ``monitor`` of its first ModelCheckpoint that has one."""
    for callback in trainer.checkpoint_callbacks:
        monitor = getattr(callback, "monitor", None)
        if monitor:
            return str(monitor)
    return None


def logged_step(trainer: L.Trainer) -> int:
    """The step Lightning gives the metrics logged now, so that pictures line up with the validation scalars.

    While fitting, Lightning counts the batches that stepped the optimiser *before* the current one's increment
    (a validation after ``global_step`` N is logged at step N - 1); elsewhere, ``global_step``.
    """
    if trainer.state.fn == "fit":
        return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))
    return int(trainer.global_step)


class SelectionMetricHParams(L.Callback):
    """Show the run's selection metric (e.g. ``val/t2v_r_sum``) in TensorBoard's hparams view, not ``hp_metric=-1``.

    When training starts, the hyper-parameters Lightning logged are written as an hparams session whose metric is
    the selection metric; TensorBoard reads the metric's values from its scalar curve, so nothing placeholder is
    ever written. (The CLI switches off the logger's ``default_hp_metric``.)

    Args:
        metric: the metric's logged name; None takes the ``monitor`` of the run's ModelCheckpoint.
    """

    def __init__(self, metric: str | None = None) -> None:
        self.metric = metric

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the hparams session with the selection metric."""
        from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
        from torch.utils.tensorboard.summary import hparams

        metric = self.metric or selection_metric(trainer)
        if metric is None:
            return
        for logger in tensorboard_loggers(trainer):
            params = dict(_convert_params(logger.hparams)) or dict(pl_module.hparams)
            params = logger._sanitize_params(_flatten_dict(params))
            experiment, start, end = hparams(params, {metric: 0.0})  # only the name is written: values come from
            writer = logger.experiment._get_file_writer()  # the metric's scalar curve
            for summary in (experiment, start, end):
                writer.add_summary(summary)


class Pictures(GalleryCollector):
    """At each validation, log two images to TensorBoard (global rank zero).

    - ``pictures/training_clips``: the last training batch's first clips as the model received them (frames after
      the random crop, the masked-video cells in red), with the masked caption and the words to recover;
    - ``pictures/retrieval_examples``: a few held-out caption queries (the same every validation), their top clips
      among the whole held-out set, the true clip framed, for a task that exposes its validation embeddings
      (``last_validation_embeddings``, as :class:`clover_pl.tasks.PretrainTask`).

    Per training step it only copies the first ``max_clips`` samples of the batch on their device (no host sync);
    the drawing happens after validation. ``last_seconds`` holds the drawing time of the last validation.

    Args:
        max_clips: training clips drawn (0: no training picture).
        max_frames: frames per training clip.
        num_queries: retrieval queries drawn (0: no retrieval picture).
        top_k: clips per query.
        max_gallery: held-out clips whose thumbnails are kept (a top clip beyond them is an empty box).
    """

    def __init__(
        self, max_clips: int = 4, max_frames: int = 4, num_queries: int = 4, top_k: int = 5, max_gallery: int = 1024
    ) -> None:
        self.max_clips = max_clips
        self.max_frames = max_frames
        self.num_queries = num_queries
        self.top_k = top_k
        self.gallery = ValidationGallery(max_gallery)
        self._batch: dict[str, torch.Tensor] | None = None
        self._tokenizer: Any = None
        self.last_seconds = 0.0
        self._warned = False

    def collecting(self) -> bool:
        """Held-out clips are kept only when retrieval examples are drawn."""
        return self.num_queries > 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Keep a copy of the batch's first clips (a video batch is preferred over an image batch)."""
        if self.max_clips <= 0 or not trainer.is_global_zero or not isinstance(batch, dict):
            return
        if not {"video", "masked_input_ids", "mlm_labels", "attention_mask"} <= batch.keys():
            return
        is_video = batch["video"].shape[1] > 1
        if self._batch is not None and self._batch["video"].shape[1] > 1 and not is_video:
            return
        self._batch = {
            key: value[: self.max_clips].detach().clone()
            for key, value in batch.items()
            if isinstance(value, torch.Tensor)
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw and log both pictures."""
        loggers = tensorboard_loggers(trainer)
        if trainer.sanity_checking or not trainer.is_global_zero or not loggers:
            return
        start = time.perf_counter()
        try:
            images = self.draw(trainer, pl_module)
        except Exception as error:  # noqa: BLE001  (a picture must never stop a long run)
            if not self._warned:
                rank_zero_warn(f"TensorBoard pictures not drawn: {type(error).__name__}: {error}")
                self._warned = True
            return
        step = logged_step(trainer)
        for logger in loggers:
            for tag, image in images.items():
                logger.experiment.add_image(tag, image, step, dataformats="HWC")
        self.last_seconds = time.perf_counter() - start

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The pictures of this validation, as (H, W, 3) uint8 arrays by TensorBoard tag."""
        from clover_pl.callbacks.drawing import draw_retrieval_examples, draw_training_clips, figure_to_array

        tokenizer = self.tokenizer(trainer)
        images = {}
        if self._batch is not None and tokenizer is not None:
            batch = {key: value.cpu() for key, value in self._batch.items()}
            figure = draw_training_clips(batch, tokenizer, self.max_clips, self.max_frames, trainer.global_step)
            images["pictures/training_clips"] = figure_to_array(figure)
        embeddings = getattr(pl_module, "last_validation_embeddings", None)
        if embeddings and tokenizer is not None and self.num_queries > 0:
            examples = self.gallery.examples(embeddings, tokenizer, self.num_queries, self.top_k)
            if examples:
                from matplotlib.figure import Figure

                height = 1.9 * len(examples) + 0.5
                figure = Figure(figsize=(1.6 * (self.top_k + 1), height))
                # Fixed margins: the constrained layout solver would cost seconds at every validation.
                figure.subplots_adjust(
                    left=0.01, right=0.99, bottom=0.04, top=1 - 0.6 / height, wspace=0.08, hspace=0.38
                )
                draw_retrieval_examples(figure, examples, self.gallery.thumbnails, trainer.global_step)
                images["pictures/retrieval_examples"] = figure_to_array(figure)
        return images

    def tokenizer(self, trainer: L.Trainer) -> Any:
        """The datamodule's tokenizer (``data.init_args.tokenizer``), loaded once; None without one."""
        if self._tokenizer is None:
            path = getattr(getattr(attached_datamodule(trainer), "hparams", None), "tokenizer", None)
            if isinstance(path, str):
                from clover_pl.data.text import load_tokenizer

                self._tokenizer = load_tokenizer(path)
        return self._tokenizer
