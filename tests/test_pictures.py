"""The pictures of a run: what the model receives (masked frames and caption) and what it retrieves."""

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle

from clover_pl.callbacks.drawing import (
    draw_training_clips,
    figure_to_array,
    join_wordpieces,
    masked_caption,
    retrieval_examples,
    to_uint8_frames,
)
from clover_pl.callbacks.retrieval_figure import write_retrieval_figure
from clover_pl.data.text import load_tokenizer
from clover_pl.data.transforms import normalize

VOCAB = Path(__file__).parent / "assets" / "vocab.txt"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(VOCAB))


def test_frames_come_back_to_their_pixels() -> None:
    pixels = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    back = to_uint8_frames(normalize(pixels))
    assert back.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(back.astype(int), pixels.permute(0, 2, 3, 1).numpy().astype(int), atol=1)


def test_masked_caption_names_the_hidden_words(tokenizer) -> None:
    encoded = tokenizer("a red circle moving zzz", max_length=10, padding="max_length", return_tensors="pt")
    ids, attention = encoded["input_ids"][0], encoded["attention_mask"][0]
    masked, labels = ids.clone(), torch.full_like(ids, -100)
    masked[2], labels[2] = tokenizer.mask_token_id, ids[2]  # position 2 is "red" ([CLS] a red ...)
    caption = masked_caption(tokenizer, masked, labels, attention)
    assert caption.shown == "a [MASK] circle moving [UNK]"
    assert caption.targets == [(2, "red", "[MASK]")]
    assert join_wordpieces(["play", "##ing", "ball"]) == "playing ball"


def test_training_clips_draw_each_masked_cell_on_each_frame(tokenizer) -> None:
    count, frames, grid = 2, 3, 4
    encoded = tokenizer(["a red circle", "a blue square"], max_length=8, padding="max_length", return_tensors="pt")
    labels = torch.full_like(encoded["input_ids"], -100)
    labels[:, 2] = encoded["input_ids"][:, 2]
    mask = torch.zeros(count, grid, grid, dtype=torch.bool)
    mask[0, 0, :3] = True  # 3 cells
    mask[1, 2:, 2:] = True  # 4 cells
    batch = {
        "video": torch.randn(count, frames, 3, 16, 16),
        "video_mask": mask,
        "masked_input_ids": encoded["input_ids"],
        "mlm_labels": labels,
        "attention_mask": encoded["attention_mask"],
    }
    figure = draw_training_clips(batch, tokenizer, max_clips=4, max_frames=4, step=7)
    axes = figure.axes
    assert len(axes) == count * frames
    cells = [sum(isinstance(patch, Rectangle) for patch in axis.patches) for axis in axes]
    assert cells == [3] * frames + [4] * frames
    image = figure_to_array(figure)
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3


def naive_rank(scores: torch.Tensor, target: int) -> int:
    return sum(1 for value in scores.tolist() if value >= scores[target].item())


def test_retrieval_examples_rank_the_whole_gallery() -> None:
    generator = torch.Generator().manual_seed(0)
    video, text = torch.randn(12, 8, generator=generator), torch.randn(12, 8, generator=generator)
    ids = torch.arange(100, 112)
    examples = retrieval_examples(video, ids, text, ids, [100, 105, 111], {105: "a caption"}, top_k=5)
    assert [example.true_id for example in examples] == [100, 105, 111]
    assert examples[1].caption == "a caption"
    normalised_video = torch.nn.functional.normalize(video, dim=-1)
    for example in examples:
        row = example.true_id - 100
        scores = normalised_video @ torch.nn.functional.normalize(text[row], dim=-1)
        assert example.true_rank == naive_rank(scores, row)
        assert example.top_ids == (scores.argsort(descending=True)[:5] + 100).tolist()
        assert example.top_scores == sorted(example.top_scores, reverse=True)


def test_retrieval_figure_is_a_png(tmp_path: Path) -> None:
    ids = torch.arange(6)
    embeddings = torch.eye(6)
    examples = retrieval_examples(embeddings, ids, embeddings, ids, [0, 3], {0: "zero", 3: "three"}, top_k=3)
    thumbnails = {i: np.full((8, 8, 3), 40 * i, dtype=np.uint8) for i in range(6)}
    history = [
        {"step": 10.0, "t2v_r@1": 20.0, "t2v_r@5": 50.0, "t2v_r@10": 70.0, "chance_r@1": 1.0},
        {"step": 20.0, "t2v_r@1": 40.0, "t2v_r@5": 80.0, "t2v_r@10": 90.0, "chance_r@1": 1.0},
    ]
    path = tmp_path / "figures" / "retrieval.png"
    write_retrieval_figure(str(path), history, examples, thumbnails, step=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob("*.tmp*"))
