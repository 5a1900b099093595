"""Thumbnails and captions of the held-out clips seen in a validation, to show retrieval examples."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from clover_pl.callbacks.drawing import RetrievalExample, retrieval_examples, to_uint8_frames


class ValidationGallery:
    """The middle frame (shrunk) and caption ids of up to ``max_clips`` held-out clips of this process.

    Args:
        max_clips: clips kept per validation (memory: about ``max_clips`` x 12 KB at 64 px).
        thumbnail_side: longer side of a thumbnail, in pixels.
    """

    def __init__(self, max_clips: int = 1024, thumbnail_side: int = 64) -> None:
        self.max_clips = max_clips
        self.thumbnail_side = thumbnail_side
        self.reset()

    def reset(self) -> None:
        """Forget the previous validation's clips."""
        self.thumbnails: dict[int, np.ndarray] = {}
        self.captions: dict[int, torch.Tensor] = {}

    def add(self, batch: Any) -> None:
        """Keep the clips of one evaluation batch (``video`` (B, T, C, H, W), ``id`` (B,), ``input_ids`` (B, L))."""
        if not isinstance(batch, dict) or not {"video", "id", "input_ids"} <= batch.keys():
            return
        room = self.max_clips - len(self.thumbnails)
        if room <= 0:
            return
        video = batch["video"][:room]
        middle = video[:, video.shape[1] // 2]
        frames = to_uint8_frames(middle, max_side=self.thumbnail_side)
        ids = batch["id"][:room].tolist()
        mask = batch.get("attention_mask")
        for row, clip in enumerate(ids):
            if clip in self.thumbnails:
                continue
            self.thumbnails[clip] = frames[row]
            tokens = batch["input_ids"][row]
            if mask is not None:
                tokens = tokens[: int(mask[row].sum())]
            self.captions[clip] = tokens.detach().cpu()

    def examples(
        self, embeddings: dict[str, torch.Tensor], tokenizer: Any, num_queries: int = 4, top_k: int = 5
    ) -> list[RetrievalExample]:
        """Rank the whole gallery for ``num_queries`` captions of kept clips (the same queries every validation).

        Args:
            embeddings: ``video`` (Nv, E), ``video_ids`` (Nv,), ``text`` (Nt, E), ``text_video_ids`` (Nt,): the
                whole held-out set, every process's rows.
            tokenizer: decodes the query captions.
            num_queries: queries, evenly spread over the kept clips' sorted ids.
            top_k: clips shown per query.
        """
        kept = sorted(self.captions)
        if not kept or num_queries <= 0:
            return []
        picks = sorted({kept[int(i)] for i in np.linspace(0, len(kept) - 1, min(num_queries, len(kept)))})
        captions = {clip: tokenizer.decode(self.captions[clip].tolist(), skip_special_tokens=True) for clip in picks}
        return retrieval_examples(
            embeddings["video"],
            embeddings["video_ids"],
            embeddings["text"],
            embeddings["text_video_ids"],
            picks,
            captions,
            top_k,
        )


class GalleryCollector(L.Callback):
    """A callback that fills ``self.gallery`` (a :class:`ValidationGallery`) with the held-out clips of each validation.

    Collects on the main process only, never during the sanity check, and only while :meth:`collecting` says so.
    """

    gallery: ValidationGallery

    def collecting(self) -> bool:
        """Whether this validation's clips are needed (subclasses that may draw nothing say so here)."""
        return True

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a new gallery."""
        self.gallery.reset()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's thumbnails and captions."""
        if self.collecting() and trainer.is_global_zero and not trainer.sanity_checking:
            self.gallery.add(batch)
