"""A contact sheet of search hits: one row per hit, a few frames each, with its rank, id and score."""

from __future__ import annotations

import os

import torch

from clover_pl.data.video import DecodeError, decode_video
from clover_pl.files import atomic_open
from clover_pl.inference.index import Hit


def hit_frames(path: str, frames: int) -> torch.Tensor | None:
    """``frames`` evenly spaced frames of a video as (T, H, W, 3) uint8, or None when it cannot be read now."""
    try:
        with open(path, "rb") as stream:
            clip = decode_video(stream.read(), frames, mode="middle", short_side=160)
    except (OSError, DecodeError):
        return None
    return clip.permute(0, 2, 3, 1)


def write_contact_sheet(hits: list[Hit], query: str, path: str, frames: int = 4) -> None:
    """Draw the hits into a PNG (written atomically).

    Args:
        hits: the search results, best first.
        query: the query text (the sheet's title).
        path: the PNG to write.
        frames: frames shown per hit.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = max(1, len(hits))
    figure, axes = plt.subplots(rows, frames, figsize=(2.0 * frames, 1.7 * rows + 0.6), squeeze=False)
    figure.suptitle(f"query: {query}", fontsize=10)
    for row in range(rows):
        hit = hits[row] if row < len(hits) else None
        clip = hit_frames(hit.path, frames) if hit is not None else None
        for column in range(frames):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if clip is not None:
                axis.imshow(clip[min(column, clip.shape[0] - 1)].numpy())
            else:
                axis.text(0.5, 0.5, "no hit" if hit is None else "unreadable", ha="center", va="center")
        if hit is not None:
            axes[row][0].set_ylabel(f"#{hit.rank}  {hit.score:.3f}", fontsize=9)
            axes[row][0].set_title(hit.id, fontsize=8, loc="left")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb", durable=False) as stream:
        figure.savefig(stream, format="png", dpi=80)
    plt.close(figure)
