"""RetrievalTask: text-video retrieval with Clover's dual encoders, zero-shot or fine-tuned (spec section 5)."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from clover_pl.losses import VideoTextContrastiveLoss
from clover_pl.models import CloverBackbone, DualEncoderHeads
from clover_pl.models.load_report import LoadReport
from clover_pl.tasks.base import CloverTask
from clover_pl.tasks.evaluation import EmbeddingCollector, retrieval_evaluation
from clover_pl.tasks.optimization import FINE_TUNING, Optimization
from clover_pl.tasks.transfer import read_lightning_state, select_transfer
from clover_pl.types import RetrievalBatch, RetrievalPairBatch

log = logging.getLogger(__name__)
# The weights a retrieval model takes from a pretraining checkpoint: the encoders and the dual-encoder heads.
TRANSFERRED = ("backbone.", "heads.")


def select_dual_encoder(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Take the backbone and projection weights of a (pretraining) state dict, strictly.

    Args:
        state: the checkpoint's ``state_dict``.
        target: the retrieval task's ``state_dict`` (names and shapes wanted).
        origin: the checkpoint path, for messages.

    Returns:
        The selected tensors and a report (loaded keys; keys of the file left aside, e.g. the MLM head).

    Raises:
        ValueError: a wanted key is missing or has another shape (the message names key, shapes and path).
    """
    return select_transfer(state, target, {prefix: prefix for prefix in TRANSFERRED}, origin)


