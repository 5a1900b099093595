"""The release's recipe as options: objective weighting, lr schedule shape, warm-up fraction, freezing per switch."""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from clover_pl.losses import CloverObjective
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask, RetrievalTask
from clover_pl.tasks.optimization import (
    Optimization,
    release_cosine,
    resolve_warmup_steps,
    warmup_cosine,
)

SWITCHES = ("use_tma", "use_masked", "use_fused", "use_ranking", "use_mlm")


def batch(size: int = 4, frames: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 80, (size, length))
    ids[:, 0] = 2
    mask = torch.ones(size, length, dtype=torch.long)
    mask[0, 6:] = 0
    masked, labels = ids.clone(), torch.full_like(ids, -100)
    masked[:, 2], labels[:, 2] = 4, ids[:, 2]
    cells = torch.zeros(size, 4, 4, dtype=torch.bool)
    cells[:, :2, 1:3] = True
    return {
        "video": torch.randn(size, frames, 3, 32, 32),
        "video_mask": cells,
        "input_ids": ids,
        "attention_mask": mask,
        "masked_input_ids": masked,
        "mlm_labels": labels,
    }


def task(**settings) -> PretrainTask:
    return PretrainTask(clover_tiny(), CloverObjective(**settings), embed_dim=16)


ALL_COMBINATIONS = list(itertools.product((True, False), repeat=len(SWITCHES)))
# The combinations that freeze something, and the full objective: the quick loop's share of the 32.
QUICK = [
    (True,) * 5,
    (True, False, False, True, False),
    (True, True, False, True, False),
    (False, True, True, True, False),
]


def combination_id(values: tuple[bool, ...]) -> str:
    return "-".join(name.removeprefix("use_") for name, on in zip(SWITCHES, values, strict=True) if on) or "none"


@pytest.mark.parametrize("values", QUICK, ids=combination_id)
@pytest.mark.slow
def test_trainable_parameters_get_gradients_where_switches_freeze(values: tuple[bool, ...]) -> None:
    check_gradients_reach_every_trainable_parameter(values)


@pytest.mark.slow
@pytest.mark.parametrize("values", ALL_COMBINATIONS, ids=combination_id)
def test_every_trainable_parameter_gets_a_gradient_in_every_switch_combination(values: tuple[bool, ...]) -> None:
    check_gradients_reach_every_trainable_parameter(values)


