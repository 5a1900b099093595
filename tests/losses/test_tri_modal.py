import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from clover_pl.losses import TriModalAlignmentLoss, VideoTextContrastiveLoss

SWITCHES = [
    (use_masked, use_fused, use_ranking)
    for use_masked, use_fused, use_ranking in itertools.product([True, False], repeat=3)
    if use_masked or not use_ranking
]


def _unit_rows(x: torch.Tensor) -> list[list[float]]:
    rows = []
    for row in x.double().tolist():
        norm = math.sqrt(sum(value * value for value in row))
        rows.append([value / norm for value in row])
    return rows


def naive_tri_modal(
    anchor: torch.Tensor,
    candidates: list[torch.Tensor],
    temperature: float,
    rank_margin: float = 5.0,
    use_ranking: bool = False,
) -> dict[str, float]:
    """Spec 3.4 and 3.5 written out per anchor, per kind and per negative, in Python floats.

    ``candidates`` are the active kinds in order (complete, then masked if active, then fused if active).
    """
    a = _unit_rows(anchor)
    c = [_unit_rows(kind) for kind in candidates]
    n, kinds = len(a), len(c)
    s = [
        [[sum(x * y for x, y in zip(a[i], c[k][j], strict=True)) / temperature for j in range(n)] for i in range(n)]
        for k in range(kinds)
    ]
    anchor_to_candidate = 0.0
    for i in range(n):
        for k in range(kinds):
            denominator = sum(math.exp(s[k][i][j]) for j in range(n))
            for other in range(kinds):
                if other != k:
                    denominator += sum(math.exp(s[other][i][j]) for j in range(n) if j != i)
            anchor_to_candidate -= math.log(math.exp(s[k][i][i]) / denominator)
    anchor_to_candidate /= n
    candidate_to_anchor = 0.0
    for k in range(kinds):
        for i in range(n):
            denominator = sum(math.exp(s[k][j][i]) for j in range(n))
            candidate_to_anchor -= math.log(math.exp(s[k][i][i]) / denominator) / n
    candidate_to_anchor /= kinds
    rank = 0.0
    if use_ranking:
        rank = sum(max(0.0, rank_margin - (s[0][i][i] - s[1][i][i])) for i in range(n)) / n
    nce = anchor_to_candidate + candidate_to_anchor
    return {
        "loss": nce + rank,
        "nce": nce,
        "nce_anchor_to_candidate": anchor_to_candidate,
        "nce_candidate_to_anchor": candidate_to_anchor,
        "rank": rank,
    }


def _active(complete, masked, fused, use_masked, use_fused):
    return [complete] + ([masked] if use_masked else []) + ([fused] if use_fused else [])


def _assert_matches(out: dict[str, torch.Tensor], expected: dict[str, float]) -> None:
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert_close(out[key].item(), value, rtol=1e-5, atol=1e-5, msg=key)


@pytest.mark.parametrize(("use_masked", "use_fused", "use_ranking"), SWITCHES)
@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_matches_naive_loop(use_masked: bool, use_fused: bool, use_ranking: bool, temperature: float) -> None:
    anchor, complete, masked, fused = torch.randn(4, 5, 8).unbind(0)
    loss = TriModalAlignmentLoss(
        temperature=temperature, rank_margin=3.0, use_masked=use_masked, use_fused=use_fused, use_ranking=use_ranking
    )
    out = loss(anchor, complete, masked, fused)
    candidates = _active(complete, masked, fused, use_masked, use_fused)
    _assert_matches(out, naive_tri_modal(anchor, candidates, temperature, 3.0, use_ranking))


def test_ties_match_naive_loop() -> None:
    # Duplicated samples and a masked candidate equal to the complete one: many tied logits.
    anchor, complete, _, fused = torch.randn(4, 5, 8).unbind(0)
    anchor[2] = anchor[0]
    complete[4] = complete[1]
    masked = complete.clone()
    out = TriModalAlignmentLoss(temperature=0.3)(anchor, complete, masked, fused)
    _assert_matches(out, naive_tri_modal(anchor, [complete, masked, fused], 0.3, 5.0, use_ranking=True))


def test_positives_never_compete_with_each_other() -> None:
    # All three candidates equal the anchor and the samples are orthonormal, so S^k_ij = delta_ij / tau for every k.
    # Row (k, i) then holds its positive e^(1/tau) and K (N - 1) negatives e^0; the other kinds' positives, also
    # e^(1/tau), are excluded. Had they been kept, each term would be about log K instead of nearly 0.
    n, kinds, temperature = 5, 3, 0.25
    eye = torch.eye(n, 8)
    out = TriModalAlignmentLoss(temperature=temperature, use_ranking=False)(eye, eye, eye, eye)
    expected_a2c = kinds * math.log(1 + kinds * (n - 1) * math.exp(-1 / temperature))
    expected_c2a = math.log(1 + (n - 1) * math.exp(-1 / temperature))
    assert_close(out["nce_anchor_to_candidate"].item(), expected_a2c, rtol=1e-6, atol=1e-6)
    assert_close(out["nce_candidate_to_anchor"].item(), expected_c2a, rtol=1e-6, atol=1e-6)
    inclusive_a2c = kinds * math.log(kinds + kinds * (n - 1) * math.exp(-1 / temperature))
    assert out["nce_anchor_to_candidate"].item() < inclusive_a2c - 2.0


