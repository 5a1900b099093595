"""Clover's tri-modal alignment ("exclusive NCE", spec 3.4) and pair-wise ranking (spec 3.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clover_pl.losses.gather import gather_with_grad


class TriModalAlignmentLoss(nn.Module):
    """Align an anchor with up to three candidates of the paired sample: complete, masked and fused.

    Pretraining applies it twice: anchor = video with candidates (text, masked text, fused(masked video, text)),
    and anchor = text with candidates (video, masked video, fused(video, masked text)).

    After gathering (N = global batch) and L2 normalisation, S^k = a c_k^T / tau (N x N) for each active kind k
    (complete always, masked and fused when switched on; K kinds in all).

    Anchor to candidate: for kind k and anchor i the logits are the concatenation over kinds of S^{k'}_{i,:}
    (length K N) with the positives S^{k'}_ii of the other kinds removed, so that the K positives of an anchor never
    compete with each other; the target is S^k_ii::

        L_a2c = -(1/N) sum_i sum_k log[exp(S^k_ii) / (sum_j exp(S^k_ij) + sum_{k' != k} sum_{j != i} exp(S^k'_ij))]

    a sum over kinds. Candidate to anchor: each candidate picks its anchor among the N anchors (column softmax),
    averaged over kinds::

        L_c2a = -(1/K) sum_k (1/N) sum_i log[exp(S^k_ii) / sum_j exp(S^k_ji)]

    Ranking: the complete candidate must beat the masked one by ``rank_margin`` logits (0.25 in cosine at
    tau = 0.05)::

        L_rank = (1/N) sum_i max(0, m - (S^complete_ii - S^masked_ii))

    With only the complete kind active, ``nce`` is the symmetric InfoNCE of ``VideoTextContrastiveLoss``.
    Computed in float32 with autocast off, as the release's losses were.

    Args:
        temperature: softmax temperature tau (0.05 in Clover).
        rank_margin: hinge margin m of the ranking term, in logit units (5.0 in Clover).
        use_masked: include the masked candidate in the alignment.
        use_fused: include the fused candidate in the alignment.
        use_ranking: add the ranking term; needs ``use_masked``.
        gather: all-gather the features of all ranks (with gradient) so that the whole global batch serves as
            negatives.
    """

    def __init__(
        self,
        temperature: float = 0.05,
        rank_margin: float = 5.0,
        use_masked: bool = True,
        use_fused: bool = True,
        use_ranking: bool = True,
        gather: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if use_ranking and not use_masked:
            raise ValueError(
                "use_ranking=True needs use_masked=True: the ranking term compares the complete candidate with the "
                "masked one. Set use_ranking=False to train without masked candidates."
            )
        self.temperature = temperature
        self.rank_margin = rank_margin
        self.use_masked = use_masked
        self.use_fused = use_fused
        self.use_ranking = use_ranking
        self.gather = gather

    def forward(
        self, anchor: Tensor, complete: Tensor, masked: Tensor | None, fused: Tensor | None
    ) -> dict[str, Tensor]:
        """Compute the alignment and ranking terms for one anchor modality.

        Args:
            anchor: (B, E) anchor embeddings, not normalised; row i is paired with row i of every candidate.
            complete: (B, E) complete candidate of the other modality.
            masked: (B, E) masked candidate; may be None when ``use_masked`` is off (ignored then).
            fused: (B, E) fused candidate; may be None when ``use_fused`` is off (ignored then).

        Returns:
            Scalars ``"loss"`` (``nce + rank``), ``"nce"`` (``L_a2c + L_c2a``), ``"nce_anchor_to_candidate"``,
            ``"nce_candidate_to_anchor"`` and ``"rank"`` (zero when ranking is off).
        """
        candidates = self._active_candidates(anchor, complete, masked, fused)
        if self.gather:
            anchor = gather_with_grad(anchor)
            candidates = [gather_with_grad(feature) for feature in candidates]

        with torch.autocast(device_type=anchor.device.type, enabled=False):
            anchor = F.normalize(anchor.float(), dim=-1)
            stacked = F.normalize(torch.stack([feature.float() for feature in candidates]), dim=-1)  # (K, N, E)
            logits = torch.einsum("ne,kme->knm", anchor, stacked) / self.temperature  # (K, N, N): S^k
            anchor_to_candidate = self._anchor_to_candidate(logits)
            candidate_to_anchor = self._candidate_to_anchor(logits)
            nce = anchor_to_candidate + candidate_to_anchor
            if self.use_ranking:
                positives = logits.diagonal(dim1=1, dim2=2)  # (K, N); kind 0 is complete, kind 1 masked
                rank = F.relu(self.rank_margin - (positives[0] - positives[1])).mean()
            else:
                rank = nce.new_zeros(())
        return {
            "loss": nce + rank,
            "nce": nce,
            "nce_anchor_to_candidate": anchor_to_candidate,
            "nce_candidate_to_anchor": candidate_to_anchor,
            "rank": rank,
        }

    def _active_candidates(
        self, anchor: Tensor, complete: Tensor, masked: Tensor | None, fused: Tensor | None
    ) -> list[Tensor]:
        """The candidates that the switches turn on, in kind order (complete, masked, fused), checked."""
        candidates = [complete]
        for name, feature, active in (("masked", masked, self.use_masked), ("fused", fused, self.use_fused)):
            if not active:
                continue
            if feature is None:
                raise ValueError(f"use_{name}=True but the {name} candidate is None")
            candidates.append(feature)
        for feature in candidates:
            if anchor.dim() != 2 or feature.shape != anchor.shape:
                raise ValueError(
                    f"anchor and candidates must all be (B, E); got {tuple(anchor.shape)} and {tuple(feature.shape)}"
                )
        return candidates

    @staticmethod
    def _anchor_to_candidate(logits: Tensor) -> Tensor:
        """Exclusive NCE from anchors: (K, N, N) logits S^k -> sum over kinds of the mean over anchors."""
        kinds, n, _ = logits.shape
        # Row (k, i) of the (K N, K N) matrix holds [S^1_i,:, ..., S^K_i,:]; its target is column k N + i.
        rows = logits.permute(1, 0, 2).reshape(n, kinds * n)  # (N, K N)
        rows = rows.unsqueeze(0).expand(kinds, n, kinds * n)  # (K, N, K N)
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        other_kind = ~torch.eye(kinds, dtype=torch.bool, device=logits.device)
        # Drop S^{k'}_ii for k' != k from row (k, i). -inf removes them exactly whatever the logit scale (the
        # release's -10000 only approximates it); no row becomes all -inf because its own positive stays.
        excluded = (other_kind[:, None, :, None] & eye[None, :, None, :]).reshape(kinds, n, kinds * n)
        exclusive = rows.masked_fill(excluded, float("-inf")).reshape(kinds * n, kinds * n)
        targets = torch.arange(kinds * n, device=logits.device)
        # cross_entropy averages over all K N rows; the loss sums over kinds, hence the factor K.
        return F.cross_entropy(exclusive, targets) * kinds

    @staticmethod
    def _candidate_to_anchor(logits: Tensor) -> Tensor:
        """Each candidate picks its anchor: (K, N, N) logits -> mean over kinds and candidates."""
        kinds, n, _ = logits.shape
        columns = logits.transpose(1, 2).reshape(kinds * n, n)  # row (k, i) = S^k_{:, i}
        targets = torch.arange(n, device=logits.device).repeat(kinds)
        return F.cross_entropy(columns, targets)
