"""Raw shard sample -> pretraining sample (and held-out retrieval sample): caption, clip, masks, id.

The decoders run in the DataLoader workers of `clover_pl.data.pretrain.PretrainDataModule`; a bad sample raises
:class:`~clover_pl.data.pipeline.SampleSkipped` with one of :data:`SKIP_REASONS`.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import Any

import torch

from clover_pl.data.decode_error import DECODE_ERROR_REASONS, DecodeError
from clover_pl.data.frame_sampling import SamplingMode
from clover_pl.data.masking import TextMasker
from clover_pl.data.pipeline import SampleSkipped
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import decode_image, decode_video
from clover_pl.data.video_masking import BlockMaskGenerator

# Every reason a sample or tar member can be skipped for; fixed, so every rank logs the same keys.
SKIP_REASONS = (
    "corrupt_tar",
    "samples_lost",
    "failed_download",
    "no_caption",
    "caption_not_utf8",
    "caption_empty",
    "no_media",
    *(f"bad_media_{reason}" for reason in DECODE_ERROR_REASONS),
)


def read_caption(raw: dict[str, Any]) -> str:
    """The ``.txt`` member as text; an absent, non-UTF-8 or empty caption skips the sample."""
    data = raw.get("txt")
    if data is None:
        raise SampleSkipped("no_caption")
    try:
        caption = data.decode("utf-8").strip() if isinstance(data, bytes) else str(data).strip()
    except UnicodeDecodeError as error:
        raise SampleSkipped("caption_not_utf8") from error
    if not caption:
        raise SampleSkipped("caption_empty")
    return caption


def sample_id(key: str) -> int:
    """A stable integer id for a shard key (the key itself when it is a number)."""
    return int(key) if key.isdigit() else zlib.crc32(key.encode())


def decode_clip(
    raw: dict[str, Any],
    num_frames: int,
    mode: SamplingMode,
    short_side: int | None,
    generator: torch.Generator,
    threads: int = 1,
    decode: Callable[..., torch.Tensor] = decode_video,
) -> torch.Tensor:
    """The sample's video (``.mp4``, by ``decode``) or image (``.jpg``) as (T, C, H, W) uint8; bad media skip it."""
    try:
        if "mp4" in raw:
            return decode(
                raw["mp4"], num_frames, mode=mode, short_side=short_side, generator=generator, threads=threads
            )
        for extension in ("jpg", "jpeg", "png", "webp"):
            if extension in raw:
                return decode_image(raw[extension], short_side=short_side)
    except DecodeError as error:
        raise SampleSkipped(f"bad_media_{error.reason}") from error
    raise SampleSkipped("no_media")


class PretrainDecoder:
    """Raw shard sample -> pretraining sample: frames, augmentation, caption masking and the video cell mask.

    Runs in the DataLoader workers. All randomness comes from the ``rng`` of the pipeline, which is seeded by
    (seed, epoch, rank, worker), so an epoch's samples are reproducible.
    """

    def __init__(
        self,
        masker: TextMasker,
        cell_mask: BlockMaskGenerator,
        transform: ClipTransform,
        num_frames: int,
        short_side: int | None,
        threads: int = 1,
        decode: Callable[..., torch.Tensor] = decode_video,
    ) -> None:
        self.threads = threads
        self.decode = decode
        self.masker = masker
        self.cell_mask = cell_mask
        self.transform = transform
        self.num_frames = num_frames
        self.short_side = short_side

    def __call__(self, raw: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Decode one sample; raises :class:`SampleSkipped` for bad input."""
        caption = read_caption(raw)
        generator = torch.Generator().manual_seed(rng.getrandbits(62))
        clip = decode_clip(raw, self.num_frames, "random", self.short_side, generator, self.threads, self.decode)
        self.masker.reseed(rng.getrandbits(62))  # the masker draws from the pipeline's seed too
        text = self.masker(caption)
        return {
            "video": self.transform(clip, generator=generator),
            "video_mask": self.cell_mask(generator),
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "masked_input_ids": text["masked_input_ids"],
            "mlm_labels": text["mlm_labels"],
            "id": torch.tensor(sample_id(raw["__key__"])),
        }


class RetrievalDecoder:
    """Raw shard sample -> evaluation sample: centre frames, centre crop, the caption tokenised as it is."""

    def __init__(
        self, tokenizer: Any, transform: ClipTransform, num_frames: int, max_length: int, short_side: int | None
    ) -> None:
        self.tokenizer = tokenizer
        self.transform = transform
        self.num_frames = num_frames
        self.max_length = max_length
        self.short_side = short_side

    def __call__(self, raw: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Decode one sample; raises :class:`SampleSkipped` for bad input."""
        caption = read_caption(raw)
        clip = decode_clip(raw, self.num_frames, "middle", self.short_side, torch.Generator().manual_seed(0))
        text = self.tokenizer(
            caption, max_length=self.max_length, padding="max_length", truncation=True, return_tensors="pt"
        )
        return {
            "video": self.transform(clip),
            "input_ids": text["input_ids"][0],
            "attention_mask": text["attention_mask"][0],
            "id": torch.tensor(sample_id(raw["__key__"])),
        }
