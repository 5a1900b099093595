"""Callbacks of clover-pl runs."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


class RetrievalReport(L.Callback):
    """Print the last held-out retrieval figures as a table when fitting ends (rank zero only)."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Print the table, if the task validated at least once."""
        metrics = getattr(pl_module, "last_retrieval", None)
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
        records = getattr(trainer.datamodule, "records", {}).get("predict")
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
        torch.save(content, path + ".tmp")
        os.replace(path + ".tmp", path)
        rank_zero_info(f"wrote {len(video_ids)} video and {len(text_video_index)} caption embeddings to {path}")
