"""Loading a checkpoint for inference: its backbone and heads, and a dual-encoder embedder for videos and texts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clover_pl.data.text import load_tokenizer, tokenize
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import DecodeError, decode_video
from clover_pl.models.backbone import CloverBackbone
from clover_pl.models.heads import DualEncoderHeads
from clover_pl.tasks.self_describing import RECORD_KEY, read_checkpoint

TASKS = (
    "clover_pl.tasks.pretrain.PretrainTask",
    "clover_pl.tasks.retrieval.RetrievalTask",
    "clover_pl.tasks.videoqa.VideoQATask",
)
HEAD_NAMES = ("heads", "fused_heads", "mlm_head", "answerer")
"""The task attributes that hold heads (also their state-dict prefixes)."""


def load_task(path: str, map_location: Any = "cpu", checkpoint: dict[str, Any] | None = None) -> Any:
    """The task a clover-pl checkpoint was written by, rebuilt and loaded, in eval mode.

    Args:
        path: the checkpoint file.
        map_location: where the tensors go.
        checkpoint: the file's content when already read (it is then not read again).

    Raises:
        ValueError: the checkpoint does not record its task (written before clover-pl described its model).
    """
    from clover_pl.tasks import PretrainTask, RetrievalTask, VideoQATask
    from clover_pl.tasks.base import CloverTask

    checkpoint = read_checkpoint(path, map_location) if checkpoint is None else checkpoint
    record: dict[str, Any] = checkpoint.get(RECORD_KEY) or {}
    classes: dict[str, type[CloverTask]] = dict(zip(TASKS, (PretrainTask, RetrievalTask, VideoQATask), strict=True))
    task_class = classes.get(record.get("task", ""))
    if task_class is None:
        raise ValueError(
            f"{path} does not record which clover-pl task wrote it (a checkpoint from before clover-pl described "
            "its model): load it with <Task>.load_from_checkpoint(path, backbone=<backbone of the same shapes>)"
        )
    return task_class.from_checkpoint_dict(checkpoint, path).eval()


def load_checkpoint(
    path: str, map_location: Any = "cpu", checkpoint: dict[str, Any] | None = None
) -> tuple[CloverBackbone, dict[str, nn.Module]]:
    """Load a clover-pl checkpoint's backbone and heads for inference.

    Args:
        path: a checkpoint of any task (``checkpoints/last.ckpt`` of a pretraining, retrieval or VideoQA fit).
        map_location: where the tensors go.
        checkpoint: the file's content when already read (it is then not read again).

    Returns:
        The backbone and ``{name: head}`` in eval mode, named as in the checkpoint: ``heads`` (the dual-encoder
        projections, :class:`~clover_pl.models.DualEncoderHeads`), ``fused_heads`` and ``mlm_head`` (pretraining),
        ``answerer`` (VideoQA).

    Example:
        >>> backbone, heads = load_checkpoint("outputs/quickstart/checkpoints/last.ckpt")  # doctest: +SKIP
        >>> video = heads["heads"].project_video(backbone.encode_video(clips))  # (B, T, 3, H, W) -> (B, E)
    """
    task = load_task(path, map_location, checkpoint)
    heads = {name: getattr(task, name) for name in HEAD_NAMES if isinstance(getattr(task, name, None), nn.Module)}
    return task.backbone, heads


def dual_encoder_heads(heads: dict[str, nn.Module]) -> DualEncoderHeads:
    """The dual-encoder projections among a checkpoint's heads (a similarity answerer holds them too)."""
    for module in heads.values():
        found = module if isinstance(module, DualEncoderHeads) else getattr(module, "heads", None)
        if isinstance(found, DualEncoderHeads):
            return found
    raise ValueError("this checkpoint has no dual-encoder heads (a VideoQA answerer without them): it cannot embed")


@dataclass
class EmbeddingSettings:
    """How clips and texts are read: as the checkpoint's evaluation read them, unless overridden.

    Attributes:
        frames: frames per clip (segment centres, as evaluation samples them).
        image_size: side of the centre crop.
        max_text_length: tokens per text.
        short_side: resize while decoding (None: the coded size, then resize to ``image_size``).
    """

    frames: int
    image_size: int
    max_text_length: int
    short_side: int | None = None


