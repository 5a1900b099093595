import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from clover_pl.losses import MaskedLanguageModelingLoss


def naive_focal(logits: torch.Tensor, labels: torch.Tensor, gamma: float, ignore_index: int = -100) -> float:
    """Spec 3.3 one position at a time, in Python floats."""
    total, count = 0.0, 0
    values = logits.double().tolist()
    for b, row in enumerate(labels.tolist()):
        for position, label in enumerate(row):
            if label == ignore_index:
                continue
            scores = values[b][position]
            top = max(scores)
            log_partition = top + math.log(sum(math.exp(score - top) for score in scores))
            cross_entropy = log_partition - scores[label]
            probability = math.exp(-cross_entropy)
            total += (1 - probability) ** gamma * cross_entropy
            count += 1
    return total / count


def _batch(ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    logits = 2.0 * torch.randn(3, 6, 11)
    labels = torch.randint(0, 11, (3, 6))
    unmasked = torch.rand(3, 6) < 0.6
    unmasked[0, 0] = False  # at least one masked position
    return logits, labels.masked_fill(unmasked, ignore_index)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_matches_naive_loop(gamma: float) -> None:
    logits, labels = _batch()
    out = MaskedLanguageModelingLoss(gamma=gamma)(logits, labels)
    assert_close(out["loss"].item(), naive_focal(logits, labels, gamma), rtol=1e-5, atol=1e-6)
    assert out["masked_tokens"].item() == (labels != -100).sum().item()


def test_gamma_zero_is_cross_entropy() -> None:
    logits, labels = _batch()
    out = MaskedLanguageModelingLoss(gamma=0.0)(logits, labels)
    assert_close(out["loss"], F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100))


def test_focal_weight_lowers_the_loss() -> None:
    logits, labels = _batch()
    assert MaskedLanguageModelingLoss(gamma=2.0)(logits, labels)["loss"] < F.cross_entropy(
        logits.transpose(1, 2), labels
    )


def test_only_masked_positions_contribute() -> None:
    logits, labels = _batch()
    logits.requires_grad_(True)
    loss = MaskedLanguageModelingLoss()
    out = loss(logits, labels)
    out["loss"].backward()
    unmasked = labels == -100
    assert (logits.grad[unmasked] == 0).all()
    assert (logits.grad[~unmasked] != 0).any()
    changed = logits.detach().clone()
    changed[unmasked] = 100.0 * torch.randn_like(changed[unmasked])
    assert_close(loss(changed, labels)["loss"], out["loss"].detach())


def test_custom_ignore_index() -> None:
    logits, labels = _batch(ignore_index=-1)
    out = MaskedLanguageModelingLoss(gamma=2.0, ignore_index=-1)(logits, labels)
    assert_close(out["loss"].item(), naive_focal(logits, labels, 2.0, ignore_index=-1), rtol=1e-5, atol=1e-6)


def test_nothing_masked_gives_zero_with_a_graph() -> None:
    logits = torch.randn(2, 4, 11, requires_grad=True)
    labels = torch.full((2, 4), -100)
    out = MaskedLanguageModelingLoss()(logits, labels)
    assert out["loss"].item() == 0.0
    assert out["loss"].requires_grad
    assert out["masked_tokens"].item() == 0.0
    assert out["accuracy"].item() == 0.0
    out["loss"].backward()
    assert logits.grad is not None
    assert (logits.grad == 0).all()


def test_accuracy_on_a_rigged_batch() -> None:
    logits = torch.zeros(1, 4, 5)
    logits[0, 0, 2] = logits[0, 1, 3] = logits[0, 2, 4] = logits[0, 3, 1] = 5.0
    labels = torch.tensor([[2, 3, 0, -100]])  # two right, one wrong, one not masked
    out = MaskedLanguageModelingLoss()(logits, labels)
    assert_close(out["accuracy"].item(), 2 / 3)
    assert not out["accuracy"].requires_grad
    assert out["masked_tokens"].dtype.is_floating_point


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_handled_in_float32(dtype: torch.dtype) -> None:
    logits, labels = _batch()
    low = logits.to(dtype).requires_grad_(True)
    out = MaskedLanguageModelingLoss()(low, labels)
    assert out["loss"].dtype == torch.float32
    assert_close(out["loss"].item(), naive_focal(low.detach().float(), labels, 2.0), rtol=1e-5, atol=1e-6)
    out["loss"].backward()
    assert low.grad.dtype == dtype
    assert torch.isfinite(low.grad.float()).all()


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gamma"):
        MaskedLanguageModelingLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="disagree"):
        MaskedLanguageModelingLoss()(torch.randn(2, 4, 11), torch.zeros(2, 5, dtype=torch.long))
