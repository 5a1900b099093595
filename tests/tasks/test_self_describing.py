"""Checkpoints rebuild their task alone; fine-tuning refuses random weights; an encoder-only BERT builds pretraining."""

from pathlib import Path

import lightning as L
import pytest
import torch
from transformers import BertConfig, BertModel

import clover_pl
from clover_pl.losses import CloverObjective
from clover_pl.models import clover_tiny
from clover_pl.models.architecture import build_module
from clover_pl.tasks import (
    FillInBlankAnswerer,
    OpenEndedAnswerer,
    PretrainTask,
    RetrievalTask,
    SimilarityChoiceAnswerer,
    VideoQATask,
)
from clover_pl.tasks.optimization import Optimization
from clover_pl.tasks.self_describing import RECORD_KEY, RandomInitError


def save_like_lightning(task: L.LightningModule, path: Path) -> None:
    """A checkpoint as Trainer.save_checkpoint writes it: state dict, hyper-parameters and the task's own entries."""
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)


def assert_same_weights(left: torch.nn.Module, right: torch.nn.Module) -> None:
    left_state, right_state = left.state_dict(), right.state_dict()
    assert sorted(left_state) == sorted(right_state)
    for name, value in left_state.items():
        torch.testing.assert_close(right_state[name], value, rtol=0, atol=0, msg=name)


def test_every_task_loads_from_its_checkpoint_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tasks = {
        "pretrain": PretrainTask(clover_tiny(), CloverObjective(use_fused=True), embed_dim=16),
        "retrieval": RetrievalTask(clover_tiny(), embed_dim=16, optimization=Optimization(lr=3e-4)),
        "open_ended": VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=7, hidden_dim=16)),
        "similarity": VideoQATask(clover_tiny(), SimilarityChoiceAnswerer(embed_dim=8)),
    }
    for name, task in tasks.items():
        path = tmp_path / f"{name}.ckpt"
        save_like_lightning(task, path)
        checkpoint = torch.load(path, weights_only=True)  # loadable without unpickling code
        assert checkpoint[RECORD_KEY]["task"].endswith(type(task).__name__)
        loaded = type(task).load_from_checkpoint(str(path))
        assert_same_weights(task, loaded)
        assert loaded.hparams == task.hparams
    assert RetrievalTask.load_from_checkpoint(str(tmp_path / "retrieval.ckpt")).optimization.lr == 3e-4


def test_a_checkpoint_from_before_the_objective_module_rebuilds_it_from_the_old_arguments(tmp_path: Path) -> None:
    task = PretrainTask(clover_tiny(), CloverObjective(use_mlm=False, use_fused=False), embed_dim=16)
    path = tmp_path / "old.ckpt"
    save_like_lightning(task, path)
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint[RECORD_KEY]["modules"]["objective"]  # as written before the objective was a module
    checkpoint["hyper_parameters"] = {"embed_dim": 16, "use_mlm": False, "use_fused": False, "lr": 1e-3}
    torch.save(checkpoint, path)
    loaded = PretrainTask.load_from_checkpoint(str(path))
    assert loaded.mlm_head is None
    assert loaded.fused_heads is None
    assert not loaded.objective.use_mlm
    assert_same_weights(task, loaded)


def test_the_description_rebuilds_pretrained_shapes_without_the_bert_directory(bert_dir: str, tmp_path: Path) -> None:
    task = PretrainTask(clover_tiny(bert_path=bert_dir), bert_path=bert_dir, embed_dim=16)
    path = tmp_path / "pretrain.ckpt"
    save_like_lightning(task, path)
    moved = tmp_path / "elsewhere"
    Path(bert_dir).rename(moved)  # the BERT directory is gone where the checkpoint is loaded
    try:
        loaded = PretrainTask.load_from_checkpoint(str(path))
    finally:
        moved.rename(bert_dir)
    assert_same_weights(task, loaded)
    assert loaded.backbone.text.bert.config.num_hidden_layers == 3  # from the directory's config, not the defaults
    assert loaded.backbone.text.load_report is None  # nothing was read from a BERT directory


