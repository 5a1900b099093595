import pytest
import torch

from clover_pl.metrics.qa import IGNORE_LABEL, correct_answers, qa_metrics


def test_correct_needs_a_strict_win_and_a_known_label() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0], [0.2, 0.1, 0.7], [0.9, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 2, IGNORE_LABEL])
    # row 1 ties at the top: wrong (conservative); row 3's answer is outside the vocabulary: wrong.
    assert correct_answers(scores, labels).tolist() == [True, False, True, False]


def test_naive_loop_agrees_on_random_scores() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (200, 5), generator=generator).float()  # many ties
    labels = torch.randint(0, 5, (200,), generator=generator)
    expected = []
    for row, label in zip(scores.tolist(), labels.tolist(), strict=True):
        expected.append(all(row[label] > value for index, value in enumerate(row) if index != label))
    assert correct_answers(scores, labels).tolist() == expected


def test_accuracy_counts_oov_and_unreadable_as_wrong_and_splits_by_type() -> None:
    correct = torch.tensor([True, True, False, False, False, True])
    labels = torch.tensor([0, 1, IGNORE_LABEL, 2, 3, 4])
    answer_type = torch.tensor([0, 0, 0, 1, -1, 1])
    readable = torch.tensor([True, True, True, False, True, True])
    metrics = qa_metrics(correct, labels, answer_type, ["color", "count"], readable, vocabulary=True)
    assert metrics["accuracy"] == pytest.approx(50.0)
    assert metrics["questions"] == 6
    assert metrics["unreadable"] == 1
    assert metrics["coverage"] == pytest.approx(100 * 5 / 6)
    assert metrics["accuracy_color"] == pytest.approx(200 / 3)
    assert metrics["questions_color"] == 3
    assert metrics["accuracy_count"] == pytest.approx(50.0)
    assert metrics["questions_count"] == 2
    assert "coverage" not in qa_metrics(correct, labels, answer_type, [], readable, vocabulary=False)
