"""Callbacks of clover-pl runs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from clover_pl.files import atomic_open, remove_stale_partials
from clover_pl.models.backbone import CloverBackbone
from clover_pl.models.video_swin import BasicLayer
from clover_pl.tasks.base import task_results
from clover_pl.trainer_attributes import attached_datamodule, fast_dev_run, log_every_n_steps


class RetrievalReport(L.Callback):
    """Print the last held-out retrieval figures as a table when fitting ends (rank zero only)."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Print the table, if the task validated at least once."""
        metrics = task_results(pl_module, "val")
        if not metrics:
            rank_zero_info("no held-out retrieval figures: validation never ran")
            return
        gallery = int(metrics["gallery"])
        chance = metrics["chance_r@1"]
        lines = [
            f"held-out text-to-video retrieval after {trainer.global_step} steps ({gallery} videos, one caption each)",
            "| R@1 | R@5 | R@10 | median rank | mean rank | chance R@1 | R@1 / chance |",
            "|---|---|---|---|---|---|---|",
            f"| {metrics['t2v_r@1']:.1f} | {metrics['t2v_r@5']:.1f} | {metrics['t2v_r@10']:.1f} | "
            f"{metrics['t2v_median_rank']:.1f} | {metrics['t2v_mean_rank']:.1f} | {chance:.2f} | "
            f"{metrics['t2v_r@1'] / chance:.1f}x |",
        ]
        rank_zero_info("\n".join(lines))


