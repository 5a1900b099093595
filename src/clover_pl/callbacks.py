"""Callbacks of clover-pl runs."""

from __future__ import annotations

import lightning as L
import torch
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
