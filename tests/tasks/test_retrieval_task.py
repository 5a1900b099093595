from pathlib import Path

import pytest
import torch

from clover_pl.metrics import retrieval_metrics
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask, RetrievalTask
from clover_pl.tasks.evaluation import retrieval_evaluation


def test_init_from_takes_backbone_and_heads_strictly(pretrain_checkpoint: tuple[Path, PretrainTask]) -> None:
    path, pretrain = pretrain_checkpoint
    task = RetrievalTask(clover_tiny(), init_from=str(path), embed_dim=16)
    ours, theirs = task.state_dict(), pretrain.state_dict()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], msg=name)
    report = task.load_report
    assert report is not None
    assert any(name.startswith("mlm_head.") for name in report.skipped)
    assert any(name.startswith("fused_heads.") for name in report.skipped)
    assert len(report.loaded) == len(ours)


def test_init_from_errors_name_the_key_and_the_path(tmp_path: Path, pretrain_checkpoint) -> None:
    path, pretrain = pretrain_checkpoint
    state = pretrain.state_dict()
    del state["heads.video.layers.0.weight"]
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": state}, broken)
    with pytest.raises(ValueError, match=r"broken.ckpt lacks heads.video.layers.0.weight"):
        RetrievalTask(clover_tiny(), init_from=str(broken), embed_dim=16)
    with pytest.raises(ValueError, match=r"shape mismatch for heads.video.layers.0.weight .*pretrain.ckpt"):
        RetrievalTask(clover_tiny(), init_from=str(path), embed_dim=8)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.ckpt"):
        RetrievalTask(clover_tiny(), init_from=str(tmp_path / "nope.ckpt"))
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.ckpt: not a PyTorch checkpoint"):
        RetrievalTask(clover_tiny(), init_from=str(tmp_path / "text.ckpt"))


def test_on_load_checkpoint_converts_a_pretraining_checkpoint(pretrain_checkpoint) -> None:
    path, pretrain = pretrain_checkpoint
    task = RetrievalTask(clover_tiny(), embed_dim=16)
    checkpoint = torch.load(path, weights_only=True)
    task.on_load_checkpoint(checkpoint)
    task.load_state_dict(checkpoint["state_dict"], strict=True)
    torch.testing.assert_close(task.heads.text.layers[0].weight, pretrain.heads.text.layers[0].weight)


def test_training_step_is_symmetric_infonce() -> None:
    task = RetrievalTask(clover_tiny(), embed_dim=16)
    batch = {
        "video": torch.randn(4, 2, 3, 32, 32),
        "input_ids": torch.randint(5, 80, (4, 8)),
        "attention_mask": torch.ones(4, 8, dtype=torch.long),
    }
    video, text = task.embed(batch["video"], batch["input_ids"], batch["attention_mask"])
    loss = task.loss(video, text)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert task.backbone.video.patch_embed.proj.weight.grad is not None


def test_evaluation_dedupes_videos_and_maps_captions() -> None:
    torch.manual_seed(0)
    video, text = torch.randn(4, 8), torch.randn(7, 8)
    text_to_video = torch.tensor([0, 0, 1, 2, 3, 3, 3])
    ids = torch.tensor([10, 11, 12, 13])
    # Videos arrive out of order and one twice (a padded distributed split); captions refer to ids.
    order = torch.tensor([2, 0, 3, 1, 2])
    metrics = retrieval_evaluation(video[order], ids[order], text, ids[text_to_video])
    normalized_video = torch.nn.functional.normalize(video, dim=-1)
    normalized_text = torch.nn.functional.normalize(text, dim=-1)
    expected = retrieval_metrics(normalized_text @ normalized_video.t(), text_to_video)
    for name, value in expected.items():
        torch.testing.assert_close(metrics[name], value, msg=name)
    assert metrics["gallery"] == 4
    with pytest.raises(ValueError, match="not in the gallery"):
        retrieval_evaluation(video, ids, text, torch.tensor([10, 10, 11, 12, 13, 13, 99]))
