"""Callbacks that write down what a run measured: the retrieval table, the metrics file of a sweep cell, embeddings."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from clover_pl.files import atomic_open
from clover_pl.tasks.base import task_results
from clover_pl.trainer_attributes import attached_datamodule


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
