import random

import pytest
import torch

from clover_pl.metrics import retrieval_metrics


def naive(similarity: list[list[float]], text_to_video: list[int]) -> dict[str, float]:
    texts, videos = len(similarity), len(similarity[0])
    t2v = []
    for t in range(texts):
        target = similarity[t][text_to_video[t]]
        t2v.append(1 + sum(1 for v in range(videos) if v != text_to_video[t] and similarity[t][v] >= target))
    v2t = []
    for v in range(videos):
        own = [t for t in range(texts) if text_to_video[t] == v]
        best = max(similarity[t][v] for t in own)
        v2t.append(1 + sum(1 for t in range(texts) if t not in own and similarity[t][v] >= best))

    def summary(ranks: list[int], prefix: str) -> dict[str, float]:
        ordered = sorted(ranks)
        middle = len(ordered) // 2
        median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        out = {f"{prefix}r@{k}": 100.0 * sum(r <= k for r in ranks) / len(ranks) for k in (1, 5, 10)}
        out[f"{prefix}median_rank"] = median
        out[f"{prefix}mean_rank"] = sum(ranks) / len(ranks)
        out[f"{prefix}mrr"] = sum(1 / r for r in ranks) / len(ranks)
        return out

    return {**summary(t2v, "t2v_"), **summary(v2t, "v2t_")}


def check(similarity: torch.Tensor, text_to_video: torch.Tensor) -> dict[str, float]:
    ours = {k: float(v) for k, v in retrieval_metrics(similarity, text_to_video).items()}
    reference = naive(similarity.tolist(), text_to_video.tolist())
    assert ours.keys() == reference.keys()
    for key in ours:
        assert ours[key] == pytest.approx(reference[key]), key
    return ours


def test_identity_is_perfect() -> None:
    metrics = check(torch.eye(20), torch.arange(20))
    assert metrics["t2v_r@1"] == 100.0
    assert metrics["v2t_r@1"] == 100.0
    assert metrics["t2v_median_rank"] == 1.0
    assert metrics["t2v_mean_rank"] == 1.0


def test_known_permutation_gives_known_ranks() -> None:
    # Text i's true video scores 10 - rank_i, every other video scores lower in a fixed order.
    ranks = [1, 2, 3, 6, 11, 1, 4, 2, 12, 5, 1, 7]
    size = len(ranks)
    similarity = torch.zeros(size, size)
    for text, rank in enumerate(ranks):
        others = [v for v in range(size) if v != text]
        order = others[: rank - 1] + [text] + others[rank - 1 :]
        for position, video in enumerate(order):
            similarity[text, video] = float(size - position)
    metrics = check(similarity, torch.arange(size))
    assert metrics["t2v_r@1"] == pytest.approx(100 * 3 / 12)
    assert metrics["t2v_r@5"] == pytest.approx(100 * 8 / 12)
    assert metrics["t2v_r@10"] == pytest.approx(100 * 10 / 12)
    assert metrics["t2v_median_rank"] == 3.5
    assert metrics["t2v_mean_rank"] == pytest.approx(sum(ranks) / 12)
    # by hand: 3 x 1 + 2 x 1/2 + 1/3 + 1/4 + 1/5 + 1/6 + 1/7 + 1/11 + 1/12
    assert metrics["t2v_mrr"] == pytest.approx((4 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6 + 1 / 7 + 1 / 11 + 1 / 12) / 12)


def test_ties_count_against_the_query() -> None:
    metrics = check(torch.ones(4, 4), torch.arange(4))
    assert metrics["t2v_r@1"] == 0.0
    assert metrics["t2v_median_rank"] == 4.0
    assert metrics["v2t_mean_rank"] == 4.0
    assert metrics["t2v_mrr"] == 0.25


def test_multiple_captions_per_video() -> None:
    # Video 0 has captions 0 and 1; caption 1 finds it, caption 0 does not.
    similarity = torch.tensor(
        [
            [0.1, 0.9, 0.0],  # caption 0 of video 0: rank 2
            [0.8, 0.2, 0.1],  # caption 1 of video 0: rank 1
            [0.3, 0.7, 0.0],  # caption of video 1: rank 1
            [0.0, 0.5, 0.6],  # caption of video 2: rank 1
        ]
    )
    metrics = check(similarity, torch.tensor([0, 0, 1, 2]))
    assert metrics["t2v_r@1"] == 75.0
    # Video-to-text: video 0's best caption (0.8) beats every other text; video 1's best own caption is 0.7 and
    # caption 0 of video 0 scores 0.9 on it: rank 2. Video 2: rank 1.
    assert metrics["v2t_r@1"] == pytest.approx(200 / 3)
    assert metrics["v2t_mean_rank"] == pytest.approx(4 / 3)


def test_random_matrices_against_the_naive_loops() -> None:
    generator = random.Random(0)
    for _ in range(5):
        videos = generator.randint(3, 12)
        text_to_video = list(range(videos)) + [generator.randrange(videos) for _ in range(generator.randint(0, 8))]
        similarity = torch.randint(0, 4, (len(text_to_video), videos)).float()  # many ties on purpose
        check(similarity, torch.tensor(text_to_video))


def test_a_video_without_caption_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 videos have no text"):
        retrieval_metrics(torch.rand(2, 3), torch.tensor([0, 1]))
