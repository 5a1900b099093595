"""Loading official Video Swin checkpoints into :class:`~clover_pl.models.video_swin.VideoSwinTransformer`.

The official release stores ``{"meta": ..., "state_dict": {"backbone.<key>": ..., "cls_head.<key>": ...}}``;
Clover's init file is the same state dict with ``backbone.`` already stripped. Loading is strict on the encoder:
a non-strict load of wrongly prefixed keys would silently load nothing, which is the failure this module exists
to prevent.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from clover_pl.checkpoint_load import load_checkpoint_file
from clover_pl.errors import UserError
from clover_pl.models.load_report import LoadReport

logger = logging.getLogger(__name__)

PREFIXES = ("module.backbone.", "backbone.", "module.")
NOT_ENCODER = "not part of the video encoder"
PRETRAINING_ONLY = "pretraining-only, kept at its initialisation"
RECOMPUTED_BUFFER = "buffer recomputed from the window size"
BIAS_TABLE = "relative_position_bias_table"
INDEX_BUFFER = "relative_position_index"


def read_state_dict(path: str) -> dict[str, Tensor]:
    """Reads the tensors of a checkpoint file, unwrapping ``state_dict`` / ``model`` containers.

    Args:
        path: checkpoint file.

    Returns:
        The raw state dict (prefixes untouched).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file cannot be read by ``torch.load`` or does not hold a mapping of tensors.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Video Swin checkpoint not found: {path}")
    content = load_checkpoint_file(path, "Video Swin checkpoint")  # weights_only=True; UserError naming the file
    if isinstance(content, Mapping):
        for container in ("state_dict", "model"):
            if isinstance(content.get(container), Mapping):
                content = content[container]
                break
    if not isinstance(content, Mapping) or not content:
        raise UserError(f"{path} is not a checkpoint: expected a mapping of tensors, got {type(content).__name__}")
    not_tensors = [key for key, value in content.items() if not isinstance(value, Tensor)]
    if not_tensors:
        raise UserError(f"{path} is not a checkpoint: entries {not_tensors[:5]} are not tensors")
    return {str(key): value for key, value in content.items()}


