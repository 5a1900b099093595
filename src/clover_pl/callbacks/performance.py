"""Callbacks for speed and memory: the thread cap, throughput and MFU, ``torch.compile``, Swin recomputation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from clover_pl.models.backbone import CloverBackbone
from clover_pl.models.video_swin import BasicLayer
from clover_pl.trainer_attributes import log_every_n_steps


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
