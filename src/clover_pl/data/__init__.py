"""Data: tokenizer, and (from the pretraining issue on) pipelines and datamodules."""

from clover_pl.data.text import load_tokenizer

__all__ = ["load_tokenizer"]
