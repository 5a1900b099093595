"""Tasks: LightningModules that receive the backbone."""

from clover_pl.tasks.pretrain import PretrainTask

__all__ = ["PretrainTask"]
