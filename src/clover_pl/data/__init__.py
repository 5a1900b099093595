"""Data: tokenizer, masking, decoding, webdataset pipelines and the datamodules."""

from clover_pl.data.pretrain import PretrainDataModule
from clover_pl.data.retrieval import RetrievalDataModule
from clover_pl.data.text import load_tokenizer
from clover_pl.data.videoqa import VideoQADataModule

__all__ = ["PretrainDataModule", "RetrievalDataModule", "VideoQADataModule", "load_tokenizer"]
