import pytest
import torch
import torch.nn.functional as F

from clover_pl.models import clover_tiny
from clover_pl.tasks import (
    FillInBlankAnswerer,
    FusedChoiceAnswerer,
    OpenEndedAnswerer,
    SimilarityChoiceAnswerer,
    VideoQATask,
)
from clover_pl.tasks.optimization import decay_groups

B, K, L, VOCAB = 3, 5, 8, 128


def _clips(views: int = 1) -> torch.Tensor:
    return torch.randn(B, views, 2, 3, 32, 32)


def _texts(choices: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (B, L) if choices is None else (B, choices, L)
    ids = torch.randint(5, VOCAB, shape)
    ids[..., 0] = 2
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., -2:] = 0
    return ids, mask


@pytest.mark.slow
def test_fused_choice_equals_a_naive_loop_over_candidates() -> None:
    task = VideoQATask(clover_tiny(), FusedChoiceAnswerer(hidden_dim=16)).eval()
    ids, mask = _texts(K)
    batch = {"video": _clips(), "readable": torch.ones(B, dtype=torch.bool), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        scores = task.scores(batch)
        backbone, head = task.backbone, task.answerer.head
        naive = torch.empty(B, K)
        for b in range(B):
            tokens = backbone.encode_video(batch["video"][b])  # (1, T', H', W', C): one view
            for k in range(K):
                states = backbone.encode_text(ids[b, k][None], mask[b, k][None])
                naive[b, k] = head(backbone.fuse(tokens, states, mask[b, k][None]).cls)[0, 0]
    assert scores.shape == (B, K)
    torch.testing.assert_close(scores, naive, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_views_are_averaged_after_the_video_encoder() -> None:
    task = VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=7, hidden_dim=16)).eval()
    ids, mask = _texts()
    video = _clips(views=3)
    batch = {"video": video, "readable": torch.ones(B, dtype=torch.bool), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        scores = task.scores(batch)
        tokens = torch.stack([task.backbone.encode_video(video[:, v]) for v in range(3)]).mean(0)
        fused = task.backbone.fuse(tokens, task.backbone.encode_text(ids, mask), mask).cls
        torch.testing.assert_close(scores, task.answerer.head(fused), rtol=1e-4, atol=1e-5)


def test_fill_in_blank_reads_the_blank_with_its_own_extra_cls() -> None:
    task = VideoQATask(clover_tiny(), FillInBlankAnswerer(num_answers=9, hidden_dim=16)).eval()
    ids, mask = _texts()
    position = torch.tensor([1, 4, 5])
    batch = {
        "video": _clips(),
        "readable": torch.ones(B, dtype=torch.bool),
        "input_ids": ids,
        "attention_mask": mask,
        "mask_position": position,
    }
    with torch.no_grad():
        scores = task.scores(batch)
        tokens = task.backbone.encode_video(batch["video"][:, 0])
        states = task.backbone.encode_text(ids, mask)
        fused = task.backbone.fuse(tokens, states, mask, task.answerer.cls_token)
        expected = task.answerer.head(fused.text[torch.arange(B), position])
        # The extra CLS sits between the visual tokens and the text: it changes what the blank sees.
        without = task.backbone.fuse(tokens, states, mask).text[torch.arange(B), position]
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(task.answerer.head(without), expected)
    assert task.backbone.fusion.extra_cls is None  # the backbone stays that of pretraining


def test_similarity_choice_is_cosine_over_temperature() -> None:
    task = VideoQATask(clover_tiny(), SimilarityChoiceAnswerer(embed_dim=16, temperature=0.05)).eval()
    ids, mask = _texts(K)
    batch = {"video": _clips(), "readable": torch.ones(B, dtype=torch.bool), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        scores = task.scores(batch)
        heads = task.answerer.heads
        video = heads.project_video(task.backbone.encode_video(batch["video"][:, 0]))
        for b in range(B):
            text = heads.project_text(task.backbone.encode_text(ids[b], mask[b]))
            cosine = F.cosine_similarity(video[b][None], text, dim=-1)
            torch.testing.assert_close(scores[b], cosine / 0.05, rtol=1e-4, atol=1e-4)
    # The fusion encoder and the mask token are not used: frozen, so DDP finds no unused trainable parameter.
    assert not any(p.requires_grad for p in task.backbone.fusion.parameters())
    assert not task.backbone.video.mask_token.requires_grad


def test_init_from_takes_the_backbone_and_leaves_the_head_fresh(pretrain_checkpoint) -> None:
    path, pretrain = pretrain_checkpoint
    torch.manual_seed(0)
    task = VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=11, hidden_dim=16), init_from=str(path))
    head_before = task.answerer.head.layers[1].weight.clone()
    task.setup("fit")
    theirs = pretrain.state_dict()
    for name, value in task.backbone.state_dict().items():
        torch.testing.assert_close(value, theirs[f"backbone.{name}"], msg=name)
    torch.testing.assert_close(task.answerer.head.layers[1].weight, head_before)
    assert task.load_report is not None
    assert any(name.startswith("answerer.head.") for name in task.load_report.missing)
    assert any(name.startswith("mlm_head.") for name in task.load_report.skipped)


def test_similarity_choice_takes_the_dual_encoder_heads(pretrain_checkpoint) -> None:
    path, pretrain = pretrain_checkpoint
    task = VideoQATask(clover_tiny(), SimilarityChoiceAnswerer(embed_dim=16))
    checkpoint = torch.load(path, weights_only=True)
    task.on_load_checkpoint(checkpoint)  # `clover-pl test --ckpt_path <pretrain.ckpt>`: the zero-shot path
    task.load_state_dict(checkpoint["state_dict"], strict=True)
    torch.testing.assert_close(task.answerer.heads.video.layers[0].weight, pretrain.heads.video.layers[0].weight)
    with pytest.raises(ValueError, match="shape mismatch for heads.video"):
        VideoQATask(clover_tiny(), SimilarityChoiceAnswerer(embed_dim=8), init_from=str(path)).setup("test")


def test_zero_shot_open_ended_from_a_pretraining_checkpoint_is_refused(pretrain_checkpoint) -> None:
    path, _ = pretrain_checkpoint
    task = VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=11, hidden_dim=16))
    with pytest.raises(ValueError, match="no trained VideoQA answerer"):
        task.on_load_checkpoint(torch.load(path, weights_only=True))


def test_qa_head_learning_rate_multiplier() -> None:
    task = VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=5, hidden_dim=16), head_lr_multiplier=10.0)
    groups = decay_groups(task.named_parameters(), 0.01, {"answerer.head.": 10.0})
    head = {id(p) for p in task.answerer.head.parameters()}
    for group in groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1, "a group mixes head and backbone parameters"
        assert group.get("lr_scale", 1.0) == (10.0 if in_head == {True} else 1.0)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in task.parameters())


def test_configured_vocabulary_size_must_match_the_data() -> None:
    answerer = OpenEndedAnswerer(num_answers=10, hidden_dim=16)
    task = VideoQATask(clover_tiny(), answerer)
    with pytest.raises(ValueError, match="num_answers=10 but the dataset's answer vocabulary has 12"):
        answerer.bind(task.backbone, 12)
