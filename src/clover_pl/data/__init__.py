"""Data: tokenizer, masking, decoding, webdataset pipelines and the datamodules.

The datamodules are imported on first use (PEP 562), so that a submodule such as ``clover_pl.data.shards`` or
``clover_pl.data.retrieval_manifest`` can be imported without Lightning (``clover-pl prepare`` needs only those).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clover_pl.data.pretrain import PretrainDataModule
    from clover_pl.data.retrieval import RetrievalDataModule
    from clover_pl.data.text import load_tokenizer
    from clover_pl.data.videoqa import VideoQADataModule

_EXPORTS = {
    "PretrainDataModule": "clover_pl.data.pretrain",
    "RetrievalDataModule": "clover_pl.data.retrieval",
    "VideoQADataModule": "clover_pl.data.videoqa",
    "load_tokenizer": "clover_pl.data.text",
}

__all__ = ["PretrainDataModule", "RetrievalDataModule", "VideoQADataModule", "load_tokenizer"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clover_pl.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
