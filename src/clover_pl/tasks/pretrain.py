"""PretrainTask: Clover pretraining with tri-modal alignment, pair-wise ranking and MLM (spec section 3)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from clover_pl.losses import (
    MaskedLanguageModelingLoss,
    TriModalAlignmentLoss,
    VideoTextContrastiveLoss,
)
from clover_pl.models import CloverBackbone, DualEncoderHeads, FusedHeads, MLMHead
from clover_pl.tasks.evaluation import EmbeddingCollector, retrieval_evaluation
from clover_pl.tasks.optimization import check_schedule_arguments, configure_from_hparams, step_seed
from clover_pl.tasks.pixels import normalize_batch_video
from clover_pl.tasks.self_describing import SelfDescribingTask
from clover_pl.types import PretrainBatch, RetrievalBatch

OBJECTIVE_WEIGHTINGS = ("gradient_correct", "release")
"""Values of ``objective_weighting``."""


class PretrainTask(SelfDescribingTask, L.LightningModule):
    """Pretrains the injected backbone with Clover's objective; validates by zero-shot text-to-video retrieval.

    Per step (full objective): two video passes (complete and masked), two text passes (complete and masked) and
    two fusion passes, fused(masked video, text) and fused(video, masked text) (spec 3.1). Losses:

    - ``tma_video``: video anchored against {text, masked text, fused(masked video, text)} and
      ``tma_text``: text anchored against {video, masked video, fused(video, masked text)}, exclusive InfoNCE;
    - ``rank_video`` / ``rank_text``: the complete candidate beats the masked one by ``rank_margin`` logits;
    - ``mlm``: focal loss on the masked positions of fused(video, masked text).

    Switches give the paper's ablations; ``use_tma=False`` is the pair-wise baseline (video-text InfoNCE + MLM).

    Args:
        backbone: the shared encoders.
        bert_path: local BERT directory that initialises the MLM head (``cls.predictions``); None for random init.
        embed_dim: width of the contrastive space.
        temperature: fixed softmax temperature (0.05).
        use_tma: tri-modal alignment; False trains the pair-wise baseline.
        use_masked: masked text / masked video as alignment candidates (and the ranking loss).
        use_fused: fused candidates in the alignment.
        use_ranking: pair-wise ranking between complete and masked candidates.
        use_mlm: masked language modelling.
        rank_margin: ranking margin in logit units (5, i.e. 0.25 in cosine at temperature 0.05).
        focal_gamma: focal-loss exponent of the MLM term (0 gives cross-entropy).
        weight_tma: weight of each alignment term.
        weight_rank: weight of each ranking term.
        weight_mlm: weight of the MLM term.
        weight_contrastive: weight of the baseline's video-text InfoNCE.
        objective_weighting: ``"gradient_correct"`` (default: the weights above are the weights of the gradient,
            as one process holding the global batch would train) or ``"release"``: the alignment, ranking and
            baseline contrastive terms are divided by the world size, reproducing the official release, whose
            gather returned only the local slice of the gradient, so with DDP's averaging those terms weighed
            1/W against MLM (1/32 in the published run; spec 3.8). The logged terms are the same either way.
        lr: peak learning rate (5e-5 for every module in the release).
        weight_decay: AdamW decay (0.005), not applied to norms, biases and Swin position tables.
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_fraction: linear warmup as a fraction of the run's optimiser steps (a tenth in every release config).
        warmup_steps: warmup in optimiser steps; overrides ``warmup_fraction`` when set.
        lr_schedule: ``"warmup_cosine"`` (default: warmup to ``lr``, then cosine over the remaining steps) or
            ``"release"`` (the release's cosine from step 0 with the warmup multiplying it; the published configs).
        min_lr_ratio: start and end of the schedule, as a fraction of ``lr``.
        step_seeded: reseed torch's generator from (``seed``, global step) before each step, so dropout and
            drop-path do not depend on history and a resumed run repeats an uninterrupted one exactly.
        seed: base of the per-step seed.

    ``PretrainTask.load_from_checkpoint(path)`` rebuilds the task from its checkpoint alone (the backbone is
    described in it); ``bert_path`` is then not read again.
    """

    WEIGHT_ARGUMENTS = ("bert_path",)

    def __init__(
        self,
        backbone: CloverBackbone,
        bert_path: str | None = None,
        embed_dim: int = 768,
        temperature: float = 0.05,
        use_tma: bool = True,
        use_masked: bool = True,
        use_fused: bool = True,
        use_ranking: bool = True,
        use_mlm: bool = True,
        rank_margin: float = 5.0,
        focal_gamma: float = 2.0,
        weight_tma: float = 1.0,
        weight_rank: float = 1.0,
        weight_mlm: float = 1.0,
        weight_contrastive: float = 1.0,
        objective_weighting: str = "gradient_correct",
        lr: float = 5e-5,
        weight_decay: float = 0.005,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        warmup_fraction: float = 0.1,
        warmup_steps: int | None = None,
        lr_schedule: str = "warmup_cosine",
        min_lr_ratio: float = 1e-3,
        step_seeded: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_schedule_arguments(lr_schedule, warmup_fraction, warmup_steps)
        if objective_weighting not in OBJECTIVE_WEIGHTINGS:
            raise ValueError(
                f"model.init_args.objective_weighting must be one of {', '.join(OBJECTIVE_WEIGHTINGS)}, "
                f"got {objective_weighting!r}"
            )
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.heads = DualEncoderHeads(backbone.video_dim, backbone.text_dim, embed_dim, temperature)
        self.use_masked = use_tma and use_masked
        self.use_fused = use_tma and use_fused
        self.use_mlm = use_mlm
        self.use_tma = use_tma
        # What the switches leave unused is frozen: an unused trainable parameter stops DDP at its second step.
        if not (self.use_masked or self.use_fused):
            backbone.freeze(["mask_token"])  # no masked-video pass
        if not (self.use_mlm or self.use_fused):
            backbone.freeze(["fusion"])  # no fusion pass
        self.fused_heads = FusedHeads(backbone.text_dim, embed_dim) if self.use_fused else None
        self.mlm_head = None
        if use_mlm:
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
        self.tma_loss = TriModalAlignmentLoss(
            temperature=temperature,
            rank_margin=rank_margin,
            use_masked=self.use_masked,
            use_fused=self.use_fused,
            use_ranking=use_ranking and self.use_masked,
        )
        self.contrastive_loss = VideoTextContrastiveLoss(temperature=temperature)
        self.mlm_loss = MaskedLanguageModelingLoss(gamma=focal_gamma)
        self._validation = EmbeddingCollector()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise uint8 clips on the device, batched (the lean sample path; float clips pass unchanged)."""
        return normalize_batch_video(batch)

    # ---------------------------------------------------------------- training
    def on_train_batch_start(self, batch: PretrainBatch, batch_idx: int) -> None:
        """Seed model-side randomness from the step, so a resumed run repeats an uninterrupted one."""
        if self.hparams.step_seeded:
            torch.manual_seed(
                step_seed(
                    self.hparams.seed,
                    self.global_step,
                    batch_idx % self.trainer.accumulate_grad_batches,
                    self.global_rank,
                )
            )

    def compute_losses(self, batch: PretrainBatch) -> dict[str, torch.Tensor]:
        """All terms of the objective for one batch, plus the weighted total under ``"loss"``.

        Args:
            batch: a pretraining batch (video or image clips with captions and masks).

        Returns:
            ``loss`` and every active term (``tma_video``, ``rank_video``, ``tma_text``, ``rank_text``, ``mlm``,
            ``contrastive``) and ``mlm_accuracy``.
        """
        backbone, hp = self.backbone, self.hparams
        text_mask = batch["attention_mask"]
        video_tokens = backbone.encode_video(batch["video"])
        text_states = backbone.encode_text(batch["input_ids"], text_mask)
        video = self.heads.project_video(video_tokens)
        text = self.heads.project_text(text_states)
        needs_masked_text = self.use_masked or self.use_fused or self.use_mlm
        masked_text_states = backbone.encode_text(batch["masked_input_ids"], text_mask) if needs_masked_text else None
        masked_video_tokens = None
        if self.use_masked or self.use_fused:
            masked_video_tokens = backbone.encode_video(batch["video"], batch["video_mask"])

        terms: dict[str, torch.Tensor] = {}
        total = video.new_zeros(())
        alignment_scale = self.alignment_scale()
        fused_video_masked = None  # F2 = fused(video, masked text): MLM and the text pass's fused candidate
        if self.use_mlm or self.use_fused:
            fused_video_masked = backbone.fuse(video_tokens, masked_text_states, text_mask)
        if self.use_tma:
            masked_text = masked_video = fused_for_video = fused_for_text = None
            if self.use_masked:
                masked_text = self.heads.project_text(masked_text_states)
                masked_video = self.heads.project_video(masked_video_tokens)
            if self.use_fused:
                fused_masked_video = backbone.fuse(masked_video_tokens, text_states, text_mask)  # F1
                fused_for_video = self.fused_heads.video(fused_masked_video.cls)
                fused_for_text = self.fused_heads.text(fused_video_masked.cls)
            for anchor_name, anchor, complete, masked, fused in (
                ("video", video, text, masked_text, fused_for_video),
                ("text", text, video, masked_video, fused_for_text),
            ):
                result = self.tma_loss(anchor, complete, masked, fused)
                terms[f"tma_{anchor_name}"] = result["nce"]
                total = total + alignment_scale * hp.weight_tma * result["nce"]
                if self.tma_loss.use_ranking:
                    terms[f"rank_{anchor_name}"] = result["rank"]
                    total = total + alignment_scale * hp.weight_rank * result["rank"]
        else:
            terms["contrastive"] = self.contrastive_loss(video, text)["loss"]
            total = total + alignment_scale * hp.weight_contrastive * terms["contrastive"]
        if self.use_mlm:
            mlm = self.mlm_loss(self.mlm_head(fused_video_masked.text), batch["mlm_labels"])
            terms["mlm"] = mlm["loss"]
            terms["mlm_accuracy"] = mlm["accuracy"]
            total = total + hp.weight_mlm * mlm["loss"]
        terms["loss"] = total
        return terms

    def alignment_scale(self) -> float:
        """Factor on the alignment, ranking and contrastive weights: 1, or 1 / world size with release weighting."""
        if self.hparams.objective_weighting != "release" or self._trainer is None:
            return 1.0
        return 1.0 / self._trainer.world_size

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
    def validation_step(self, batch: RetrievalBatch, batch_idx: int) -> None:
        """Embed held-out clips and captions with the dual encoders (no fusion, as Clover's retrieval)."""
        video = self.heads.project_video(self.backbone.encode_video(batch["video"]))
        text = self.heads.project_text(self.backbone.encode_text(batch["input_ids"], batch["attention_mask"]))
        self._validation.add(video=video, text=text, id=batch["id"])

    def on_validation_epoch_end(self) -> None:
        """Zero-shot text-to-video retrieval over the whole held-out set; logs ``val/t2v_r@1`` and friends."""
        parts = self._validation.gather()  # every rank takes part, also one that had no held-out shard
        if not parts:
            return
        # Kept for the retrieval-examples picture (clover_pl.tensorboard.Pictures); CPU, the whole held-out set.
        self.last_validation_embeddings = {
            "video": parts["video"],
            "video_ids": parts["id"],
            "text": parts["text"],
            "text_video_ids": parts["id"],
        }
        metrics = retrieval_evaluation(parts["video"], parts["id"], parts["text"], parts["id"])
        metrics = {k: v for k, v in metrics.items() if not k.startswith("v2t_") and k != "gallery"}
        self.log_dict({f"val/{k}": v.float() for k, v in metrics.items()})
        self.last_retrieval = {k: float(v) for k, v in metrics.items()}
        self.last_retrieval["gallery"] = 100.0 / self.last_retrieval["chance_r@1"]

    # ------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, object]:
        """AdamW over decay groups with linear warmup then cosine, stepped every optimiser step."""
        return configure_from_hparams(self)
