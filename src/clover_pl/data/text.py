"""Tokenizer loading (BERT's WordPiece tokenizer from a local directory or vocabulary file) and caption tokenizing."""

from __future__ import annotations

import os
from typing import Any

import torch

# transformers v5: BertTokenizer is the fast (tokenizers) class, and BertTokenizerFast an alias of it.
from transformers import BertTokenizer as BertTokenizerFast


def load_tokenizer(path: str) -> BertTokenizerFast:
    """Load an uncased BERT tokenizer from a local BERT directory or a ``vocab.txt`` file.

    transformers v5 ignores ``vocab_file=`` (every word would become [UNK]), so a file is passed as ``vocab=``.

    Args:
        path: a directory holding ``vocab.txt`` (or tokenizer files), or the ``vocab.txt`` itself.

    Returns:
        The fast tokenizer; take special-token ids from it, never hard-code them.

    Raises:
        FileNotFoundError: nothing usable at ``path``.
    """
    if os.path.isfile(path):
        return BertTokenizerFast(vocab=path, do_lower_case=True)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizer not found: {path} (a BERT directory with vocab.txt, or a vocab.txt)")
    if not any(os.path.isfile(os.path.join(path, name)) for name in ("vocab.txt", "tokenizer.json")):
        raise FileNotFoundError(f"tokenizer directory {path} has neither vocab.txt nor tokenizer.json")
    return BertTokenizerFast.from_pretrained(path, local_files_only=True)


def tokenize(tokenizer: Any, captions: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """(N, L) long ``input_ids`` and ``attention_mask``, padded to ``max_length`` and truncated."""
    text = tokenizer(captions, max_length=max_length, padding="max_length", truncation=True, return_tensors="pt")
    return {"input_ids": text["input_ids"].long(), "attention_mask": text["attention_mask"].long()}
