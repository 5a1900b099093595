"""Batch assembly shared by the datamodules: samples stacked key by key, skip reasons counted."""

from __future__ import annotations

from typing import Any

import torch


def stack(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples key by key (every value a tensor of one shape per key)."""
    return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}


def count_reasons(reasons: list[str]) -> dict[str, int]:
    """{reason: count} of a list of skip reasons, in first-seen order."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return counts
