"""Clover's pretraining objective as one module: the switches and weights in, named terms and their total out.

The task encodes what :class:`CloverObjective` says it needs (its ``needs_*`` properties), hands the projected
features over as :class:`PretrainFeatures`, and logs what comes back; the composition of the terms (which are on,
their weights, the release's weighting) lives here only. The paper's ablations are switch settings of this module
(``conf/ablation/*.yaml``); ``use_tma=False`` is the pair-wise baseline (video-text InfoNCE + MLM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from clover_pl.losses.contrastive import VideoTextContrastiveLoss
from clover_pl.losses.mlm import MaskedLanguageModelingLoss
from clover_pl.losses.tri_modal import TriModalAlignmentLoss

ObjectiveWeighting = Literal["gradient_correct", "release"]
"""How the alignment terms weigh against MLM under DDP: as written, or as the official release's gather made them."""


@dataclass
class PretrainFeatures:
    """One pretraining step's features, as the objective consumes them (B clips, E embedding width).

    Attributes:
        video: (B, E) projected complete video.
        text: (B, E) projected complete text.
        masked_video: (B, E) projected masked video (masked candidates only).
        masked_text: (B, E) projected masked text (masked candidates only).
        fused_masked_video: (B, E) fused(masked video, text), projected as the video anchor's fused candidate.
        fused_masked_text: (B, E) fused(video, masked text), projected as the text anchor's fused candidate.
        mlm_logits: (B, L, V) MLM head scores over the vocabulary on fused(video, masked text)'s text tokens.
        mlm_labels: (B, L) token ids to predict, -100 where nothing was masked.
    """

    video: Tensor
    text: Tensor
    masked_video: Tensor | None = None
    masked_text: Tensor | None = None
    fused_masked_video: Tensor | None = None
    fused_masked_text: Tensor | None = None
    mlm_logits: Tensor | None = None
    mlm_labels: Tensor | None = None


