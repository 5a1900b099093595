import math

import pytest
import torch
from torch.testing import assert_close

from clover_pl.losses import VideoTextContrastiveLoss, gather_with_grad


def _unit_rows(x: torch.Tensor) -> list[list[float]]:
    rows = []
    for row in x.double().tolist():
        norm = math.sqrt(sum(value * value for value in row))
        rows.append([value / norm for value in row])
    return rows


def naive_infonce(video: torch.Tensor, text: torch.Tensor, temperature: float) -> tuple[float, float]:
    """Both directions of the symmetric InfoNCE, one sample at a time, in Python floats."""
    v, t = _unit_rows(video), _unit_rows(text)
    n = len(v)
    s = [[sum(a * b for a, b in zip(v[i], t[j], strict=True)) / temperature for j in range(n)] for i in range(n)]
    video_to_text = 0.0
    text_to_video = 0.0
    for i in range(n):
        video_to_text -= math.log(math.exp(s[i][i]) / sum(math.exp(s[i][j]) for j in range(n)))
        text_to_video -= math.log(math.exp(s[i][i]) / sum(math.exp(s[j][i]) for j in range(n)))
    return video_to_text / n, text_to_video / n


@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0])
def test_matches_naive_loop(temperature: float) -> None:
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    out = VideoTextContrastiveLoss(temperature=temperature)(video, text)
    video_to_text, text_to_video = naive_infonce(video, text, temperature)
    assert_close(out["loss_video_to_text"].item(), video_to_text, rtol=1e-5, atol=1e-5)
    assert_close(out["loss_text_to_video"].item(), text_to_video, rtol=1e-5, atol=1e-5)
    assert_close(out["loss"].item(), video_to_text + text_to_video, rtol=1e-5, atol=1e-5)


def test_ties_match_naive_loop() -> None:
    # Two identical clips and two identical captions: tied logits in rows and columns.
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    video[3] = video[1]
    text[4] = text[2]
    out = VideoTextContrastiveLoss(temperature=0.2)(video, text)
    assert_close(out["loss"].item(), sum(naive_infonce(video, text, 0.2)), rtol=1e-5, atol=1e-5)


def test_symmetric_in_its_arguments() -> None:
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    loss = VideoTextContrastiveLoss()
    forward, backward = loss(video, text), loss(text, video)
    assert_close(forward["loss_video_to_text"], backward["loss_text_to_video"])
    assert_close(forward["loss_text_to_video"], backward["loss_video_to_text"])


def test_scale_invariant_because_normalised() -> None:
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    loss = VideoTextContrastiveLoss()
    assert_close(loss(video, text)["loss"], loss(3.0 * video, 0.5 * text)["loss"])


def test_aligned_scores_lower_than_shuffled() -> None:
    text = torch.randn(6, 8)
    video = text + 0.1 * torch.randn(6, 8)
    loss = VideoTextContrastiveLoss()
    assert loss(video, text)["loss"] < loss(video, text[torch.tensor([1, 2, 3, 4, 5, 0])])["loss"]


def test_backward_reaches_both_inputs() -> None:
    video = torch.randn(5, 8, requires_grad=True)
    text = torch.randn(5, 8, requires_grad=True)
    VideoTextContrastiveLoss()(video, text)["loss"].backward()
    for grad in (video.grad, text.grad):
        assert grad is not None
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


def test_bfloat16_inputs_give_float32_loss() -> None:
    video, text = torch.randn(5, 8).bfloat16(), torch.randn(5, 8).bfloat16()
    out = VideoTextContrastiveLoss()(video, text)
    assert out["loss"].dtype == torch.float32
    assert_close(out["loss"], VideoTextContrastiveLoss()(video.float(), text.float())["loss"])


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temperature"):
        VideoTextContrastiveLoss(temperature=0.0)
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        VideoTextContrastiveLoss()(torch.randn(5, 8), torch.randn(4, 8))


def test_gather_is_identity_without_process_group() -> None:
    assert not torch.distributed.is_initialized()
    features = torch.randn(5, 8, requires_grad=True)
    assert gather_with_grad(features) is features
    with_gather = VideoTextContrastiveLoss(gather=True)(features, features.flip(0))
    without = VideoTextContrastiveLoss(gather=False)(features, features.flip(0))
    assert_close(with_gather["loss"], without["loss"])
