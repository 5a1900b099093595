"""Typed reads of the ``Trainer`` attributes that Lightning sets from outside the class.

``Trainer.datamodule``, ``Trainer.log_every_n_steps`` and ``Trainer.fast_dev_run`` are plain attributes that
Lightning's connectors assign (``_DataConnector``, ``_LoggerConnector``, ``trainer/setup.py``) without declaring them
on ``Trainer``, so a type checker does not see them. These functions read them with the types Lightning gives them.
"""

from __future__ import annotations

import lightning as L


def attached_datamodule(trainer: L.Trainer) -> L.LightningDataModule | None:
    """The data module passed to ``fit``/``validate``/``test``/``predict``; None when dataloaders were passed."""
    datamodule: L.LightningDataModule | None = trainer.datamodule  # type: ignore[attr-defined]  # set by _DataConnector
    return datamodule


def log_every_n_steps(trainer: L.Trainer) -> int:
    """The trainer's logging interval in optimiser steps (``Trainer(log_every_n_steps=...)``; 0 under barebones)."""
    steps: int = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by _LoggerConnector
    return steps


def fast_dev_run(trainer: L.Trainer) -> int | bool:
    """``Trainer(fast_dev_run=...)``: False, or the number of batches of a smoke run (True for one)."""
    value: int | bool = trainer.fast_dev_run  # type: ignore[attr-defined]  # set by trainer/setup.py
    return value
