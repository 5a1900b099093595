"""Pictures of a run, drawn with matplotlib (Agg, no display).

What the model receives, what it retrieves, and how held-out retrieval improves with training:

- :func:`draw_training_clips`: clips of a pretraining batch as the model receives them (frames after the random
  crop, the masked-video cells drawn over them), the masked caption and the words it has to recover;
- :func:`draw_retrieval_examples`: a few held-out caption queries with their top-5 clips, the true clip framed;
- :func:`draw_recall_curves`: held-out R@1/5/10 against the training step;
- :func:`figure_to_array` turns a figure into an (H, W, 3) uint8 image for TensorBoard.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the pictures go to TensorBoard and PNG files

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure, SubFigure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from clover_pl.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

TRUE_COLOUR = "#1a9641"
OTHER_COLOUR = "#bbbbbb"
MASK_COLOUR = "#d7191c"


def to_uint8_frames(video: torch.Tensor, max_side: int | None = None) -> np.ndarray:
    """Normalised clips back to displayable pixels.

    Args:
        video: (..., C, H, W) float, ImageNet-normalised RGB (the datamodules' output).
        max_side: shrink (area interpolation) so that the longer side is at most this many pixels.

    Returns:
        (..., H', W', C) uint8.
    """
    video = video.detach().float().cpu()
    mean = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(-1, 1, 1)
    pixels = (video * std + mean).clamp(0, 1)
    if max_side is not None and max(pixels.shape[-2:]) > max_side:
        lead, (c, h, w) = pixels.shape[:-3], pixels.shape[-3:]
        scale = max_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        pixels = F.interpolate(pixels.reshape(-1, c, h, w), size=size, mode="area").reshape(*lead, c, *size)
    return (pixels * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a figure to an (H, W, 3) uint8 RGB image."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def join_wordpieces(tokens: Sequence[str]) -> str:
    """WordPiece tokens as text: ``["play", "##ing", "ball"]`` -> ``"playing ball"``."""
    words: list[str] = []
    for token in tokens:
        if token.startswith("##") and words:
            words[-1] += token[2:]
        else:
            words.append(token)
    return " ".join(words)


@dataclass
class MaskedCaption:
    """A caption as the MLM pass receives it.

    Attributes:
        shown: the corrupted caption (``[MASK]``, random or kept tokens at the masked positions).
        targets: ``(position, original token, token shown)`` of each masked position.
    """

    shown: str
    targets: list[tuple[int, str, str]]


def masked_caption(
    tokenizer: Any, masked_input_ids: torch.Tensor, mlm_labels: torch.Tensor, attention_mask: torch.Tensor
) -> MaskedCaption:
    """Decode one masked caption.

    Args:
        tokenizer: the run's tokenizer (``convert_ids_to_tokens``, ``all_special_tokens``).
        masked_input_ids: (L,) the caption after masking.
        mlm_labels: (L,) original ids at masked positions, -100 elsewhere.
        attention_mask: (L,) 1 on real tokens.
    """
    length = int(attention_mask.sum())
    shown = tokenizer.convert_ids_to_tokens(masked_input_ids[:length].tolist())
    special = {tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token}  # [UNK] and [MASK] stay visible
    targets = []
    for position in torch.nonzero(mlm_labels[:length] != -100).flatten().tolist():
        original = tokenizer.convert_ids_to_tokens(int(mlm_labels[position]))
        targets.append((position, original, shown[position]))
    visible = [token for token in shown if token not in special]
    return MaskedCaption(join_wordpieces(visible), targets)


def _hide_axes(axis: Any) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def draw_training_clips(
    batch: dict[str, torch.Tensor], tokenizer: Any, max_clips: int = 4, max_frames: int = 4, step: int | None = None
) -> Figure:
    """Clips of a pretraining batch as the model receives them, one row each.

    Args:
        batch: a :class:`clover_pl.types.PretrainBatch` (``video`` (B, T, C, H, W), ``video_mask`` (B, Mh, Mw),
            ``masked_input_ids``, ``mlm_labels``, ``attention_mask`` (B, L)).
        tokenizer: the run's tokenizer, to print the captions.
        max_clips: rows.
        max_frames: frames per row (evenly spaced when the clip has more).
        step: the training step, for the title.

    Returns:
        The figure: frames with the masked-video cells hatched in red, above each row the caption as the MLM pass
        sees it and the words it has to recover.
    """
    video = batch["video"][:max_clips]
    count, frames = video.shape[:2]
    picked = np.unique(np.linspace(0, frames - 1, min(frames, max_frames)).round().astype(int))
    pixels = to_uint8_frames(video[:, picked], max_side=128)
    mask = batch.get("video_mask")
    height = 2.35 * count + 0.5
    figure = Figure(figsize=(1.9 * max(len(picked), 3), height), dpi=100)
    # Fixed margins, not the constrained layout: drawn at every validation, and the layout solver costs seconds.
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / height, wspace=0.05, hspace=0.32)
    title = "training clips as the model receives them (red: masked-video cells)"
    figure.suptitle(title if step is None else f"{title}, step {step}", fontsize=10)
    axes = figure.subplots(count, len(picked), squeeze=False)
    for row in range(count):
        caption = masked_caption(
            tokenizer, batch["masked_input_ids"][row], batch["mlm_labels"][row], batch["attention_mask"][row]
        )
        recover = ", ".join(
            original if shown == original else f"{original}\u2192{shown}" for _, original, shown in caption.targets
        )
        text = textwrap.fill(f"input: {caption.shown}", 60) + "\n" + textwrap.fill(f"masked: {recover or '-'}", 60)
        for column, _ in enumerate(picked):
            axis = axes[row, column]
            image = pixels[row, column]
            axis.imshow(image, interpolation="nearest")
            _hide_axes(axis)
            if mask is not None:
                _draw_cells(axis, mask[row], image.shape[0], image.shape[1])
        _row_caption(axes[row, 0], text, fontsize=7)
    return figure


def _row_caption(axis: Any, text: str, fontsize: float) -> None:
    """Text above a row of images, starting at its first image and free to run over the others.

    A left-aligned title would widen the first column under the constrained layout; instead the title holds blank
    lines (the vertical room) and the text is drawn over them, outside the layout.
    """
    axis.set_title("\n".join(" " for _ in text.split("\n")), fontsize=fontsize)
    label = axis.text(0.0, 1.02, text, transform=axis.transAxes, ha="left", va="bottom", fontsize=fontsize)
    label.set_in_layout(False)


def _draw_cells(axis: Any, cells: torch.Tensor, height: int, width: int) -> None:
    grid_h, grid_w = cells.shape
    for i, j in torch.nonzero(cells).tolist():
        cell_h, cell_w = height / grid_h, width / grid_w
        axis.add_patch(
            Rectangle(
                (j * cell_w - 0.5, i * cell_h - 0.5),
                cell_w,
                cell_h,
                facecolor=MASK_COLOUR,
                alpha=0.45,
                edgecolor=MASK_COLOUR,
                linewidth=0.8,
                hatch="//",
            )
        )


@dataclass
class RetrievalExample:
    """One held-out caption query and what the model retrieved for it.

    Attributes:
        caption: the query.
        true_id: id of the caption's clip.
        true_rank: 1-based rank of the true clip in the whole gallery.
        top_ids: ids of the best-scoring clips, best first.
        top_scores: their cosine similarities.
    """

    caption: str
    true_id: int
    true_rank: int
    top_ids: list[int]
    top_scores: list[float]


def retrieval_examples(
    video: torch.Tensor,
    video_ids: torch.Tensor,
    text: torch.Tensor,
    text_video_ids: torch.Tensor,
    queries: Sequence[int],
    captions: dict[int, str],
    top_k: int = 5,
) -> list[RetrievalExample]:
    """Rank the whole gallery for a few caption queries (cosine similarity).

    Args:
        video: (Nv, E) clip embeddings (a clip may repeat: the first copy counts).
        video_ids: (Nv,) their ids.
        text: (Nt, E) caption embeddings.
        text_video_ids: (Nt,) id of each caption's clip.
        queries: ids of the clips whose (first) caption is a query.
        captions: caption text by clip id.
        top_k: clips kept per query.
    """
    ids = video_ids.tolist()
    first: dict[int, int] = {}
    for row, clip in enumerate(ids):
        first.setdefault(clip, row)
    gallery_ids = torch.tensor(list(first))
    gallery = F.normalize(video[list(first.values())].float(), dim=-1)
    text_rows: dict[int, int] = {}
    for row, clip in enumerate(text_video_ids.tolist()):
        text_rows.setdefault(clip, row)
    examples = []
    for query in queries:
        if query not in text_rows or query not in first:
            continue
        scores = gallery @ F.normalize(text[text_rows[query]].float(), dim=-1)
        true_score = scores[list(first).index(query)]
        rank = int((scores >= true_score).sum())  # conservative, as the metrics: ties count against the query
        best = torch.topk(scores, min(top_k, len(scores)))
        examples.append(
            RetrievalExample(
                caption=captions.get(query, f"clip {query}"),
                true_id=query,
                true_rank=rank,
                top_ids=gallery_ids[best.indices].tolist(),
                top_scores=best.values.tolist(),
            )
        )
    return examples


def draw_retrieval_examples(
    target: Figure | SubFigure,
    examples: Sequence[RetrievalExample],
    thumbnails: dict[int, np.ndarray],
    step: int | None,
) -> None:
    """Each query's top clips in a row, the true clip framed in green (an extra column when it is not in the top).

    Args:
        target: the figure (or sub-figure) to draw into.
        examples: the queries (:func:`retrieval_examples`).
        thumbnails: (H, W, 3) uint8 middle frame of each clip, by id; a missing one is drawn as an empty box.
        step: the training step, for the title.
    """
    if not examples:
        return
    columns = max(len(example.top_ids) for example in examples) + 1
    axes = target.subplots(len(examples), columns, squeeze=False)
    title = "held-out caption queries: top clips (green frame: the true clip)"
    target.suptitle(title if step is None else f"{title}, step {step}", fontsize=10)
    for row, example in enumerate(examples):
        shown = list(zip(example.top_ids, example.top_scores, strict=True))
        for column in range(columns):
            axis = axes[row, column]
            _hide_axes(axis)
            if column < len(shown):
                clip, score = shown[column]
                label = f"#{column + 1}  {score:.2f}"
            elif example.true_rank > len(shown):
                clip, label = example.true_id, f"true: #{example.true_rank}"
            else:
                axis.set_visible(False)
                continue
            thumbnail = thumbnails.get(clip)
            if thumbnail is not None:
                axis.imshow(thumbnail, interpolation="nearest")
            colour = TRUE_COLOUR if clip == example.true_id else OTHER_COLOUR
            for spine in axis.spines.values():
                spine.set_visible(True)
                spine.set_edgecolor(colour)
                spine.set_linewidth(3.0 if clip == example.true_id else 1.0)
            axis.set_xlabel(label, fontsize=7, color=TRUE_COLOUR if clip == example.true_id else "black")
        caption = textwrap.shorten(example.caption, 70, placeholder="...")
        _row_caption(axes[row, 0], f"\u201c{caption}\u201d  (true clip at rank {example.true_rank})", fontsize=8)


def draw_recall_curves(
    target: Figure | SubFigure, history: Sequence[dict[str, float]], chance: float | None = None
) -> None:
    """Held-out text-to-video R@1/5/10 against the training step.

    Args:
        target: the figure (or sub-figure) to draw into.
        history: one dict per validation with ``step`` and ``t2v_r@1``, ``t2v_r@5``, ``t2v_r@10`` (percent).
        chance: chance R@1 (percent), drawn as a dashed line.
    """
    axis = target.subplots()
    steps = [entry["step"] for entry in history]
    for k, colour in ((1, "#2c7bb6"), (5, "#fdae61"), (10, "#d7191c")):
        axis.plot(steps, [entry[f"t2v_r@{k}"] for entry in history], marker="o", color=colour, label=f"R@{k}")
    if chance is not None:
        axis.axhline(chance, linestyle="--", color="grey", linewidth=1, label=f"chance R@1 ({chance:.1f})")
    axis.set_xlabel("training step")
    axis.set_ylabel("held-out text-to-video recall (%)")
    axis.set_ylim(0, 104)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    target.suptitle("zero-shot retrieval on the held-out clips", fontsize=10)
