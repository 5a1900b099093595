"""Evaluation metrics."""

from clover_pl.metrics.qa import correct_answers, qa_metrics
from clover_pl.metrics.retrieval import (
    ranks_from_embeddings,
    ranks_of_targets,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    summarize_ranks,
    video_to_text_ranks_from_embeddings,
)

__all__ = [
    "correct_answers",
    "qa_metrics",
    "ranks_from_embeddings",
    "ranks_of_targets",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "summarize_ranks",
    "video_to_text_ranks_from_embeddings",
]