class ThreadLimit(L.Callback):
    """Cap the intra-op threads of the training process.

    On a machine with few cores the DataLoader workers need cores too; when torch's threads and the workers
    together outnumber the cores, OpenMP's busy-waiting threads slow a step down many times over (measured on
    2 cores: 0.25 s per quickstart step with one compute thread, about 3 s with two).

    Args:
        num_threads: threads for torch's intra-op parallelism in the training process.
    """

    def __init__(self, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.num_threads = num_threads

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Apply the cap before any step runs."""
        torch.set_num_threads(self.num_threads)


class EmbeddingWriter(BasePredictionWriter):
    """Write the embeddings of ``clover-pl predict`` to ``<output_dir>/embeddings.pt``, with the ids, to index a corpus.

    The file holds ``video`` (Nv, E) and ``text`` (Nt, E) L2-normalised float32 embeddings, ``video_ids`` (the
    manifest's ids, in the row order of ``video``), ``captions`` and ``text_video_index`` (row of each caption's video).
    Every rank's rows are gathered first; rank zero writes the file atomically. Load it with
    ``torch.load(path, weights_only=True)``.

    Args:
        output_dir: folder of ``embeddings.pt``.
    """

    def __init__(self, output_dir: str) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = output_dir

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        """Gather, order by video and save."""
        from clover_pl.losses.gather import gather_uneven

        parts = {
            key: gather_uneven(torch.cat([batch[key] for batch in predictions]))
            for key in ("video", "video_index", "text", "text_video_index")
        }
        order = torch.argsort(parts["video_index"], stable=True)
        video_index = parts["video_index"][order]
        keep = torch.ones_like(video_index, dtype=torch.bool)
        keep[1:] = video_index[1:] != video_index[:-1]
        video_index = video_index[keep]
        text_order = torch.argsort(parts["text_video_index"], stable=True)
        text_video_index = torch.searchsorted(video_index, parts["text_video_index"][text_order])
        records = getattr(attached_datamodule(trainer), "records", {}).get("predict")
        video_ids = [records[int(i)]["video_id"] for i in video_index] if records else video_index.tolist()
        captions = [caption for i in video_index for caption in records[int(i)]["captions"]] if records else []
        if trainer.global_rank != 0:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, "embeddings.pt")
        content = {
            "video": parts["video"][order][keep],
            "video_ids": video_ids,
            "text": parts["text"][text_order],
            "text_video_index": text_video_index,
            "captions": captions,
        }
        with atomic_open(path, "wb") as stream:
            torch.save(content, stream)
        rank_zero_info(f"wrote {len(video_ids)} video and {len(text_video_index)} caption embeddings to {path}")


class MetricsFile(L.Callback):
    """Write a run's evaluation metrics to a JSON file, so that another process (``clover-pl sweep``) can read them.

    The file is rewritten atomically (temporary file, fsync, rename) after every validation and test epoch and when
    fitting ends; rank zero writes ``path`` and rank ``r`` > 0 writes ``path.rank<r>`` (:meth:`path_for_rank`), so
    that each process of a multi-process launch (``srun``, ``torchrun``) can read its own. It holds
    ``{"global_step": int, "stages": {"val" | "test": {name: float}}, "best_model_path": str | None,
    "last_model_path": str | None}``. A stage's metrics are the task's ``results[stage]`` when it has one,
    else the scalars logged as ``<stage>/<name>`` in ``trainer.callback_metrics``, with the prefix removed.
    Checkpoint paths are those of the Trainer's first ``ModelCheckpoint`` (``best_model_path`` is None when it
    monitors nothing).

    Args:
        path: the JSON file to write.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.content: dict[str, Any] = {
            "global_step": 0,
            "stages": {},
            "best_model_path": None,
            "last_model_path": None,
        }

    @staticmethod
    def path_for_rank(path: str, rank: int) -> str:
        """The file written by global rank ``rank``: ``path`` for rank zero, ``path.rank<rank>`` otherwise."""
        return path if rank == 0 else f"{path}.rank{rank}"

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the validation metrics (not those of the sanity check)."""
        if not trainer.sanity_checking:
            self._record(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the test metrics."""
        self._record(trainer, pl_module, "test")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record where the fit left its checkpoints."""
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None:
            self.content["best_model_path"] = getattr(checkpoint, "best_model_path", "") or None
            self.content["last_model_path"] = getattr(checkpoint, "last_model_path", "") or None
        self._write(trainer)

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        metrics: Mapping[str, float | torch.Tensor] | None = task_results(pl_module, stage)
        if not metrics:
            prefix = f"{stage}/"
            metrics = {
                name[len(prefix) :]: value
                for name, value in trainer.callback_metrics.items()
                if name.startswith(prefix)
            }
        scalars = {}
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars[name] = float(value)
        self.content["stages"][stage] = scalars
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        self.content["global_step"] = int(trainer.global_step)
        path = self.path_for_rank(self.path, trainer.global_rank)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_open(path, "w", encoding="utf-8") as stream:
            json.dump(self.content, stream, indent=1, sort_keys=True)


class SpeedMonitor(L.Callback):
    """Log training throughput and model-FLOPs utilisation: ``perf/clips_per_s``, ``perf/tflops``, ``perf/mfu``.

    Nothing is read back from the device: the FLOPs of a batch come from its shapes through
    :func:`clover_pl.flops.task_step_flops` (PretrainTask only; other tasks log clips/s alone), and the time is the
    host's clock between batch boundaries, averaged over a window of ``window`` batches. The host can run ahead of the
    device only by a bounded queue of kernels, so over a window of many steps the host's rate is the device's; the
    first window after the start or a validation also holds the data loader's start-up. Values go straight to the
    loggers as Python floats from global rank zero (``self.log`` would copy each one to the device, which waits for
    the queue on CUDA).

    ``perf/clips_per_s`` counts all ranks (this rank's clips times the world size: every rank runs batches of the
    same size); ``perf/tflops`` is the model TFLOP/s achieved by one device; ``perf/mfu`` is that over
    ``peak_tflops``.

    Args:
        peak_tflops: dense peak TFLOP/s of one device at the training precision (about 790 for an H200 in bf16, see
            docs/scale.md); None logs no MFU.
        window: batches per measurement; None uses the trainer's ``log_every_n_steps``.
    """

    def __init__(self, peak_tflops: float | None = None, window: int | None = None) -> None:
        if peak_tflops is not None and peak_tflops <= 0:
            raise ValueError(f"peak_tflops must be positive, got {peak_tflops}")
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.peak_tflops = peak_tflops
        self.window = window
        self._flops_cache: dict[tuple[int, ...], int] = {}
        self._counts_flops = False
        self.last_metrics: dict[str, float] = {}
        self._reset()

    def _reset(self) -> None:
        self._start = time.perf_counter()
        self._batches = 0
        self._clips = 0
        self._flops = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the first window."""
        from clover_pl.tasks import PretrainTask

        self._counts_flops = isinstance(pl_module, PretrainTask)
        self._reset()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Leave validation out of the training throughput: start a new window."""
        self._reset()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Count the batch's clips and FLOPs from its shapes."""
        from clover_pl.flops import task_step_flops

        video = batch.get("video") if isinstance(batch, dict) else None
        if video is None:  # not a clip batch: nothing to count
            return
        self._clips += int(video.shape[0])
        if self._counts_flops:
            key = (*video.shape, *batch["input_ids"].shape)
            if key not in self._flops_cache:
                self._flops_cache[key] = task_step_flops(pl_module, batch).total
            self._flops += self._flops_cache[key]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log the window's averages once it is full."""
        self._batches += 1
        if self._batches < (self.window or log_every_n_steps(trainer)):
            return
        seconds = time.perf_counter() - self._start
        metrics = {"perf/clips_per_s": self._clips * trainer.world_size / seconds}
        if self._counts_flops:
            tflops = self._flops / seconds / 1e12
            metrics["perf/tflops"] = tflops
            if self.peak_tflops is not None:
                metrics["perf/mfu"] = tflops / self.peak_tflops
        self.last_metrics = metrics
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        self._reset()


