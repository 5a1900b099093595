"""Inference from a checkpoint: load its backbone and heads, embed videos and texts, search an index.

Example:
    >>> from clover_pl.inference import Embedder, load_checkpoint  # doctest: +SKIP
    >>> backbone, heads = load_checkpoint("outputs/quickstart/checkpoints/last.ckpt")  # doctest: +SKIP
    >>> embedder = Embedder.from_checkpoint("outputs/quickstart/checkpoints/last.ckpt")  # doctest: +SKIP
    >>> video = embedder.embed_clips(embedder.read_clip("clip.mp4")[None])  # (1, E), unit norm  # doctest: +SKIP
    >>> text = embedder.embed_texts(["a red circle moves left"])  # (1, E)  # doctest: +SKIP
"""

from clover_pl.inference.index import Hit, build_index, list_videos, load_index, read_texts, save_index, search
from clover_pl.inference.loading import ClipReader, Embedder, EmbeddingSettings, load_checkpoint, load_task

__all__ = [
    "ClipReader",
    "Embedder",
    "EmbeddingSettings",
    "Hit",
    "build_index",
    "list_videos",
    "load_checkpoint",
    "load_index",
    "load_task",
    "read_texts",
    "save_index",
    "search",
]
