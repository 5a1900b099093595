"""Texts of the VideoQA settings: questions, multiple-choice candidates and fill-in-the-blank sentences as token ids.

- Open-ended: the question alone (spec 5.1, ``QATextPrepare`` with no ``answers`` key).
- Multiple-choice: one text per candidate from a template; the release's is
  ``"{question} Options: {options} Answer: {candidate}"`` with the five options joined by spaces. LSMDC-MC has no
  question, so its texts start with ``" Options: "`` (stripped here). MSRVTT-MC scores the candidate alone
  (``"{candidate}"``) with the dual encoders.
- Fill-in-the-blank: the sentence with its one ``[MASK]``; the answer is read at the blank's position, so a long
  sentence is cut to a window of ``max_length`` tokens that keeps the blank, instead of truncating its end away.
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_MC_TEMPLATE = "{question} Options: {options} Answer: {candidate}"
"""The release's multiple-choice text (spec 5.1); ``{options}`` is every option, joined by spaces."""
TEMPLATE_FIELDS = ("question", "options", "candidate")


def check_template(template: str) -> None:
    """Raise ValueError unless ``template`` formats with exactly the fields ``question``, ``options``, ``candidate``."""
    try:
        template.format(question="q", options="o", candidate="c")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"multiple-choice template {template!r} is not valid ({error}); it may use the fields "
            f"{', '.join('{' + field + '}' for field in TEMPLATE_FIELDS)}"
        ) from None
    if "{candidate}" not in template:
        raise ValueError(f"multiple-choice template {template!r} must contain {{candidate}}")


def candidate_texts(question: str, options: list[str], template: str = DEFAULT_MC_TEMPLATE) -> list[str]:
    """One text per option: ``template`` filled with the question, all options and that option, stripped."""
    joined = " ".join(options)
    return [" ".join(template.format(question=question, options=joined, candidate=o).split()) for o in options]


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) ``input_ids`` and ``attention_mask`` (long), padded to ``max_length``, longer texts truncated."""
    text = tokenizer(texts, max_length=max_length, padding="max_length", truncation=True, return_tensors="pt")
    return text["input_ids"].long(), text["attention_mask"].long()


def encode_with_blank(tokenizer: Any, text: str, max_length: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Token ids of a fill-in-the-blank sentence and the position of its blank.

    When the sentence is longer than ``max_length`` tokens, [CLS] and [SEP] stay and the content is cut to the
    window of ``max_length - 2`` tokens that centres the blank (clipped to the sentence's ends).

    Args:
        tokenizer: the BERT tokenizer (its ``mask_token`` marks the blank).
        text: the sentence with exactly one blank written as the tokenizer's mask token (``[MASK]``).
        max_length: L, with [CLS] and [SEP].

    Returns:
        ``input_ids`` (L,) and ``attention_mask`` (L,) long, and the blank's index in them.

    Raises:
        ValueError: the tokenised sentence does not hold exactly one mask token.
    """
    ids = tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
    positions = [index for index, token in enumerate(ids) if token == tokenizer.mask_token_id]
    if len(positions) != 1:
        raise ValueError(f"a fill-in-the-blank text needs exactly one {tokenizer.mask_token}, found {len(positions)}")
    position = positions[0]
    if len(ids) > max_length:
        content, keep = ids[1:-1], max_length - 2
        start = min(max(position - 1 - keep // 2, 0), len(content) - keep)
        ids = [ids[0], *content[start : start + keep], ids[-1]]
        position = position - start
    input_ids = torch.full((max_length,), tokenizer.pad_token_id, dtype=torch.long)
    input_ids[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    attention_mask = torch.zeros(max_length, dtype=torch.long)
    attention_mask[: len(ids)] = 1
    return input_ids, attention_mask, position
