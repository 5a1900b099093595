import pytest
import torch

from clover_pl.losses import CloverObjective
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask
from clover_pl.tasks.optimization import decay_groups, warmup_cosine


def batch(size: int = 4, frames: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 80, (size, length))
    ids[:, 0] = 2
    mask = torch.ones(size, length, dtype=torch.long)
    mask[0, 6:] = 0
    masked = ids.clone()
    labels = torch.full_like(ids, -100)
    masked[:, 2] = 4
    labels[:, 2] = ids[:, 2]
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


def task(**switches) -> PretrainTask:
    return PretrainTask(clover_tiny(), CloverObjective(**switches), embed_dim=16)


def test_full_objective_terms_and_gradients() -> None:
    model = task()
    terms = model.compute_losses(batch())
    assert set(terms) == {"loss", "tma_video", "tma_text", "rank_video", "rank_text", "mlm", "mlm_accuracy"}
    assert all(torch.isfinite(value) for value in terms.values())
    expected = terms["tma_video"] + terms["tma_text"] + terms["rank_video"] + terms["rank_text"] + terms["mlm"]
    torch.testing.assert_close(terms["loss"], expected)
    terms["loss"].backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_weights_scale_their_terms() -> None:
    data = batch()
    torch.manual_seed(1)
    base = task().eval().compute_losses(data)
    torch.manual_seed(1)
    weighted = task(weight_mlm=0.0, weight_rank=2.0).eval().compute_losses(data)
    expected = base["tma_video"] + base["tma_text"] + 2 * (base["rank_video"] + base["rank_text"])
    torch.testing.assert_close(weighted["loss"], expected)


@pytest.mark.parametrize(
    ("switches", "terms"),
    [
        ({"use_masked": False, "use_ranking": False}, {"tma_video", "tma_text", "mlm"}),
        ({"use_fused": False}, {"tma_video", "tma_text", "rank_video", "rank_text", "mlm"}),
        ({"use_ranking": False}, {"tma_video", "tma_text", "mlm"}),
        ({"use_mlm": False}, {"tma_video", "tma_text", "rank_video", "rank_text"}),
        ({"use_tma": False}, {"contrastive", "mlm"}),
    ],
)
def test_ablation_switches(switches: dict[str, bool], terms: set[str]) -> None:
    model = task(**switches)
    out = model.compute_losses(batch())
    assert set(out) - {"loss", "mlm_accuracy"} == terms
    out["loss"].backward()
    trained = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None}
    assert "backbone" in trained
    assert "heads" in trained
    if not model.objective.fused_candidates:
        assert model.fused_heads is None


def test_baseline_is_pairwise_contrastive_plus_mlm() -> None:
    model = task(use_tma=False)
    assert model.fused_heads is None
    out = model.compute_losses(batch())
    torch.testing.assert_close(out["loss"], out["contrastive"] + out["mlm"])


@pytest.mark.slow
def test_an_image_batch_runs_the_same_step() -> None:
    model = task()
    out = model.compute_losses(batch(frames=1))
    assert torch.isfinite(out["loss"])


def test_decay_groups_exclude_norms_biases_and_position_tables() -> None:
    model = task()
    groups = decay_groups(model.named_parameters(), 0.005)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    plain = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.005
    assert groups[1]["weight_decay"] == 0.0
    assert any("relative_position_bias_table" in n for n in plain)
    assert not any("relative_position_bias_table" in n for n in decayed)
    assert "backbone.video.mask_token" in decayed
    assert "backbone.fusion.temporal_position" in decayed
    assert all(not n.endswith(".bias") for n in decayed)
    assert len(decayed) + len(plain) == len(names)


def test_warmup_then_cosine() -> None:
    assert warmup_cosine(0, 10, 110, 1e-3) == pytest.approx(1e-3)
    assert warmup_cosine(5, 10, 110, 1e-3) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert warmup_cosine(10, 10, 110, 1e-3) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 1e-3) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert warmup_cosine(110, 10, 110, 1e-3) == pytest.approx(1e-3)
    assert warmup_cosine(500, 10, 110, 1e-3) == pytest.approx(1e-3)


def test_mlm_head_from_bert_directory(bert_dir: str) -> None:
    from clover_pl.models import clover_backbone

    model = PretrainTask(clover_backbone("tiny", bert_path=bert_dir), bert_path=bert_dir, embed_dim=16)
    assert model.mlm_head.load_report is not None