def settings_from_checkpoint(checkpoint: dict[str, Any], **overrides: Any) -> EmbeddingSettings:
    """Evaluation settings of the datamodule a checkpoint was trained with, with ``overrides`` (None ignored).

    Raises:
        ValueError: a setting is neither recorded nor given (the message names the option).
    """
    data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    found: dict[str, Any] = {
        "frames": next((data[k] for k in ("test_frames", "validation_frames", "num_frames") if data.get(k)), None),
        "image_size": data.get("image_size"),
        "max_text_length": data.get("max_text_length"),
        "short_side": data.get("short_side"),
    }
    found.update({name: value for name, value in overrides.items() if value is not None})
    for name in ("frames", "image_size", "max_text_length"):
        if found[name] is None:
            raise ValueError(f"the checkpoint does not record its {name}: give --{name.replace('_', '-')}")
    return EmbeddingSettings(**found)


def tokenizer_from_checkpoint(checkpoint: dict[str, Any], path: str | None = None) -> Any:
    """The tokenizer: ``path`` if given, else the vocabulary recorded in the checkpoint, else its data's path.

    Raises:
        ValueError: none of them is available (the message names ``--tokenizer``).
    """
    from transformers import BertTokenizer

    if path is not None:
        return load_tokenizer(path)
    vocabulary = (checkpoint.get(RECORD_KEY) or {}).get("vocabulary")
    if vocabulary:
        return BertTokenizer(vocab={token: i for i, token in enumerate(vocabulary)}, do_lower_case=True)
    recorded = (checkpoint.get("datamodule_hyper_parameters") or {}).get("tokenizer")
    if isinstance(recorded, str) and os.path.exists(recorded):
        return load_tokenizer(recorded)
    raise ValueError(
        "the checkpoint holds no vocabulary and its tokenizer path is not here: give --tokenizer "
        "<BERT directory or vocab.txt>"
    )


class ClipReader:
    """Reads a video file as evaluation does: ``frames`` at segment centres, centre crop, normalised.

    Holds no model, so a DataLoader's workers can run it.
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.transform = ClipTransform(settings.image_size, train=False)

    def __call__(self, path: str) -> torch.Tensor | str:
        """(T, C, H, W) float32 clip, or the reason the file cannot be read (``unreadable file``, ``bad video``)."""
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as error:
            return f"unreadable file ({error.strerror})"
        try:
            clip = decode_video(data, self.settings.frames, mode="middle", short_side=self.settings.short_side)
        except DecodeError as error:
            return f"bad video ({error.reason})"
        return self.transform(clip)


class Embedder:
    """Clover's dual encoders as a function from video files and texts to L2-normalised embeddings.

    Args:
        backbone: the encoders.
        heads: the dual-encoder projections.
        tokenizer: the text tokenizer the checkpoint was trained with.
        settings: clip and text reading.
        device: where the model runs.
    """

    def __init__(
        self,
        backbone: CloverBackbone,
        heads: DualEncoderHeads,
        tokenizer: Any,
        settings: EmbeddingSettings,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.backbone = backbone.eval().to(self.device)
        self.heads = heads.eval().to(self.device)
        self.tokenizer = tokenizer
        self.settings = settings
        output = self.heads.video.layers[4]  # the projection's last Linear
        assert isinstance(output, nn.Linear)
        self.embed_dim = output.out_features

    @classmethod
    def from_checkpoint(
        cls,
        path: str,
        tokenizer: str | None = None,
        device: str | torch.device = "cpu",
        **settings: Any,
    ) -> Embedder:
        """Build from a clover-pl checkpoint; ``settings`` override ``frames``, ``image_size``, ``max_text_length``."""
        checkpoint = read_checkpoint(path)
        backbone, heads = load_checkpoint(path, checkpoint=checkpoint)
        return cls(
            backbone,
            dual_encoder_heads(heads),
            tokenizer_from_checkpoint(checkpoint, tokenizer),
            settings_from_checkpoint(checkpoint, **settings),
            device,
        )

    def read_clip(self, path: str) -> torch.Tensor | str:
        """A video file as a (T, C, H, W) normalised clip (segment centres), or the reason it cannot be read."""
        return ClipReader(self.settings)(path)

    @torch.no_grad()
    def embed_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) normalised clips -> (B, E) unit-norm embeddings (float32, on the CPU)."""
        tokens = self.backbone.encode_video(clips.to(self.device))
        return F.normalize(self.heads.project_video(tokens), dim=-1).float().cpu()

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """N texts -> (N, E) unit-norm embeddings (float32, on the CPU)."""
        parts = [torch.zeros(0, self.embed_dim)]
        for start in range(0, len(texts), batch_size):
            text = tokenize(self.tokenizer, texts[start : start + batch_size], self.settings.max_text_length)
            input_ids, mask = text["input_ids"].to(self.device), text["attention_mask"].to(self.device)
            states = self.backbone.encode_text(input_ids, mask)
            parts.append(F.normalize(self.heads.project_text(states), dim=-1).float().cpu())
        return torch.cat(parts)