def test_only_complete_equals_video_text_contrastive() -> None:
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    tri = TriModalAlignmentLoss(temperature=0.1, use_masked=False, use_fused=False, use_ranking=False)
    pair = VideoTextContrastiveLoss(temperature=0.1)(video, text)
    out = tri(video, text, None, None)
    assert_close(out["nce"], pair["loss"])
    assert_close(out["loss"], pair["loss"])
    assert_close(out["nce_anchor_to_candidate"], pair["loss_video_to_text"])
    assert_close(out["nce_candidate_to_anchor"], pair["loss_text_to_video"])
    assert out["rank"].item() == 0.0


def test_ranking_on_hand_built_embeddings() -> None:
    # 2-D unit vectors: the anchor is (1, 0), so each candidate's cosine is its first coordinate.
    def at_cosine(cosine: float) -> list[float]:
        return [cosine, math.sqrt(1 - cosine * cosine)]

    anchor = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    complete = torch.tensor([at_cosine(0.9), at_cosine(0.9), at_cosine(0.5)])
    masked = torch.tensor([at_cosine(0.8), at_cosine(0.5), at_cosine(0.9)])
    loss = TriModalAlignmentLoss(temperature=0.05, rank_margin=5.0, use_fused=False)
    out = loss(anchor, complete, masked, None)
    # Cosine gaps 0.1, 0.4, -0.4 are 2, 8, -8 logits at tau 0.05; hinges on the margin of 5: 3, 0, 13.
    assert_close(out["rank"].item(), (3.0 + 0.0 + 13.0) / 3, rtol=1e-5, atol=1e-5)
    assert_close(out["loss"], out["nce"] + out["rank"])


def test_aligned_scores_lower_than_shuffled() -> None:
    complete = torch.randn(6, 8)
    anchor = complete + 0.1 * torch.randn(6, 8)
    masked = complete + 0.3 * torch.randn(6, 8)
    fused = complete + 0.3 * torch.randn(6, 8)
    loss = TriModalAlignmentLoss()
    shuffle = torch.tensor([1, 2, 3, 4, 5, 0])
    aligned = loss(anchor, complete, masked, fused)["nce"]
    shuffled = loss(anchor[shuffle], complete, masked, fused)["nce"]
    assert aligned < shuffled


def test_inactive_candidates_are_ignored() -> None:
    anchor, complete, masked, fused = torch.randn(4, 5, 8).unbind(0)
    loss = TriModalAlignmentLoss(use_fused=False)
    assert_close(loss(anchor, complete, masked, fused)["loss"], loss(anchor, complete, masked, None)["loss"])


def test_backward_is_finite_even_for_a_single_sample() -> None:
    features = [torch.randn(n, 8, requires_grad=True) for n in (1, 1, 1, 1)]
    out = TriModalAlignmentLoss()(*features)
    # With one sample each row holds only its positive: no negatives, so the NCE terms are exactly 0.
    assert out["nce"].item() == 0.0
    out["loss"].backward()
    assert all(torch.isfinite(feature.grad).all() for feature in features)


def test_backward_reaches_every_input() -> None:
    features = [torch.randn(5, 8, requires_grad=True) for _ in range(4)]
    TriModalAlignmentLoss(temperature=0.5)(*features)["loss"].backward()
    for feature in features:
        assert torch.isfinite(feature.grad).all()
        assert feature.grad.abs().sum() > 0


def test_bfloat16_inputs_give_float32_loss() -> None:
    features = torch.randn(4, 5, 8).bfloat16().unbind(0)
    out = TriModalAlignmentLoss()(*features)
    assert out["loss"].dtype == torch.float32
    assert_close(out["loss"], TriModalAlignmentLoss()(*(feature.float() for feature in features))["loss"])


def test_rejects_bad_switches_and_inputs() -> None:
    with pytest.raises(ValueError, match="use_masked"):
        TriModalAlignmentLoss(use_masked=False, use_ranking=True)
    with pytest.raises(ValueError, match="temperature"):
        TriModalAlignmentLoss(temperature=-1.0)
    anchor = torch.randn(5, 8)
    with pytest.raises(ValueError, match="masked candidate is None"):
        TriModalAlignmentLoss()(anchor, anchor, None, anchor)
    with pytest.raises(ValueError, match="fused candidate is None"):
        TriModalAlignmentLoss()(anchor, anchor, anchor, None)
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        TriModalAlignmentLoss()(anchor, anchor, anchor, torch.randn(4, 8))
