"""``clover_pl.callbacks.ModelCheckpoint``: ``last.ckpt`` follows training even when the monitor stops improving."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from clover_pl.callbacks import ModelCheckpoint


class Worsening(BoringModel):
    """A model whose monitored score only gets worse after the first validation."""

    def on_validation_epoch_end(self) -> None:
        self.log("val/score", -float(self.global_step))


def _fit(tmp_path: Path, callback: L.Callback, max_steps: int = 6) -> None:
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        val_check_interval=2,
        limit_val_batches=1,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Worsening())


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_last_is_the_latest_state_not_the_best(tmp_path: Path) -> None:
    ours = {"dirpath": tmp_path / "ours", "filename": "best", "monitor": "val/score", "mode": "max", "save_last": True}
    _fit(tmp_path, ModelCheckpoint(**ours))
    assert _step(tmp_path / "ours" / "best.ckpt") == 2
    assert _step(tmp_path / "ours" / "last.ckpt") == 6
    # Lightning's own keeps last.ckpt at the best step here: the reason for the subclass.
    theirs = {**ours, "dirpath": tmp_path / "theirs"}
    _fit(tmp_path, L.pytorch.callbacks.ModelCheckpoint(**theirs))
    assert _step(tmp_path / "theirs" / "last.ckpt") == 2


def test_last_is_written_at_the_end_between_validations(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/score", mode="max", save_last=True)
    _fit(tmp_path, callback, max_steps=5)  # validations at 2 and 4; training ends at 5
    assert _step(tmp_path / "ckpt" / "last.ckpt") == 5
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
