"""Tasks: LightningModules that receive the backbone."""

from clover_pl.tasks.answerers import (
    FillInBlankAnswerer,
    FusedChoiceAnswerer,
    OpenEndedAnswerer,
    SimilarityChoiceAnswerer,
)
from clover_pl.tasks.pretrain import PretrainTask
from clover_pl.tasks.retrieval import RetrievalTask
from clover_pl.tasks.videoqa import VideoQATask

__all__ = [
    "FillInBlankAnswerer",
    "FusedChoiceAnswerer",
    "OpenEndedAnswerer",
    "PretrainTask",
    "RetrievalTask",
    "SimilarityChoiceAnswerer",
    "VideoQATask",
]