def test_a_fill_in_blank_checkpoint_keeps_its_extra_parts(tmp_path: Path) -> None:
    task = VideoQATask(clover_tiny(), FillInBlankAnswerer(num_answers=5, hidden_dim=16))
    path = tmp_path / "fib.ckpt"
    save_like_lightning(task, path)
    assert_same_weights(task, VideoQATask.load_from_checkpoint(str(path)))


def test_load_checkpoint_returns_backbone_and_heads_for_inference(tmp_path: Path) -> None:
    task = PretrainTask(clover_tiny(), embed_dim=16)
    path = tmp_path / "pretrain.ckpt"
    save_like_lightning(task, path)
    backbone, heads = clover_pl.load_checkpoint(str(path))
    assert sorted(heads) == ["fused_heads", "heads", "mlm_head"]
    assert not backbone.training
    assert not heads["heads"].training
    video = torch.randn(2, 2, 3, 32, 32)
    task.eval()
    with torch.no_grad():
        expected = task.heads.project_video(task.backbone.encode_video(video))
        got = heads["heads"].project_video(backbone.encode_video(video))
    torch.testing.assert_close(got, expected)


def test_a_checkpoint_without_description_says_what_to_pass(tmp_path: Path, pretrain_checkpoint) -> None:
    path, task = pretrain_checkpoint  # state_dict only, as before checkpoints described themselves
    with pytest.raises(ValueError, match="does not describe its backbone.*backbone="):
        PretrainTask.load_from_checkpoint(str(path))
    loaded = PretrainTask.load_from_checkpoint(str(path), backbone=clover_tiny(), embed_dim=16)
    assert_same_weights(task, loaded)


def test_descriptions_only_build_clover_pl_classes() -> None:
    with pytest.raises(ValueError, match="outside the clover_pl package"):
        build_module({"class_path": "os.system", "init_args": {"command": "true"}})
    from clover_pl.models import CloverBackbone

    with pytest.raises(ValueError, match="is not a CloverBackbone"):
        build_module({"class_path": "clover_pl.models.heads.QAHead", "init_args": {}}, CloverBackbone)


# ------------------------------------------------------------------ the fit check
def retrieval_batches(steps: int = 2) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "video": torch.randn(2, 2, 3, 32, 32, generator=generator),
            "input_ids": torch.randint(5, 30, (2, 8), generator=generator),
            "attention_mask": torch.ones(2, 8, dtype=torch.long),
        }
        for _ in range(steps)
    ]


def fit(task: L.LightningModule, tmp_path: Path, ckpt_path: str | None = None, steps: int = 0) -> L.Trainer:
    """Trainer.fit; with ``steps=0`` it runs the start-of-fit hooks (the check) and stops before any step."""
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        enable_checkpointing=False,
    )
    batches = torch.utils.data.DataLoader(retrieval_batches(2), batch_size=None)  # already batched
    trainer.fit(task, train_dataloaders=batches, ckpt_path=ckpt_path)
    return trainer


def test_fine_tuning_from_random_weights_stops_before_training(tmp_path: Path) -> None:
    task = RetrievalTask(clover_tiny(), embed_dim=16)
    before = {name: value.clone() for name, value in task.state_dict().items()}
    with pytest.raises(RandomInitError, match="model.init_args.init_from") as error:
        fit(task, tmp_path)
    assert "\n" not in str(error.value)
    assert "allow_random_init" in str(error.value)
    assert all(torch.equal(before[name], value) for name, value in task.state_dict().items())  # nothing trained
    with pytest.raises(RandomInitError, match="init_from"):
        fit(VideoQATask(clover_tiny(), OpenEndedAnswerer(num_answers=4, hidden_dim=16)), tmp_path)


def test_fine_tuning_starts_from_chosen_weights(tmp_path: Path, pretrain_checkpoint) -> None:
    path, _ = pretrain_checkpoint
    fit(RetrievalTask(clover_tiny(), init_from=str(path), embed_dim=16), tmp_path)  # a pretraining checkpoint
    fit(RetrievalTask(clover_tiny(), embed_dim=16, allow_random_init=True), tmp_path)  # on purpose