class CloverObjective(nn.Module):
    """Tri-modal alignment with semantic masked samples, pair-wise ranking and MLM (spec sections 3.4-3.6).

    Terms (each a scalar; ``loss`` is their weighted sum):

    - ``tma_video``: video anchored against {text, masked text, fused(masked video, text)}, and ``tma_text``: text
      anchored against {video, masked video, fused(video, masked text)}, exclusive InfoNCE;
    - ``rank_video`` / ``rank_text``: the complete candidate beats the masked one by ``rank_margin`` logits;
    - ``contrastive``: the baseline's video-text InfoNCE (with ``use_tma=False``, instead of the two above);
    - ``mlm``: focal loss on the masked positions of fused(video, masked text), and ``mlm_accuracy`` (not summed).

    Args:
        use_tma: tri-modal alignment; False trains the pair-wise baseline.
        use_masked: masked text / masked video as alignment candidates (and the ranking loss).
        use_fused: fused candidates in the alignment.
        use_ranking: pair-wise ranking between complete and masked candidates.
        use_mlm: masked language modelling.
        temperature: fixed softmax temperature (0.05).
        rank_margin: ranking margin in logit units (5, i.e. 0.25 in cosine at temperature 0.05).
        focal_gamma: focal-loss exponent of the MLM term (0 gives cross-entropy).
        weight_tma: weight of each alignment term.
        weight_rank: weight of each ranking term.
        weight_mlm: weight of the MLM term.
        weight_contrastive: weight of the baseline's video-text InfoNCE.
        weighting: ``"gradient_correct"`` (default: the weights above are the weights of the gradient, as one
            process holding the global batch would train) or ``"release"``: the alignment, ranking and baseline
            contrastive terms are divided by the world size, reproducing the official release, whose gather
            returned only the local slice of the gradient, so with DDP's averaging those terms weighed 1/W against
            MLM (1/32 in the published run; spec 3.8). The returned terms are the same either way; only ``loss``
            changes.

    Switches that depend on tri-modal alignment (masked and fused candidates, ranking) are off when ``use_tma`` is,
    and ranking is off without masked candidates.
    """

    def __init__(
        self,
        use_tma: bool = True,
        use_masked: bool = True,
        use_fused: bool = True,
        use_ranking: bool = True,
        use_mlm: bool = True,
        temperature: float = 0.05,
        rank_margin: float = 5.0,
        focal_gamma: float = 2.0,
        weight_tma: float = 1.0,
        weight_rank: float = 1.0,
        weight_mlm: float = 1.0,
        weight_contrastive: float = 1.0,
        weighting: ObjectiveWeighting = "gradient_correct",
    ) -> None:
        super().__init__()
        if weighting not in ("gradient_correct", "release"):
            raise ValueError(
                "model.init_args.objective.init_args.weighting must be one of gradient_correct, release, "
                f"got {weighting!r}"
            )
        # Every argument is kept under its own name: the checkpoint describes the objective from them.
        self.use_tma = use_tma
        self.use_masked = use_masked
        self.use_fused = use_fused
        self.use_ranking = use_ranking
        self.use_mlm = use_mlm
        self.temperature = temperature
        self.rank_margin = rank_margin
        self.focal_gamma = focal_gamma
        self.weight_tma = weight_tma
        self.weight_rank = weight_rank
        self.weight_mlm = weight_mlm
        self.weight_contrastive = weight_contrastive
        self.weighting = weighting
        self.alignment = TriModalAlignmentLoss(
            temperature=temperature,
            rank_margin=rank_margin,
            use_masked=self.masked_candidates,
            use_fused=self.fused_candidates,
            use_ranking=use_ranking and self.masked_candidates,
        )
        self.contrastive = VideoTextContrastiveLoss(temperature=temperature)
        self.mlm = MaskedLanguageModelingLoss(gamma=focal_gamma)

    # ------------------------------------------------------------ what it needs
    @property
    def masked_candidates(self) -> bool:
        """Masked text and masked video join the alignment."""
        return self.use_tma and self.use_masked

    @property
    def fused_candidates(self) -> bool:
        """Fused candidates join the alignment."""
        return self.use_tma and self.use_fused

    @property
    def needs_masked_video(self) -> bool:
        """The step encodes the masked video."""
        return self.masked_candidates or self.fused_candidates

    @property
    def needs_masked_text(self) -> bool:
        """The step encodes the masked text."""
        return self.masked_candidates or self.fused_candidates or self.use_mlm

    @property
    def needs_fused_masked_text(self) -> bool:
        """The step fuses (video, masked text): MLM's input and the text anchor's fused candidate."""
        return self.use_mlm or self.fused_candidates

    @property
    def needs_fused_masked_video(self) -> bool:
        """The step fuses (masked video, text): the video anchor's fused candidate."""
        return self.fused_candidates

    # ------------------------------------------------------------------ terms
    def forward(self, features: PretrainFeatures, world_size: int = 1) -> dict[str, Tensor]:
        """The active terms of one batch and their weighted total.

        Args:
            features: what the step encoded (see the ``needs_*`` properties for what must be present).
            world_size: processes of the run (only ``weighting="release"`` reads it).

        Returns:
            ``loss`` and every active term (``tma_video``, ``rank_video``, ``tma_text``, ``rank_text``,
            ``contrastive``, ``mlm``) and ``mlm_accuracy``.
        """
        terms: dict[str, Tensor] = {}
        total = features.video.new_zeros(())
        scale = 1.0 / world_size if self.weighting == "release" else 1.0
        if self.use_tma:
            for anchor_name, anchor, complete, masked, fused in (
                ("video", features.video, features.text, features.masked_text, features.fused_masked_video),
                ("text", features.text, features.video, features.masked_video, features.fused_masked_text),
            ):
                result = self.alignment(anchor, complete, masked, fused)
                terms[f"tma_{anchor_name}"] = result["nce"]
                total = total + scale * self.weight_tma * result["nce"]
                if self.alignment.use_ranking:
                    terms[f"rank_{anchor_name}"] = result["rank"]
                    total = total + scale * self.weight_rank * result["rank"]
        else:
            terms["contrastive"] = self.contrastive(features.video, features.text)["loss"]
            total = total + scale * self.weight_contrastive * terms["contrastive"]
        if self.use_mlm:
            if features.mlm_logits is None or features.mlm_labels is None:
                raise ValueError("use_mlm=True but the features carry no MLM logits or labels")
            mlm = self.mlm(features.mlm_logits, features.mlm_labels)
            terms["mlm"] = mlm["loss"]
            terms["mlm_accuracy"] = mlm["accuracy"]
            total = total + self.weight_mlm * mlm["loss"]
        terms["loss"] = total
        return terms

    def extra_repr(self) -> str:
        """The switches that are on and the weighting, for printing the model."""
        switches = ", ".join(
            name for name in ("use_tma", "use_masked", "use_fused", "use_ranking", "use_mlm") if getattr(self, name)
        )
        return f"{switches}, weighting={self.weighting}"
