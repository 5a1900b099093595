"""VideoQA accuracy: overall, per answer type, and the answer vocabulary's coverage.

Every question of the split is in the denominator: one whose answer is outside the vocabulary (label -100) and one
whose video could not be read count as wrong. A tie at the top score counts as wrong too (the conservative choice,
as for retrieval ranks), so a model that scores everything alike gets no credit.
"""

from __future__ import annotations

import torch

IGNORE_LABEL = -100


def correct_answers(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Whether each question's right answer strictly outscores every other answer.

    Args:
        scores: (N, A) answer scores (A answers, or K candidates).
        labels: (N,) long right answer, ``IGNORE_LABEL`` when it is outside the vocabulary.

    Returns:
        (N,) bool; False for ``IGNORE_LABEL``.
    """
    known = labels != IGNORE_LABEL
    safe = labels.clamp(min=0)
    right = scores.gather(1, safe[:, None])[:, 0]
    others = scores.scatter(1, safe[:, None], float("-inf")).max(dim=1).values if scores.shape[1] > 1 else None
    strict = torch.ones_like(known) if others is None else right > others
    return known & strict


def qa_metrics(
    correct: torch.Tensor,
    labels: torch.Tensor,
    answer_type: torch.Tensor,
    type_names: list[str],
    readable: torch.Tensor,
    vocabulary: bool,
) -> dict[str, float]:
    """Accuracy and its breakdown, in percent.

    Args:
        correct: (N,) bool, one entry per question of the split (unreadable ones False).
        labels: (N,) long, ``IGNORE_LABEL`` for an answer outside the vocabulary.
        answer_type: (N,) long index into ``type_names`` (-1: none).
        type_names: the answer-type names.
        readable: (N,) bool, whether the question's video could be read.
        vocabulary: whether the setting answers from a vocabulary (then ``coverage`` is reported).

    Returns:
        ``accuracy``, ``questions``, ``unreadable``, ``accuracy_<type>`` and ``questions_<type>`` per type present,
        and ``coverage`` (percent of questions whose answer is in the vocabulary) for vocabulary settings.
    """
    count = int(correct.numel())
    metrics = {
        "accuracy": 100.0 * float(correct.float().mean()) if count else 0.0,
        "questions": float(count),
        "unreadable": float((~readable).sum()),
    }
    if vocabulary:
        metrics["coverage"] = 100.0 * float((labels != IGNORE_LABEL).float().mean()) if count else 0.0
    for index, name in enumerate(type_names):
        chosen = answer_type == index
        if chosen.any():
            metrics[f"accuracy_{name}"] = 100.0 * float(correct[chosen].float().mean())
            metrics[f"questions_{name}"] = float(chosen.sum())
    return metrics
