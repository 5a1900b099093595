import pytest
import torch

from clover_pl.metrics import (
    ranks_from_embeddings,
    ranks_of_targets,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    video_to_text_ranks_from_embeddings,
)
from clover_pl.metrics.retrieval import video_to_text_ranks


def quantised(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    # Values in {-1, -0.5, 0, 0.5, 1}: every dot product is exact in float32 whatever the summation order, and
    # many scores tie, so the conservative tie rule is exercised for real.
    return torch.randint(-2, 3, (rows, dim), generator=generator).float() / 2


def multi_caption(num_videos: int, num_texts: int, generator: torch.Generator) -> torch.Tensor:
    # Every video gets at least one caption; the rest go to random videos, in a shuffled order.
    extra = torch.randint(num_videos, (num_texts - num_videos,), generator=generator)
    text_to_video = torch.cat([torch.arange(num_videos), extra])
    return text_to_video[torch.randperm(num_texts, generator=generator)]


CHUNKS = [(1, 1), (3, 7), (5, 2), (16, 16), (1024, 65536)]


@pytest.mark.parametrize(("query_chunk", "gallery_chunk"), CHUNKS)
def test_ranks_equal_the_full_matrix(query_chunk: int, gallery_chunk: int) -> None:
    generator = torch.Generator().manual_seed(0)
    queries, gallery = quantised(23, 4, generator), quantised(17, 4, generator)
    targets = torch.randint(17, (23,), generator=generator)
    expected = ranks_of_targets(queries @ gallery.T, targets)
    assert (expected < expected.max()).any()  # not a degenerate all-tied case
    ranks = ranks_from_embeddings(queries, gallery, targets, query_chunk, gallery_chunk)
    assert ranks.dtype == torch.long
    torch.testing.assert_close(ranks, expected)


@pytest.mark.parametrize(("query_chunk", "gallery_chunk"), CHUNKS)
def test_metrics_equal_the_full_matrix_with_ties_and_several_captions(query_chunk: int, gallery_chunk: int) -> None:
    generator = torch.Generator().manual_seed(1)
    video = quantised(19, 3, generator)
    text = quantised(41, 3, generator)
    text_to_video = multi_caption(19, 41, generator)
    similarity = text @ video.T
    expected = retrieval_metrics(similarity, text_to_video)
    ours = retrieval_metrics_from_embeddings(text, video, text_to_video, query_chunk, gallery_chunk)
    assert ours.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(ours[key], expected[key], msg=key)
    v2t = video_to_text_ranks_from_embeddings(text, video, text_to_video, query_chunk, gallery_chunk)
    torch.testing.assert_close(v2t, video_to_text_ranks(similarity, text_to_video))


def test_all_tied_scores_rank_every_target_last() -> None:
    queries, gallery = torch.ones(6, 2), torch.ones(9, 2)
    ranks = ranks_from_embeddings(queries, gallery, torch.arange(6), query_chunk=4, gallery_chunk=4)
    assert ranks.tolist() == [9] * 6


def test_random_normalised_embeddings_match() -> None:
    generator = torch.Generator().manual_seed(2)
    text = torch.nn.functional.normalize(torch.randn(300, 16, generator=generator), dim=-1)
    video = torch.nn.functional.normalize(torch.randn(120, 16, generator=generator), dim=-1)
    text_to_video = multi_caption(120, 300, generator)
    expected = retrieval_metrics(text @ video.T, text_to_video)
    ours = retrieval_metrics_from_embeddings(text, video, text_to_video, query_chunk=64, gallery_chunk=50)
    for key in expected:
        torch.testing.assert_close(ours[key], expected[key], msg=key)


def test_16_bit_embeddings_are_scored_in_float32() -> None:
    generator = torch.Generator().manual_seed(3)
    video, text = quantised(30, 8, generator), quantised(50, 8, generator)
    text_to_video = multi_caption(30, 50, generator)
    expected = retrieval_metrics(text @ video.T, text_to_video)
    ours = retrieval_metrics_from_embeddings(text.bfloat16(), video.bfloat16(), text_to_video, 7, 9)
    for key in expected:
        torch.testing.assert_close(ours[key], expected[key], msg=key)


def test_a_video_without_caption_is_refused() -> None:
    with pytest.raises(ValueError, match="no text"):
        retrieval_metrics_from_embeddings(torch.ones(2, 3), torch.ones(3, 3), torch.tensor([0, 1]))


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="embeddings"):
        ranks_from_embeddings(torch.ones(2, 3), torch.ones(3, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="targets"):
        ranks_from_embeddings(torch.ones(2, 3), torch.ones(3, 3), torch.tensor([0]))
