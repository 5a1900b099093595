"""Reading a HuggingFace BERT directory from a local path, strictly and with a report.

One directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin`` + ``vocab.txt``, as written by
``save_pretrained``) fills three parts of Clover: the text encoder, the fusion layers (BERT layers 0..n-1) and the
MLM head (``cls.predictions``). Nothing is ever downloaded: a name that is not a directory is an error.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import torch
from safetensors.torch import load_file
from transformers import BertConfig

from clover_pl.checkpoint_load import load_checkpoint_file
from clover_pl.errors import UserError

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _require_directory(path: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"BERT directory not found: {path} (a local folder with config.json and model.safetensors or "
            "pytorch_model.bin is expected; nothing is downloaded)"
        )


def read_bert_config(path: str) -> BertConfig:
    """Read ``config.json`` of a local BERT directory.

    Args:
        path: the directory.

    Returns:
        The BERT configuration.

    Raises:
        FileNotFoundError: the directory or its config.json is missing.
        ValueError: config.json is not a BERT configuration.
    """
    _require_directory(path)
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"BERT directory {path} has no config.json")
    try:
        config = BertConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UserError(f"BERT config {config_file}: not a readable BERT configuration ({error})") from error
    return config


@functools.lru_cache(maxsize=1)
def _read_weights(weight_file: str, mtime: float) -> dict[str, torch.Tensor]:
    # Cached so that the text encoder, the fusion encoder and the MLM head built from one directory read it once.
    del mtime  # part of the cache key only: a rewritten file is read again
    try:
        if weight_file.endswith(".safetensors"):
            state = load_file(weight_file, device="cpu")
        else:
            state = load_checkpoint_file(weight_file, "BERT weight file")  # weights_only=True, one-line UserError
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise UserError(f"BERT weight file {weight_file}: not a readable safetensors file ({error})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"BERT weight file {weight_file}: not a state dict of tensors")
    # BertModel.save_pretrained writes bare keys, BertForPreTraining / BertForMaskedLM prefix the encoder with "bert.".
    return {key.removeprefix("bert."): value for key, value in state.items()}


def read_bert_weights(path: str) -> dict[str, torch.Tensor]:
    """Read the weights of a local BERT directory, with the ``bert.`` prefix stripped.

    Args:
        path: the directory.

    Returns:
        A state dict: encoder keys as ``embeddings.*`` / ``encoder.layer.{i}.*``, head keys as ``cls.*``.

    Raises:
        FileNotFoundError: the directory or its weight file is missing.
        ValueError: the weight file cannot be read as a state dict.
    """
    _require_directory(path)
    for name in _WEIGHT_FILES:
        weight_file = os.path.join(path, name)
        if os.path.isfile(weight_file):
            return _read_weights(weight_file, os.path.getmtime(weight_file))
    raise FileNotFoundError(f"BERT directory {path} has no weight file (looked for {', '.join(_WEIGHT_FILES)})")


def copy_strict(
    module: torch.nn.Module, source: Mapping[str, torch.Tensor], key_map: Mapping[str, str], origin: str
) -> list[str]:
    """Copy ``source[key_map[name]]`` into every parameter and buffer ``name`` of ``module``, strictly.

    Args:
        module: the destination; every entry of its state dict must be covered by ``key_map``.
        source: the file's tensors.
        key_map: module key -> file key.
        origin: the file or directory, for error messages.

    Returns:
        The file keys that were used.

    Raises:
        ValueError: a key is missing from the file, or its shape differs (the message names key, shapes and origin).
    """
    target = module.state_dict()
    missing_in_map = sorted(set(target) - set(key_map))
    if missing_in_map:
        raise ValueError(f"no source key for {missing_in_map[0]} (and {len(missing_in_map) - 1} more) from {origin}")
    state = {}
    for name, file_key in key_map.items():
        if file_key not in source:
            raise ValueError(f"missing key {file_key} in {origin} (needed for {name})")
        value = source[file_key]
        file_shape, model_shape = tuple(value.shape), tuple(target[name].shape)
        if file_shape != model_shape:
            raise ValueError(f"shape mismatch for {file_key} in {origin}: file {file_shape}, model {model_shape}")
        state[name] = value
    module.load_state_dict(state, strict=True)
    return sorted(key_map.values())
