"""Tasks: LightningModules that receive the backbone."""

from clover_pl.tasks.pretrain import PretrainTask
from clover_pl.tasks.retrieval import RetrievalTask

__all__ = ["PretrainTask", "RetrievalTask"]
