"""Retrieval metrics from a full similarity matrix: recall@K, median and mean rank, both directions.

Ranks are 1-based and ties are counted against the query (conservative): the rank of the true item is
1 + the number of OTHER items scoring greater than or equal to it, so a constant similarity matrix ranks every
true item last instead of first. With several captions per video, every caption is a text-to-video query, and in
video-to-text a video's rank is the best rank among its captions.
"""

from __future__ import annotations

import torch

RECALL_AT = (1, 5, 10)


def ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Conservative 1-based rank of each query's target item.

    Args:
        scores: (Q, G) similarity of Q queries against G gallery items.
        targets: (Q,) index of each query's true item in the gallery.
        chunk_size: queries processed at once, to bound memory.

    Returns:
        (Q,) long ranks in [1, G].
    """
    ranks = []
    for start in range(0, scores.shape[0], chunk_size):
        block = scores[start : start + chunk_size]
        target_index = targets[start : start + chunk_size]
        target_score = block.gather(1, target_index[:, None])
        # >= counts the target itself once; ties with other items are counted against the query.
        ranks.append((block >= target_score).sum(dim=1))
    return torch.cat(ranks)


def summarize_ranks(ranks: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """R@1/5/10 (percent), median and mean rank of 1-based ranks, keyed ``{prefix}r@K``, ``{prefix}median_rank``."""
    ranks = ranks.double()
    metrics = {f"{prefix}r@{k}": 100.0 * (ranks <= k).double().mean() for k in RECALL_AT}
    metrics[f"{prefix}median_rank"] = ranks.quantile(0.5)  # the middle two averaged for an even count
    metrics[f"{prefix}mean_rank"] = ranks.mean()
    return metrics


def retrieval_metrics(similarity: torch.Tensor, text_to_video: torch.Tensor) -> dict[str, torch.Tensor]:
    """Text-to-video and video-to-text retrieval metrics.

    Args:
        similarity: (Nt, Nv) text-video similarity.
        text_to_video: (Nt,) index of each text's video; every video must have at least one text.

    Returns:
        ``t2v_r@1``, ``t2v_r@5``, ``t2v_r@10``, ``t2v_median_rank``, ``t2v_mean_rank`` and the same with ``v2t_``.
    """
    num_texts, num_videos = similarity.shape
    if text_to_video.shape != (num_texts,):
        raise ValueError(f"text_to_video has shape {tuple(text_to_video.shape)}, expected ({num_texts},)")
    counts = torch.bincount(text_to_video, minlength=num_videos)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} videos have no text; every gallery video needs a caption")
    metrics = summarize_ranks(ranks_of_targets(similarity, text_to_video), "t2v_")
    metrics.update(summarize_ranks(video_to_text_ranks(similarity, text_to_video), "v2t_"))
    return metrics


def video_to_text_ranks(similarity: torch.Tensor, text_to_video: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Conservative 1-based rank of each video's best caption among all texts.

    The rank is 1 + the number of texts of OTHER videos scoring at least the video's best caption, so the video's
    own captions never count against it.

    Args:
        similarity: (Nt, Nv) text-video similarity.
        text_to_video: (Nt,) index of each text's video.
        chunk_size: videos processed at once, to bound memory.

    Returns:
        (Nv,) long ranks.
    """
    num_videos = similarity.shape[1]
    ranks = []
    for start in range(0, num_videos, chunk_size):
        scores = similarity[:, start : start + chunk_size].t()  # (chunk, Nt)
        videos = torch.arange(start, start + scores.shape[0], device=similarity.device)
        own = text_to_video[None, :] == videos[:, None]
        best_own = scores.masked_fill(~own, float("-inf")).amax(dim=1, keepdim=True)
        ranks.append(1 + (scores.masked_fill(own, float("-inf")) >= best_own).sum(dim=1))
    return torch.cat(ranks)
