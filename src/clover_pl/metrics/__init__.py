"""Evaluation metrics."""

from clover_pl.metrics.retrieval import ranks_of_targets, retrieval_metrics, summarize_ranks

__all__ = ["ranks_of_targets", "retrieval_metrics", "summarize_ranks"]
