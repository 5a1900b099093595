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
    """R@1/5/10 (percent), median and mean rank, and mean reciprocal rank (``{prefix}mrr``) of 1-based ranks.

    Keys: ``{prefix}r@K``, ``{prefix}median_rank``, ``{prefix}mean_rank``, ``{prefix}mrr``.
    """
    ranks = ranks.double()
    metrics = {f"{prefix}r@{k}": 100.0 * (ranks <= k).double().mean() for k in RECALL_AT}
    metrics[f"{prefix}median_rank"] = ranks.quantile(0.5)  # the middle two averaged for an even count
    metrics[f"{prefix}mean_rank"] = ranks.mean()
    metrics[f"{prefix}mrr"] = ranks.reciprocal().mean()  # mean reciprocal rank, in [1/G, 1]
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


# Counts are summed as 0/1 floats in the score buffer itself (no extra comparison buffer, no integer copy);
# float32 sums of 0/1 are exact up to 2**24, so no chunk is wider than that.
_MAX_EXACT_CHUNK = 2**24


def _check_embeddings(queries: torch.Tensor, gallery: torch.Tensor, query_chunk: int, gallery_chunk: int) -> None:
    if queries.dim() != 2 or gallery.dim() != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"embeddings must be (N, E) with one E; got queries {tuple(queries.shape)}, gallery {tuple(gallery.shape)}"
        )
    if query_chunk < 1 or gallery_chunk < 1:
        raise ValueError(f"chunk sizes must be positive, got {query_chunk} and {gallery_chunk}")


def _scoring(embeddings: torch.Tensor) -> torch.Tensor:
    """float32 for 16-bit embeddings (counts in bf16 would be inexact), else unchanged; applied per chunk."""
    return embeddings.float() if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings


