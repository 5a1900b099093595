"""Lightning callbacks of clover-pl runs, grouped by purpose; every class is importable from here.

- :mod:`~clover_pl.callbacks.checkpointing`: ``ModelCheckpoint`` (``last.ckpt`` always the latest state).
- :mod:`~clover_pl.callbacks.reports`: what a run measured, written down (``RetrievalReport``, ``MetricsFile``,
  ``EmbeddingWriter``).
- :mod:`~clover_pl.callbacks.performance`: speed and memory (``ThreadLimit``, ``SpeedMonitor``, ``CompileEncoders``,
  ``SwinActivationCheckpointing``).
- What a run shows: :mod:`~clover_pl.callbacks.tensorboard` (``Pictures``, ``SelectionMetricHParams``),
  :mod:`~clover_pl.callbacks.retrieval_figure` (``RetrievalFigure``), :mod:`~clover_pl.callbacks.progress_bar`
  (``StepProgressBar``), :mod:`~clover_pl.callbacks.model_summary` (``ModelSummary``); the figures are drawn by
  :mod:`~clover_pl.callbacks.drawing` from clips collected by :mod:`~clover_pl.callbacks.validation_gallery`.

Configs name them as ``clover_pl.callbacks.<Class>``.
"""

from clover_pl.callbacks.checkpointing import ModelCheckpoint
from clover_pl.callbacks.model_summary import ModelSummary
from clover_pl.callbacks.performance import CompileEncoders, SpeedMonitor, SwinActivationCheckpointing, ThreadLimit
from clover_pl.callbacks.progress_bar import StepProgressBar
from clover_pl.callbacks.reports import EmbeddingWriter, MetricsFile, RetrievalReport
from clover_pl.callbacks.retrieval_figure import RetrievalFigure
from clover_pl.callbacks.tensorboard import Pictures, SelectionMetricHParams

__all__ = [
    "CompileEncoders",
    "EmbeddingWriter",
    "MetricsFile",
    "ModelCheckpoint",
    "ModelSummary",
    "Pictures",
    "RetrievalFigure",
    "RetrievalReport",
    "SelectionMetricHParams",
    "SpeedMonitor",
    "StepProgressBar",
    "SwinActivationCheckpointing",
    "ThreadLimit",
]