def strip_prefix(key: str) -> str:
    """Removes the first matching wrapper prefix (``module.backbone.``, ``backbone.``, ``module.``)."""
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _table_window(rows: int, model_window: tuple[int, int, int], tokens: int | None) -> tuple[int, int, int] | None:
    # A table with R rows comes from some window with (2Wd-1)(2Wh-1)(2Ww-1) = R, which is ambiguous in general.
    # Released Video Swin windows are square in space, so look for R = a * s * s with odd a and s, keep those
    # consistent with the file's index buffer (N = Wd*Wh*Ww tokens) when it is there, and prefer the candidate
    # closest to the model's window, then the largest spatial window.
    candidates = []
    for side in range(1, math.isqrt(rows) + 1, 2):
        if rows % (side * side) == 0 and (rows // (side * side)) % 2 == 1:
            window = ((rows // (side * side) + 1) // 2, (side + 1) // 2, (side + 1) // 2)
            if tokens is None or math.prod(window) == tokens:
                candidates.append(window)
    if not candidates:
        return None
    return max(
        candidates, key=lambda window: (sum(a == b for a, b in zip(window, model_window, strict=True)), window[1])
    )


def interpolate_bias_table(
    table: Tensor, source_window: tuple[int, int, int], target_window: tuple[int, int, int]
) -> Tensor:
    """Resizes a relative position bias table to another window by trilinear interpolation over offsets.

    Args:
        table: ((2Wd-1)(2Wh-1)(2Ww-1), heads) table of ``source_window``.
        source_window: (Wd, Wh, Ww) the table was trained with.
        target_window: (Wd, Wh, Ww) of the model.

    Returns:
        ((2Wd'-1)(2Wh'-1)(2Ww'-1), heads) table; zero offset still maps to the centre (align_corners).
    """
    heads = table.shape[1]
    source = [2 * size - 1 for size in source_window]
    target = [2 * size - 1 for size in target_window]
    grid = table.float().reshape(*source, heads).permute(3, 0, 1, 2).unsqueeze(0)
    grid = F.interpolate(grid, size=target, mode="trilinear", align_corners=True)
    return grid.squeeze(0).permute(1, 2, 3, 0).reshape(-1, heads).to(table.dtype)


def load_video_swin_checkpoint(model: nn.Module, path: str) -> LoadReport:
    """Loads an official Video Swin checkpoint into a :class:`VideoSwinTransformer`, strictly.

    Accepts the release format (``state_dict`` with ``backbone.`` keys and a ``cls_head``), a ``model``
    container, or a bare state dict, prefixed or not. Classification-head keys are skipped, the index buffers are
    recomputed, a missing ``mask_token`` keeps its initialisation, and a bias table trained with another window
    is interpolated (with a warning). Anything else missing or mis-shaped is an error.

    Args:
        model: the encoder to fill in place.
        path: checkpoint file.

    Returns:
        The :class:`LoadReport` (also logged at INFO).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a checkpoint, lacks an encoder key, or has a mis-shaped tensor.
    """
    raw = read_state_dict(path)
    expected = model.state_dict()
    report = LoadReport(source=path)
    file_state: dict[str, Tensor] = {}
    for key, value in raw.items():
        name = strip_prefix(key)
        if name.endswith(INDEX_BUFFER) and name in expected:
            report.skipped[key] = RECOMPUTED_BUFFER
        elif name not in expected:
            report.skipped[key] = "model built with mask_token=False" if name == "mask_token" else NOT_ENCODER
        else:
            file_state[name] = value

    absent = [key for key in expected if key not in file_state and not key.endswith(INDEX_BUFFER)]
    if "mask_token" in absent:
        absent.remove("mask_token")
        report.skipped["mask_token"] = PRETRAINING_ONLY
    if absent:
        shown = ", ".join(absent[:5]) + (f" (and {len(absent) - 5} more)" if len(absent) > 5 else "")
        raise ValueError(f"Video Swin checkpoint {path} lacks {len(absent)} encoder keys: {shown}")

    for key, value in file_state.items():
        target = expected[key]
        if value.shape == target.shape:
            continue
        if key.endswith(BIAS_TABLE) and value.dim() == 2 and value.shape[1] == target.shape[1]:
            file_state[key] = _fit_bias_table(model, key, value, raw, target, path)
            report.interpolated.append(key)
            continue
        raise ValueError(
            f"Video Swin checkpoint {path}: shape mismatch for {key}: "
            f"file {tuple(value.shape)} vs model {tuple(target.shape)}"
        )

    model.load_state_dict(file_state, strict=False)
    report.loaded = list(file_state)
    logger.info("Video Swin checkpoint: %s", report.summary())
    return report


def _fit_bias_table(
    model: nn.Module, key: str, table: Tensor, raw: Mapping[str, Tensor], target: Tensor, path: str
) -> Tensor:
    attention = model.get_submodule(key.rsplit(".", 1)[0])
    # A WindowAttention3D, whose full window is a tuple (that class is not imported here: it imports this module).
    size = cast("tuple[int, int, int]", attention.window_size)
    model_window = (int(size[0]), int(size[1]), int(size[2]))
    index_key = next((k for k in raw if strip_prefix(k) == key.replace(BIAS_TABLE, INDEX_BUFFER)), None)
    tokens = raw[index_key].shape[0] if index_key is not None else None
    source_window = _table_window(table.shape[0], model_window, tokens)
    if source_window is None:
        raise ValueError(
            f"Video Swin checkpoint {path}: shape mismatch for {key}: file {tuple(table.shape)} vs model "
            f"{tuple(target.shape)}, and the file's window cannot be inferred for interpolation"
        )
    warnings.warn(
        f"{key}: interpolating the relative position bias table from {tuple(table.shape)} "
        f"(window {source_window}) to {tuple(target.shape)} (window {model_window}), loaded from {path}",
        stacklevel=3,
    )
    return interpolate_bias_table(table, source_window, model_window)
