"""SIGTERM (a preempted job) saves last.ckpt where training stands, and ``clover-pl`` exits 143, not 0."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import SIGTERMException

from clover_pl.callbacks import ModelCheckpoint
from clover_pl.checkpoint_io import SafeCheckpointIO
from clover_pl.lightning_cli import CloverCLI
from fault_points import SignalAt


def test_sigterm_saves_last_mid_run(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=100)
    trainer = L.Trainer(
        max_steps=20,
        limit_val_batches=0,
        callbacks=[SignalAt(step=3, signal_name="SIGTERM"), checkpoint],
        plugins=[SafeCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(SIGTERMException):
        trainer.fit(BoringModel())
    assert trainer.received_sigterm
    saved = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3  # the step it stopped at, not a scheduled save (none before step 100)


def test_the_cli_exits_143_on_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    def preempted(self: LightningCLI, subcommand: str) -> None:
        raise SIGTERMException

    monkeypatch.setattr(LightningCLI, "_run_subcommand", preempted)
    cli = CloverCLI.__new__(CloverCLI)  # only the subcommand runner is under test
    with pytest.raises(SystemExit) as exit_info:
        cli._run_subcommand("fit")
    assert exit_info.value.code == 143
