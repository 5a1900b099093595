"""PretrainTask: Clover pretraining with tri-modal alignment, pair-wise ranking and MLM (spec section 3)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from clover_pl.losses import CloverObjective, PretrainFeatures
from clover_pl.models import CloverBackbone, DualEncoderHeads, FusedHeads, MLMHead
from clover_pl.tasks.base import CloverTask
from clover_pl.tasks.evaluation import EmbeddingCollector, retrieval_evaluation
from clover_pl.tasks.optimization import PRETRAINING, Optimization
from clover_pl.types import HeldOutBatch, PretrainBatch

LEGACY_OBJECTIVE_ARGUMENTS = {
    **{name: name for name in list(inspect.signature(CloverObjective.__init__).parameters)[1:]},
    "objective_weighting": "weighting",
}
"""PretrainTask arguments that moved into :class:`~clover_pl.losses.CloverObjective` (old name -> new name)."""


class PretrainTask(CloverTask):
    """Pretrains the injected backbone with the injected objective; validates by zero-shot text-to-video retrieval.

    Per step (full objective): two video passes (complete and masked), two text passes (complete and masked) and
    two fusion passes, fused(masked video, text) and fused(video, masked text) (spec 3.1); the objective
    (:class:`~clover_pl.losses.CloverObjective`) says which of them it needs, composes the terms and returns them
    named, with their total. The task encodes and logs (``train/loss``, ``train/loss_<term>``).

    Args:
        backbone: the shared encoders.
        objective: the pretraining objective, its switches and weights (``model.init_args.objective.init_args.*``;
            the paper's ablations are settings of it). None: full Clover.
        bert_path: local BERT directory that initialises the MLM head (``cls.predictions``); None for random init.
        embed_dim: width of the contrastive space.
        optimization: optimiser and schedule (``model.init_args.optimization.*``; the release's pretraining values
            by default, ``lr=5e-5``, ``weight_decay=0.005``, ``min_lr_ratio=1e-3``).
        step_seeded: reseed torch's generator from (``seed``, global step) before each step, so dropout and
            drop-path do not depend on history and a resumed run repeats an uninterrupted one exactly.
        seed: base of the per-step seed.

    ``PretrainTask.load_from_checkpoint(path)`` rebuilds the task from its checkpoint alone (the backbone and the
    objective are described in it); ``bert_path`` is then not read again.
    """

    MODULE_ARGUMENTS = ("backbone", "objective")
    WEIGHT_ARGUMENTS = ("bert_path",)

    def __init__(
        self,
        backbone: CloverBackbone,
        objective: CloverObjective | None = None,
        bert_path: str | None = None,
        embed_dim: int = 768,
        optimization: Optimization = PRETRAINING,
        step_seeded: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone, optimization, seed, step_seeded)
        self.objective = objective if objective is not None else CloverObjective()
        self.record_hyperparameters()
        objective = self.objective
        self.heads = DualEncoderHeads(backbone.video_dim, backbone.text_dim, embed_dim, objective.temperature)
        # What the switches leave unused is frozen: an unused trainable parameter stops DDP at its second step.
        if not objective.needs_masked_video:
            backbone.freeze(["mask_token"])  # no masked-video pass
        if not objective.needs_fused_masked_text:
            backbone.freeze(["fusion"])  # no fusion pass
        self.fused_heads = FusedHeads(backbone.text_dim, embed_dim) if objective.fused_candidates else None
        self.mlm_head = None
        if objective.use_mlm:
            self.mlm_head = MLMHead(
                backbone.text_dim,
                backbone.text.vocab_size,
                pretrained_path=bert_path,
                layer_norm_eps=backbone.text.bert.config.layer_norm_eps,
            )
            if self.mlm_head.decoder.out_features != backbone.text.vocab_size:
                raise ValueError(
                    f"MLM head vocabulary ({self.mlm_head.decoder.out_features}) differs from the text encoder's "
                    f"({backbone.text.vocab_size}); use the same BERT directory for both"
                )
        self._validation = EmbeddingCollector()
        self.last_validation_embeddings: dict[str, torch.Tensor] | None = None

    @classmethod
    def module_from_hyperparameters(cls, name: str, hparams: dict[str, Any]) -> torch.nn.Module | None:
        """The objective of a checkpoint written before it was a module: rebuilt from the task's old arguments."""
        if name != "objective":
            return None
        return CloverObjective(
            **{new: hparams[old] for old, new in LEGACY_OBJECTIVE_ARGUMENTS.items() if old in hparams}
        )

    # ---------------------------------------------------------------- training
    def encode(self, batch: PretrainBatch) -> PretrainFeatures:
        """The features the objective needs for one batch (no more passes than its switches ask for).

        Args:
            batch: a pretraining batch (video or image clips with captions and masks).
        """
        backbone, objective = self.backbone, self.objective
        text_mask = batch["attention_mask"]
        video_tokens = backbone.encode_video(batch["video"])
        text_states = backbone.encode_text(batch["input_ids"], text_mask)
        features = PretrainFeatures(
            video=self.heads.project_video(video_tokens), text=self.heads.project_text(text_states)
        )
        if not objective.needs_masked_text:
            return features  # the baseline without MLM: video-text contrastive only
        masked_text_states = backbone.encode_text(batch["masked_input_ids"], text_mask)
        masked_video_tokens = None
        if objective.needs_masked_video:
            masked_video_tokens = backbone.encode_video(batch["video"], batch["video_mask"])
        fused_masked_text = None  # fused(video, masked text): MLM's input and the text anchor's fused candidate
        if objective.needs_fused_masked_text:
            fused_masked_text = backbone.fuse(video_tokens, masked_text_states, text_mask)
        if masked_video_tokens is not None and objective.masked_candidates:
            features.masked_text = self.heads.project_text(masked_text_states)
            features.masked_video = self.heads.project_video(masked_video_tokens)
        if masked_video_tokens is not None and fused_masked_text is not None and self.fused_heads is not None:
            fused_masked_video = backbone.fuse(masked_video_tokens, text_states, text_mask)
            features.fused_masked_video = self.fused_heads.video(fused_masked_video.cls)
            features.fused_masked_text = self.fused_heads.text(fused_masked_text.cls)
        if fused_masked_text is not None and self.mlm_head is not None:
            features.mlm_logits = self.mlm_head(fused_masked_text.text)
            features.mlm_labels = batch["mlm_labels"]
        return features

    def compute_losses(self, batch: PretrainBatch) -> dict[str, torch.Tensor]:
        """Every active term of the objective for one batch, and their weighted total under ``"loss"``."""
        world_size = self._trainer.world_size if self._trainer is not None else 1
        return self.objective(self.encode(batch), world_size)

    def training_step(self, batch: PretrainBatch, batch_idx: int) -> torch.Tensor:
        """One optimiser step's loss; logs every term as ``train/loss_<term>``."""
        terms = self.compute_losses(batch)
        logged = {
            "train/loss" if name == "loss" else f"train/{name if name.endswith('accuracy') else 'loss_' + name}": value
            for name, value in terms.items()
        }
        self.log_dict(logged, batch_size=batch["video"].shape[0])
        return terms["loss"]

    # -------------------------------------------------------------- validation
    def evaluation_step(self, batch: HeldOutBatch) -> None:
        """Embed held-out clips and captions with the dual encoders (no fusion, as Clover's retrieval)."""
        video = self.heads.project_video(self.backbone.encode_video(batch["video"]))
        text = self.heads.project_text(self.backbone.encode_text(batch["input_ids"], batch["attention_mask"]))
        self._validation.add(video=video, text=text, id=batch["id"])

    def evaluation_end(self, stage: str) -> dict[str, float]:
        """Zero-shot text-to-video retrieval over the whole held-out set; logs ``val/t2v_r@1`` and friends."""
        parts = self._validation.gather()  # every rank takes part, also one that had no held-out shard
        if not parts:
            return {}
        # Kept for the retrieval-examples picture (clover_pl.callbacks.Pictures); CPU, the whole held-out set.
        self.last_validation_embeddings = {
            "video": parts["video"],
            "video_ids": parts["id"],
            "text": parts["text"],
            "text_video_ids": parts["id"],
        }
        metrics = retrieval_evaluation(parts["video"], parts["id"], parts["text"], parts["id"])
        metrics = {k: v for k, v in metrics.items() if not k.startswith("v2t_")}
        self.log_dict({f"{stage}/{k}": v.float() for k, v in metrics.items() if k != "gallery"})
        self.results[stage] = {k: float(v) for k, v in metrics.items()}
        return self.results[stage]