def check_gradients_reach_every_trainable_parameter(values: tuple[bool, ...]) -> None:
    """What DDP's unused-parameter check needs: one step reaches every parameter left trainable."""
    switches = dict(zip(SWITCHES, values, strict=True))
    model = task(**switches)
    model.compute_losses(batch(size=2))["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    # Only what the switches leave unused is frozen (the encoders the objective uses keep training).
    fusion_used = switches["use_mlm"] or (switches["use_tma"] and switches["use_fused"])
    masked_video_used = switches["use_tma"] and (switches["use_masked"] or switches["use_fused"])
    assert all(p.requires_grad for p in model.backbone.fusion.parameters()) == fusion_used
    assert any(p.requires_grad for p in model.backbone.fusion.parameters()) == fusion_used
    assert model.backbone.video.mask_token.requires_grad == masked_video_used
    assert all(p.requires_grad for p in model.backbone.video.layers.parameters())
    assert all(p.requires_grad for p in model.backbone.text.parameters())


def test_release_weighting_divides_alignment_and_ranking_by_the_world_size() -> None:
    model = task().eval()
    data = batch()
    torch.manual_seed(1)
    correct = model.compute_losses(data)
    model.objective.weighting = "release"
    model._trainer = SimpleNamespace(world_size=4)
    torch.manual_seed(1)
    release = model.compute_losses(data)
    for name in ("tma_video", "tma_text", "rank_video", "rank_text", "mlm"):
        torch.testing.assert_close(release[name], correct[name])  # the logged terms are the same
    alignment = correct["tma_video"] + correct["tma_text"] + correct["rank_video"] + correct["rank_text"]
    torch.testing.assert_close(release["loss"], alignment / 4 + correct["mlm"])
    torch.testing.assert_close(correct["loss"], alignment + correct["mlm"])


def test_release_weighting_scales_the_baselines_contrastive_term_and_is_one_on_one_process() -> None:
    model = task(use_tma=False, weighting="release").eval()
    data = batch()
    torch.manual_seed(1)
    single = model.compute_losses(data)  # no trainer: world size 1
    torch.testing.assert_close(single["loss"], single["contrastive"] + single["mlm"])
    model._trainer = SimpleNamespace(world_size=32)
    torch.manual_seed(1)
    out = model.compute_losses(data)
    torch.testing.assert_close(out["loss"], out["contrastive"] / 32 + out["mlm"])


def test_unknown_weighting_and_schedule_values_name_the_key() -> None:
    with pytest.raises(
        ValueError, match=r"model.init_args.objective.init_args.weighting must be one of gradient_correct, release"
    ):
        task(weighting="paper")
    with pytest.raises(
        ValueError, match=r"model.init_args.optimization.lr_schedule must be one of warmup_cosine, release"
    ):
        Optimization(lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0, 1\)"):
        Optimization(lr_schedule="release", warmup_fraction=1.5)
    with pytest.raises(ValueError, match=r"warmup_steps must be >= 0"):
        Optimization(lr_schedule="release", warmup_steps=-1)


def test_warmup_is_a_fraction_of_the_run_unless_given_in_steps() -> None:
    assert resolve_warmup_steps(1650, 0.1, None) == 165  # DiDeMo: 5 of 50 epochs at the release's batch
    assert resolve_warmup_steps(46000, 0.1, None) == 4600  # LSMDC-FiB: a tenth of its run
    assert resolve_warmup_steps(46000, 0.1, 800) == 800  # the absolute override wins
    assert resolve_warmup_steps(46000, 0.0, None) == 0


def test_release_schedule_is_a_cosine_from_step_zero_multiplied_by_the_warmup() -> None:
    total, warmup, floor = 100, 10, 1e-3

    def annealed(step: int) -> float:  # mmcv CosineAnnealing: floor + (1 - floor) (1 + cos(pi t / T)) / 2
        return floor + (1 - floor) * (1 + math.cos(math.pi * step / total)) / 2

    assert release_cosine(0, warmup, total, floor) == pytest.approx(annealed(0) * floor)
    assert release_cosine(5, warmup, total, floor) == pytest.approx(annealed(5) * (1 - 0.5 * (1 - floor)))
    assert release_cosine(10, warmup, total, floor) == pytest.approx(annealed(10))
    assert release_cosine(50, warmup, total, floor) == pytest.approx(floor + (1 - floor) * 0.5)
    assert release_cosine(100, warmup, total, floor) == pytest.approx(floor)
    assert release_cosine(10, warmup, total, floor) < 1.0  # the peak is never quite reached
    # Ours starts the cosine after the warm-up: ~17% higher at mid-run (the figure).
    ratio = warmup_cosine(50, warmup, total, floor) / release_cosine(50, warmup, total, floor)
    assert ratio == pytest.approx(1.17, abs=0.005)


def test_task_schedule_resolves_warmup_from_the_trainers_steps() -> None:
    """configure_optimizers: a tenth of a 40-step run is 4 warm-up steps; the release shape when asked."""
    from lightning import Trainer

    model = RetrievalTask(
        clover_tiny(), embed_dim=16, optimization=Optimization(lr=1.0, min_lr_ratio=0.0, lr_schedule="release")
    )
    model.trainer = Trainer(max_steps=40, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    schedule = model.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    assert [schedule(step) for step in (0, 4, 20)] == pytest.approx([0.0, (1 + math.cos(math.pi * 4 / 40)) / 2, 0.5])
    model = RetrievalTask(
        clover_tiny(), embed_dim=16, optimization=Optimization(lr=1.0, min_lr_ratio=0.0, warmup_steps=8)
    )
    model.trainer = Trainer(max_steps=40, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    schedule = model.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    assert [schedule(step) for step in (4, 8)] == pytest.approx([0.5, 1.0])
