"""Through the CLI: fine-tuning without chosen weights stops in one line; zero-shot testing from a pretraining
checkpoint in --ckpt_path still works; the checkpoint of a CLI run loads with no other argument."""

from pathlib import Path

import lightning as L
import pytest
import torch

from clover_pl.cli import main, run_cli
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask, RetrievalTask


@pytest.fixture(scope="module")
def retrieval_root(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clover_pl.prepare.synthetic_retrieval import prepare_synthetic_retrieval

    root = tmp_path_factory.mktemp("guard") / "retrieval"
    prepare_synthetic_retrieval(str(synthetic_data), str(root), train_videos=4, val_videos=2)
    return root


def retrieval_args(synthetic_data: Path, root: Path, *extra: str) -> list[str]:
    return [
        "--config=conf/retrieval/synthetic.yaml",
        "--config=conf/debug/tiny.yaml",
        f"--data.init_args.root={root}",
        f"--data.init_args.tokenizer={synthetic_data}/vocab.txt",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        *extra,
    ]


@pytest.mark.slow
def test_fit_without_init_from_stops_in_one_line(
    synthetic_data: Path, retrieval_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    args = retrieval_args(synthetic_data, retrieval_root, "--model.init_args.init_from=null")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: RetrievalTask would fine-tune from random weights: set ")
    assert "model.init_args.init_from" in error[-1]
    assert "Traceback" not in "\n".join(error)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # nothing trained, nothing saved


@pytest.mark.slow
def test_zero_shot_test_from_a_pretraining_checkpoint_and_loading_the_fit(
    synthetic_data: Path, retrieval_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    pretrain = PretrainTask(clover_tiny(), embed_dim=64)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(pretrain)
    checkpoint = tmp_path / "pretrain.ckpt"
    trainer.save_checkpoint(checkpoint)
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "run"))
    args = retrieval_args(synthetic_data, retrieval_root, "--model.init_args.init_from=null")
    zero_shot = run_cli(["test", *args, f"--ckpt_path={checkpoint}"])
    torch.testing.assert_close(zero_shot.model.heads.state_dict(), pretrain.heads.state_dict())
    assert zero_shot.model.results["test"]["gallery"] > 0
    # Fine-tuning from it through the CLI, then loading the run's checkpoint in Python with no other argument.
    args = retrieval_args(synthetic_data, retrieval_root, f"--model.init_args.init_from={checkpoint}")
    run_cli(["fit", *args, "--trainer.limit_val_batches=0"])
    loaded = RetrievalTask.load_from_checkpoint(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    assert loaded.hparams.init_from is None  # the weights come from the checkpoint, not from init_from again
    assert loaded.hparams.embed_dim == 64