@pytest.mark.slow
def test_resuming_counts_as_chosen_weights(tmp_path: Path) -> None:
    saved = tmp_path / "resume.ckpt"
    trainer = fit(RetrievalTask(clover_tiny(), embed_dim=16, allow_random_init=True), tmp_path, steps=1)
    trainer.save_checkpoint(saved)
    resumed = fit(RetrievalTask(clover_tiny(), embed_dim=16), tmp_path, ckpt_path=str(saved), steps=2)  # resume
    assert resumed.global_step == 2


def test_pretrained_swin_and_bert_together_count_as_chosen_weights(bert_dir: str, tmp_path: Path) -> None:
    backbone = clover_tiny(bert_path=bert_dir)
    with pytest.raises(RandomInitError, match="no Video Swin checkpoint"):
        fit(RetrievalTask(backbone, embed_dim=16), tmp_path)  # BERT alone leaves a random video encoder
    from clover_pl.models.load_report import LoadReport

    backbone.video.load_report = LoadReport(source="swin.pth", loaded=["x"])  # as a Swin checkpoint leaves it
    fit(RetrievalTask(backbone, embed_dim=16), tmp_path)


def test_the_load_report_is_printed_at_the_start_of_fit(tmp_path: Path, pretrain_checkpoint, caplog) -> None:
    path, _ = pretrain_checkpoint
    with caplog.at_level("INFO"):
        fit(RetrievalTask(clover_tiny(), init_from=str(path), embed_dim=16), tmp_path)
    report = next(r.getMessage() for r in caplog.records if "weights at the start of fit" in r.getMessage())
    assert f"init_from: loaded 110 tensors (0 interpolated), skipped 18, missing 0 from {path}" in report
    assert "video encoder as built: random initialisation" in report


# ------------------------------------------------------------ encoder-only BERT
def test_an_encoder_only_bert_directory_builds_pretraining(bert_dir: str, tmp_path: Path) -> None:
    # A sentence-transformers export holds BertModel weights (bare keys, a pooler, no cls.predictions).
    encoder_only = tmp_path / "encoder_only"
    config = BertConfig.from_pretrained(bert_dir)
    torch.manual_seed(2)
    BertModel(config).save_pretrained(encoder_only)
    (encoder_only / "vocab.txt").write_text(Path(bert_dir, "vocab.txt").read_text())
    with pytest.warns(UserWarning, match="no MLM head") as warned:
        task = PretrainTask(clover_tiny(bert_path=str(encoder_only)), bert_path=str(encoder_only), embed_dim=16)
    assert len([w for w in warned if "MLM head" in str(w.message)]) == 1
    message = str(next(w.message for w in warned if "MLM head" in str(w.message)))
    assert "cls.predictions.transform.dense.weight" in message
    assert "cls.predictions.bias" in message
    reference = BertModel.from_pretrained(encoder_only).state_dict()
    torch.testing.assert_close(
        task.backbone.text.bert.embeddings.word_embeddings.weight, reference["embeddings.word_embeddings.weight"]
    )
    torch.testing.assert_close(
        task.backbone.fusion.encoder.layer[0].output.dense.weight, reference["encoder.layer.0.output.dense.weight"]
    )
    assert task.mlm_head.load_report.missing
    assert not task.mlm_head.load_report.loaded
    assert task.mlm_head.decoder.out_features == config.vocab_size


class OwnAnswerer(OpenEndedAnswerer):
    """A user's answerer, outside the clover_pl package."""


def test_a_module_from_outside_clover_pl_is_passed_not_built(tmp_path: Path) -> None:
    task = VideoQATask(clover_tiny(), OwnAnswerer(num_answers=3, hidden_dim=8))
    path = tmp_path / "own.ckpt"
    save_like_lightning(task, path)
    with pytest.raises(ValueError, match=r"cannot rebuild its answerer .*outside the clover_pl package.*answerer="):
        VideoQATask.load_from_checkpoint(str(path))
    loaded = VideoQATask.load_from_checkpoint(str(path), answerer=OwnAnswerer(num_answers=3, hidden_dim=8))
    assert_same_weights(task, loaded)