class _ScoreBuffer:
    """One reused buffer of at most ``rows x columns`` scores."""

    def __init__(self, rows: int, columns: int, like: torch.Tensor) -> None:
        self.buffer = torch.empty(rows * columns, dtype=_scoring(like[:0]).dtype, device=like.device)

    def at_least(self, queries: torch.Tensor, gallery: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        """(Q, G) view of the buffer: 1 where ``queries @ gallery.T`` reaches the row's (Q,) threshold, else 0."""
        shape = (queries.shape[0], gallery.shape[0])
        scores = torch.mm(_scoring(queries), _scoring(gallery).t(), out=self.buffer[: shape[0] * shape[1]].view(shape))
        return scores.ge_(threshold[:, None])


def ranks_from_embeddings(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    targets: torch.Tensor,
    query_chunk: int = 1024,
    gallery_chunk: int = 65536,
) -> torch.Tensor:
    """Conservative 1-based rank of each query's target, streamed over chunks of the dot-product score matrix.

    Same ranks as ``ranks_of_targets(queries @ gallery.T, targets)`` without the (Q, G) matrix: one buffer of
    ``query_chunk x gallery_chunk`` scores is reused for every chunk pair. The rank is 1 + the number of OTHER gallery
    items scoring at least the target; the target's own column is excluded by index, so it counts exactly once even
    when its score inside a matrix product rounds differently from the target score (a row-wise dot product). Ties
    are therefore exact for exactly representable scores; for general floats a near-tie can be judged within one
    rounding error of the matrix product.

    Args:
        queries: (Q, E) query embeddings.
        gallery: (G, E) gallery embeddings, same device (16-bit embeddings are scored in float32, chunk by chunk).
        targets: (Q,) index of each query's true item in the gallery.
        query_chunk: queries scored at once.
        gallery_chunk: gallery items scored at once (at most 2**24).

    Returns:
        (Q,) long ranks in [1, G], on the queries' device.
    """
    _check_embeddings(queries, gallery, query_chunk, gallery_chunk)
    if targets.shape != (queries.shape[0],):
        raise ValueError(f"targets has shape {tuple(targets.shape)}, expected ({queries.shape[0]},)")
    gallery_chunk = min(gallery_chunk, _MAX_EXACT_CHUNK)
    targets = targets.to(queries.device).long()
    buffer = _ScoreBuffer(min(query_chunk, queries.shape[0]), min(gallery_chunk, gallery.shape[0]), queries)
    ranks = [torch.zeros(0, dtype=torch.long, device=queries.device)]
    for query_start in range(0, queries.shape[0], query_chunk):
        block = queries[query_start : query_start + query_chunk]
        block_targets = targets[query_start : query_start + query_chunk]
        target_score = (_scoring(block) * _scoring(gallery[block_targets])).sum(dim=-1)
        others = torch.zeros(block.shape[0], dtype=torch.long, device=queries.device)
        for gallery_start in range(0, gallery.shape[0], gallery_chunk):
            items = gallery[gallery_start : gallery_start + gallery_chunk]
            at_least = buffer.at_least(block, items, target_score)
            inside = ((block_targets >= gallery_start) & (block_targets < gallery_start + items.shape[0])).nonzero()
            rows = inside[:, 0]
            at_least[rows, block_targets[rows] - gallery_start] = 0  # the target itself counts once, below
            others += at_least.sum(dim=1).long()
        ranks.append(1 + others)
    return torch.cat(ranks)


def video_to_text_ranks_from_embeddings(
    text: torch.Tensor,
    video: torch.Tensor,
    text_to_video: torch.Tensor,
    video_chunk: int = 1024,
    text_chunk: int = 65536,
) -> torch.Tensor:
    """Conservative 1-based rank of each video's best caption, streamed like :func:`ranks_from_embeddings`.

    Same ranks as ``video_to_text_ranks(text @ video.T, text_to_video)``: the best own-caption score of each video,
    then 1 + the number of texts of OTHER videos scoring at least it, counted over (video chunk x text chunk)
    score blocks.

    Args:
        text: (Nt, E) text embeddings.
        video: (Nv, E) video embeddings.
        text_to_video: (Nt,) index of each text's video; every video must have at least one text.
        video_chunk: videos scored at once.
        text_chunk: texts scored at once (at most 2**24).

    Returns:
        (Nv,) long ranks.
    """
    _check_embeddings(video, text, video_chunk, text_chunk)
    text_chunk = min(text_chunk, _MAX_EXACT_CHUNK)
    text_to_video = text_to_video.to(text.device).long()
    own_score = (_scoring(text) * _scoring(video[text_to_video])).sum(dim=-1)
    best_own = torch.full((video.shape[0],), float("-inf"), dtype=own_score.dtype, device=video.device)
    best_own.scatter_reduce_(0, text_to_video, own_score, reduce="amax")
    buffer = _ScoreBuffer(min(video_chunk, video.shape[0]), min(text_chunk, text.shape[0]), video)
    ranks = [torch.zeros(0, dtype=torch.long, device=video.device)]
    for video_start in range(0, video.shape[0], video_chunk):
        block = video[video_start : video_start + video_chunk]
        others = torch.zeros(block.shape[0], dtype=torch.long, device=video.device)
        for text_start in range(0, text.shape[0], text_chunk):
            captions = text[text_start : text_start + text_chunk]
            at_least = buffer.at_least(block, captions, best_own[video_start : video_start + block.shape[0]])
            owner = text_to_video[text_start : text_start + captions.shape[0]]
            own = ((owner >= video_start) & (owner < video_start + block.shape[0])).nonzero()[:, 0]
            at_least[owner[own] - video_start, own] = 0  # a video's own captions never count against it
            others += at_least.sum(dim=1).long()
        ranks.append(1 + others)
    return torch.cat(ranks)


def retrieval_metrics_from_embeddings(
    text: torch.Tensor,
    video: torch.Tensor,
    text_to_video: torch.Tensor,
    query_chunk: int = 1024,
    gallery_chunk: int = 65536,
) -> dict[str, torch.Tensor]:
    """:func:`retrieval_metrics` of ``text @ video.T`` in bounded memory, for galleries too large for the matrix.

    Args:
        text: (Nt, E) text embeddings (normalise them first for cosine similarity).
        video: (Nv, E) video embeddings, same device.
        text_to_video: (Nt,) index of each text's video; every video must have at least one text.
        query_chunk: queries (texts for t2v, videos for v2t) scored at once.
        gallery_chunk: gallery items (videos for t2v, texts for v2t) scored at once.

    Returns:
        The keys of :func:`retrieval_metrics`: ``t2v_r@1`` ... ``t2v_mean_rank`` and the same with ``v2t_``.
    """
    _check_embeddings(text, video, query_chunk, gallery_chunk)
    num_texts, num_videos = text.shape[0], video.shape[0]
    if text_to_video.shape != (num_texts,):
        raise ValueError(f"text_to_video has shape {tuple(text_to_video.shape)}, expected ({num_texts},)")
    counts = torch.bincount(text_to_video.long(), minlength=num_videos)
    if counts.numel() > num_videos:
        raise ValueError(f"text_to_video points past the {num_videos} videos")
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} videos have no text; every gallery video needs a caption")
    metrics = summarize_ranks(ranks_from_embeddings(text, video, text_to_video, query_chunk, gallery_chunk), "t2v_")
    v2t = video_to_text_ranks_from_embeddings(text, video, text_to_video, query_chunk, gallery_chunk)
    metrics.update(summarize_ranks(v2t, "v2t_"))
    return metrics
