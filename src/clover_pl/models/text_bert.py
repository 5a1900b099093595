"""Text encoder: transformers' ``BertModel`` (12 layers for base), from a local directory or from sizes."""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from torch import nn
from transformers import BertConfig, BertModel

from clover_pl.models.architecture import class_path, constructor_arguments
from clover_pl.models.bert_weights import copy_strict, read_bert_config, read_bert_weights
from clover_pl.models.load_report import LoadReport

log = logging.getLogger(__name__)

AttentionBackend = Literal["sdpa", "eager"]
"""transformers' attention implementations that the encoders' masks are built for."""


def bert_config(
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    dropout: float,
    attn_implementation: AttentionBackend,
) -> BertConfig:
    """A ``BertConfig`` for random initialisation (layer-norm eps 1e-12 and GELU, as BERT-base)."""
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        layer_norm_eps=1e-12,
    )
    config._attn_implementation = attn_implementation  # not among BertConfig's declared arguments
    return config


def bert_config_dict(config: BertConfig) -> dict[str, Any]:
    """A ``BertConfig`` as plain values (``BertConfig(**it)`` gives it back); the attention backend is left out."""
    return {key: value for key, value in config.to_diff_dict().items() if key != "transformers_version"}


class TextEncoder(nn.Module):
    """BERT over token ids; Clover uses only ``last_hidden_state`` (no pooler, token type 0).

    With ``pretrained_path`` the directory's ``config.json`` gives the sizes and its weights are loaded strictly;
    the size arguments are then ignored. Without it the encoder is randomly initialised from the sizes.

    Args:
        pretrained_path: local HuggingFace BERT directory, or None for random initialisation.
        vocab_size: vocabulary size (random init only).
        hidden_size: width D (random init only).
        num_layers: number of transformer layers (random init only).
        num_heads: attention heads (random init only).
        intermediate_size: MLP width (random init only).
        max_position_embeddings: longest text (random init only).
        dropout: hidden and attention dropout (random init only; BERT's own 0.1 otherwise).
        attn_implementation: transformers attention backend, ``"sdpa"`` or ``"eager"``.
        bert_settings: a whole ``BertConfig`` as a dict (what a checkpoint records, see :meth:`architecture`); it
            replaces the size arguments, and cannot be combined with ``pretrained_path``.
    """

    def __init__(
        self,
        pretrained_path: str | None = None,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 512,
        dropout: float = 0.1,
        attn_implementation: AttentionBackend = "sdpa",
        bert_settings: dict[str, Any] | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        super().__init__()
        self.arguments = arguments
        if bert_settings is not None:
            if pretrained_path is not None:
                raise ValueError("give the text encoder pretrained_path or bert_settings, not both")
            config = BertConfig(**bert_settings)
            config._attn_implementation = attn_implementation
        elif pretrained_path is None:
            config = bert_config(
                vocab_size,
                hidden_size,
                num_layers,
                num_heads,
                intermediate_size,
                max_position_embeddings,
                dropout,
                attn_implementation,
            )
        else:
            config = read_bert_config(pretrained_path)
            config._attn_implementation = attn_implementation
        # The pooler is never used by Clover; leaving it out avoids DDP's unused-parameter error (spec 9.7).
        self.bert = BertModel(config, add_pooling_layer=False)
        self.load_report: LoadReport | None = None
        if pretrained_path is not None:
            self.load_report = self.load_pretrained(pretrained_path)

    def architecture(self) -> dict[str, Any]:
        """``class_path``/``init_args`` that rebuild this encoder's shapes without the BERT directory."""
        init_args = {**self.arguments, "pretrained_path": None, "bert_settings": bert_config_dict(self.bert.config)}
        return {"class_path": class_path(self), "init_args": init_args}

    @property
    def hidden_size(self) -> int:
        """Width D of the output states."""
        return int(self.bert.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return int(self.bert.config.vocab_size)

    def load_pretrained(self, path: str) -> LoadReport:
        """Copy embeddings and every layer from a BERT directory; everything the encoder needs must be there.

        Args:
            path: local HuggingFace BERT directory.

        Returns:
            What was loaded and what in the file was left aside.
        """
        weights = read_bert_weights(path)
        key_map = {name: name for name in self.bert.state_dict()}
        loaded = copy_strict(self.bert, weights, key_map, path)
        used = set(loaded)
        skipped = {key: "not part of the text encoder" for key in weights if key not in used}
        report = LoadReport(source=path, loaded=loaded, skipped=skipped, interpolated=[])
        log.info("text encoder: %s", report.summary())
        return report

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encode token ids.

        Args:
            input_ids: (B, L) token ids.
            attention_mask: (B, L), 1 for real tokens and 0 for padding.

        Returns:
            (B, L, D) last hidden states; position 0 is [CLS].
        """
        # A (B, 1, 1, L) mask built here: given the (B, L) 0/1 mask, transformers checks whether it is all ones (to
        # drop it) with a host sync in every text pass. SDPA takes it as booleans (True = attend); the eager
        # attention adds it to the scores, so it gets the additive form.
        keep = attention_mask[:, None, None, :].bool()
        mask = keep
        if self.bert.config._attn_implementation == "eager":
            mask = torch.zeros(keep.shape, device=keep.device).masked_fill(~keep, torch.finfo(torch.float32).min)
        return self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