def compile_encoders(backbone: torch.nn.Module, parts: Sequence[str], mode: str | None, dynamic: bool | None) -> None:
    """``torch.compile`` encoders of a backbone in place (``nn.Module.compile``: parameter names do not change)."""
    for part in parts:
        encoder = getattr(backbone, part)
        if getattr(encoder, "_compiled_call_impl", None) is None:
            encoder.compile(mode=mode, dynamic=dynamic)


class CompileEncoders(L.Callback):
    """Compile the backbone's encoders with ``torch.compile`` before the run.

    The encoders are compiled in place, so checkpoints keep their parameter names and load without compiling. Each
    new input shape (video clips, one-frame images, evaluation clips) compiles its own graph once.

    Args:
        parts: encoders of ``model.backbone`` to compile: any of ``video``, ``text``, ``fusion``.
        mode: ``torch.compile`` mode (None: the default; ``max-autotune-no-cudagraphs`` tunes matmuls longer).
        dynamic: compile for dynamic shapes; False (default) compiles one static graph per shape.
    """

    def __init__(
        self, parts: Sequence[str] = ("video", "text", "fusion"), mode: str | None = None, dynamic: bool | None = False
    ) -> None:
        unknown = [part for part in parts if part not in ("video", "text", "fusion")]
        if unknown:
            raise ValueError(f"unknown encoders {unknown}; valid: video, text, fusion")
        self.parts = tuple(parts)
        self.mode = mode
        self.dynamic = dynamic

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Compile before the strategy wraps the model (DDP then reduces the compiled encoders' gradients)."""
        backbone = pl_module.backbone
        if not isinstance(backbone, torch.nn.Module):
            raise TypeError(f"CompileEncoders compiles a module's backbone, got a {type(backbone).__name__}")
        compile_encoders(backbone, self.parts, self.mode, self.dynamic)


class SwinActivationCheckpointing(L.Callback):
    """Recompute the blocks of chosen Video Swin stages in the backward pass instead of storing their activations.

    Trades compute (one more forward of those blocks) for memory, so that a larger batch fits. The same switch as
    the video encoder's ``activation_checkpointing``, but per stage: at the base size, stage 3 (18 of the 24 blocks)
    holds most of the activations.

    Args:
        stages: 0-based stage indices to checkpoint; None for every stage.
    """

    def __init__(self, stages: Sequence[int] | None = None) -> None:
        self.stages = None if stages is None else tuple(stages)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Set each stage's checkpointing switch."""
        backbone = pl_module.backbone
        if not isinstance(backbone, CloverBackbone):
            raise TypeError(f"SwinActivationCheckpointing needs a CloverBackbone, got a {type(backbone).__name__}")
        layers = backbone.video.layers
        if self.stages is not None and any(not 0 <= index < len(layers) for index in self.stages):
            raise ValueError(f"stages {list(self.stages)} out of range for a {len(layers)}-stage video encoder")
        for index, layer in enumerate(layers):
            assert isinstance(layer, BasicLayer)  # a Video Swin stage
            layer.activation_checkpointing = self.stages is None or index in self.stages


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
