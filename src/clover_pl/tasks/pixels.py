"""The device half of the lean sample path, shared by every task's ``on_after_batch_transfer``."""

from __future__ import annotations

from typing import Any

from clover_pl.data.transforms import normalize_video


def normalize_batch_video(batch: Any) -> Any:
    """Normalises ``batch["video"]`` on its device when the workers delivered it as uint8.

    Datamodules deliver either uint8 clips (0-255, `ClipTransform(normalize=False)`: PretrainDataModule's default)
    or float clips normalised in the workers (the retrieval and VideoQA datamodules); both reach the model as the same
    float32 standardised pixels, so a task accepts either contract.

    Args:
        batch: a dict batch (``video``: (B, T, C, H, W), or (R, V, T, C, H, W) for multiple choice), or anything
            else (returned as it is).

    Returns:
        The batch, its ``video`` float32 and normalised.
    """
    if isinstance(batch, dict) and "video" in batch:
        batch["video"] = normalize_video(batch["video"])
    return batch
