"""Retrieval evaluation shared by the tasks: collect embeddings over an epoch, gather them, rank, summarise."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
import torch.nn.functional as F

from clover_pl.metrics import retrieval_metrics_from_embeddings


class EmbeddingCollector:
    """Per-rank tensors of an evaluation epoch, concatenated and gathered from every rank at the end."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = defaultdict(list)

    def add(self, **tensors: torch.Tensor) -> None:
        """Keep one batch's tensors (detached, float32 for embeddings)."""
        for name, tensor in tensors.items():
            tensor = tensor.detach()
            self.parts[name].append(tensor.float() if tensor.is_floating_point() else tensor)

    def gather(self) -> dict[str, torch.Tensor]:
        """Every rank's rows of every tensor, in rank order; empties the collector.

        Every rank must call it, also one that saw no batch (a rank can get no validation shard): the tensors go
        through ``all_gather_object``, which needs no shapes agreed in advance. Evaluation only, once per epoch.
        """
        local = {name: torch.cat(chunks).cpu() for name, chunks in self.parts.items()}
        self.parts = defaultdict(list)
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return local
        everyone: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.get_world_size())]
        dist.all_gather_object(everyone, local)
        names = sorted({name for part in everyone for name in part})
        return {name: torch.cat([part[name] for part in everyone if name in part]) for name in names}

    def __bool__(self) -> bool:
        return bool(self.parts)


def retrieval_evaluation(
    video: torch.Tensor, video_ids: torch.Tensor, text: torch.Tensor, text_video_ids: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Text-to-video and video-to-text metrics of dual-encoder embeddings, by cosine similarity.

    A video seen twice (a distributed split may repeat one) counts once; every caption is a query.

    Args:
        video: (Nv, E) video embeddings.
        video_ids: (Nv,) id of each video.
        text: (Nt, E) caption embeddings.
        text_video_ids: (Nt,) id of each caption's video.

    Returns:
        ``t2v_*`` and ``v2t_*`` R@1/5/10, median and mean rank, ``t2v_r_sum`` (R@1 + R@5 + R@10, for model
        selection), ``chance_r@1`` and ``gallery`` (number of videos).
    """
    unique_ids, first = _first_occurrence(video_ids)
    video = F.normalize(video[first], dim=-1)
    text = F.normalize(text, dim=-1)
    position = torch.searchsorted(unique_ids, text_video_ids).clamp(max=len(unique_ids) - 1)
    if (unique_ids[position] != text_video_ids).any():
        raise ValueError("a caption refers to a video that is not in the gallery")
    # Ranked in chunks: a gallery of a million videos against ten thousand queries stays in bounded memory.
    metrics = retrieval_metrics_from_embeddings(text, video, position)
    metrics["t2v_r_sum"] = metrics["t2v_r@1"] + metrics["t2v_r@5"] + metrics["t2v_r@10"]
    metrics["chance_r@1"] = torch.tensor(100.0 / len(unique_ids), dtype=torch.float64)
    metrics["gallery"] = torch.tensor(float(len(unique_ids)), dtype=torch.float64)
    return metrics


def _first_occurrence(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique ids and the index of each one's first occurrence."""
    order = torch.argsort(ids, stable=True)
    ordered = ids[order]
    keep = torch.ones_like(ordered, dtype=torch.bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep], order[keep]