class RetrievalTask(CloverTask):
    """Fine-tunes and evaluates text-video retrieval through the dual encoders only (no fusion re-ranking).

    Training: symmetric InfoNCE over the batch (gathered across GPUs with a correct gradient), temperature 0.05.
    Evaluation: every video and every caption is embedded once; text-to-video and video-to-text R@1/5/10, median
    and mean rank from the full similarity matrix, ties counted against the query, each caption a query and a
    video ranked by its best caption. Validation selects models; the test split is only reported.

    Weights: ``init_from`` takes the backbone and projection heads of a pretraining (or retrieval) checkpoint,
    strictly, with a report; ``clover-pl test --ckpt_path <pretrain.ckpt>`` does the same for zero-shot evaluation.

    Args:
        backbone: the shared encoders.
        init_from: checkpoint whose ``backbone.*`` and ``heads.*`` initialise this task; None keeps the
            backbone's own initialisation.
        embed_dim: width of the contrastive space.
        temperature: fixed softmax temperature of the fine-tuning loss.
        optimization: optimiser and schedule (``model.init_args.optimization.*``; the release's fine-tuning values
            by default: ``lr=1.2e-5`` at its global batch, ``weight_decay=0.01``, ``min_lr_ratio=0``).
        seed: base of the per-step seed of dropout and drop-path (a resumed run repeats an uninterrupted one).
        allow_random_init: let ``fit`` start without pretrained weights (no ``init_from``, no ``--ckpt_path``, and
            not both a Swin checkpoint and a BERT directory in the backbone); otherwise fit stops, naming
            ``init_from``.
    """

    WEIGHT_ARGUMENTS = ("init_from",)
    GUARDED = True

    def __init__(
        self,
        backbone: CloverBackbone,
        init_from: str | None = None,
        embed_dim: int = 768,
        temperature: float = 0.05,
        optimization: Optimization = FINE_TUNING,
        seed: int = 0,
        allow_random_init: bool = False,
    ) -> None:
        super().__init__(backbone, optimization, seed)
        self.record_hyperparameters()
        # Retrieval runs through the dual encoders only: the fusion encoder (and the video mask token) is kept (its
        # weights stay in the checkpoint) but not trained, since an unused trainable parameter would stop DDP.
        backbone.freeze(["fusion", "mask_token"])
        self.heads = DualEncoderHeads(backbone.video_dim, backbone.text_dim, embed_dim, temperature)
        self.loss = VideoTextContrastiveLoss(temperature=temperature)
        self._evaluation = EmbeddingCollector()
        if init_from is not None:
            self.load_report = self.initialise_from(init_from)

    def initialise_from(self, path: str) -> LoadReport:
        """Copy the backbone and projection heads of a checkpoint into this task.

        Args:
            path: a Lightning checkpoint of a pretraining or retrieval run.

        Returns:
            What was loaded and what was left aside.
        """
        selected, report = select_dual_encoder(read_lightning_state(path), self.state_dict(), path)
        self.load_state_dict(selected, strict=False)
        log.info("retrieval weights: %s", report.summary())
        return report

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Accept a pretraining checkpoint in ``--ckpt_path`` (zero-shot test): keep its backbone and heads only."""
        state = checkpoint["state_dict"]
        if set(state) != set(self.state_dict()):
            checkpoint["state_dict"], self.load_report = select_dual_encoder(state, self.state_dict(), "--ckpt_path")
            rank_zero_info(f"retrieval weights: {self.load_report.summary()}")

    # ---------------------------------------------------------------- training
    def embed(
        self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dual-encoder embeddings (not normalised): video (B, T, C, H, W) -> (B, E); texts (N, L) -> (N, E)."""
        video_embedding = self.heads.project_video(self.backbone.encode_video(video))
        text_embedding = self.heads.project_text(self.backbone.encode_text(input_ids, attention_mask))
        return video_embedding, text_embedding

    def training_step(self, batch: RetrievalPairBatch, batch_idx: int) -> torch.Tensor | None:
        """Symmetric InfoNCE between the clips and their captions (a batch whose clips all failed is skipped)."""
        if batch["video"].shape[0] == 0:
            return None
        video, text = self.embed(batch["video"], batch["input_ids"], batch["attention_mask"])
        terms = self.loss(video, text)
        self.log_dict(
            {"train/loss": terms["loss"], "train/loss_video_to_text": terms["loss_video_to_text"]},
            batch_size=batch["video"].shape[0],
        )
        return terms["loss"]

    # -------------------------------------------------------------- evaluation
    def evaluation_step(self, batch: RetrievalBatch) -> None:
        """Embed a batch of the split's videos and captions."""
        video, text = self.embed(batch["video"], batch["input_ids"], batch["attention_mask"])
        self._evaluation.add(
            video=video, video_index=batch["video_index"], text=text, text_video_index=batch["text_video_index"]
        )

    def evaluation_end(self, stage: str) -> dict[str, float]:
        """Rank the whole split; logs ``<stage>/t2v_r@1`` ... (``val/t2v_r_sum`` selects checkpoints)."""
        parts = self._evaluation.gather()  # every rank takes part, also one that had no video
        if not parts:
            return {}
        metrics = retrieval_evaluation(parts["video"], parts["video_index"], parts["text"], parts["text_video_index"])
        self.log_dict({f"{stage}/{name}": value.float() for name, value in metrics.items()})
        values = {name: float(value) for name, value in metrics.items()}
        self.results[stage] = values
        rank_zero_info(format_retrieval_table(values, f"{stage} retrieval after {self.global_step} steps"))
        return values

    def predict_step(self, batch: RetrievalBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """L2-normalised embeddings of a batch's videos and captions, with their video indices."""
        video, text = self.embed(batch["video"], batch["input_ids"], batch["attention_mask"])
        return {
            "video": F.normalize(video, dim=-1).float().cpu(),
            "video_index": batch["video_index"].cpu(),
            "text": F.normalize(text, dim=-1).float().cpu(),
            "text_video_index": batch["text_video_index"].cpu(),
        }


def format_retrieval_table(metrics: dict[str, float], title: str) -> str:
    """A Markdown table of both directions' recall and ranks."""
    lines = [
        f"{title} ({int(metrics['gallery'])} videos; chance R@1 {metrics['chance_r@1']:.2f})",
        "| direction | R@1 | R@5 | R@10 | median rank | mean rank |",
        "|---|---|---|---|---|---|",
    ]
    for direction, name in (("t2v", "text-to-video"), ("v2t", "video-to-text")):
        lines.append(
            f"| {name} | {metrics[f'{direction}_r@1']:.1f} | {metrics[f'{direction}_r@5']:.1f} | "
            f"{metrics[f'{direction}_r@10']:.1f} | {metrics[f'{direction}_median_rank']:.1f} | "
            f"{metrics[f'{direction}_mean_rank']:.1f} |"
        )
    return "\n".join(lines)
