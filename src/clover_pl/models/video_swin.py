"""Video Swin Transformer (Liu et al., CVPR 2022), the video encoder of Clover.

Submodule and parameter names follow the official Video Swin release so that its checkpoints load once the
``backbone.`` prefix is stripped (see :mod:`clover_pl.models.swin_checkpoint`).

Shape notation: B batch, C channels, T frames, H/W pixels; D/H/W inside the encoder are the token grid
(time, height, width); N tokens per window; nW windows per clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from clover_pl.models.architecture import class_path, constructor_arguments
from clover_pl.models.load_report import LoadReport
from clover_pl.models.swin_checkpoint import load_video_swin_checkpoint

Size3 = tuple[int, int, int]
ClippedWindowBias = Literal["release", "corner"]
"""How a window clipped to a small feature grid takes its relative-position bias (``clipped_window_bias``)."""
CLIPPED_WINDOW_BIASES: tuple[str, ...] = get_args(ClippedWindowBias)


def clip_window(
    feature_size: Sequence[int], window_size: Sequence[int], shift_size: Sequence[int]
) -> tuple[Size3, Size3]:
    """Clips the window to the feature size, as the official ``get_window_size`` does.

    Along an axis where the feature is no larger than the window, a single window covers it, so the window
    becomes the feature size and shifting along that axis is pointless (shift 0).

    Args:
        feature_size: (D, H, W) token grid of the stage.
        window_size: configured (Wd, Wh, Ww).
        shift_size: configured shift per axis.

    Returns:
        The (window, shift) pair actually used.
    """
    window = list(window_size)
    shift = list(shift_size)
    for axis, size in enumerate(feature_size):
        if size <= window_size[axis]:
            window[axis] = size
            shift[axis] = 0
    return (window[0], window[1], window[2]), (shift[0], shift[1], shift[2])


def window_partition(x: Tensor, window: Size3) -> Tensor:
    """Splits a channels-last grid into non-overlapping windows.

    Args:
        x: (B, D, H, W, C), each of D, H, W a multiple of the window.
        window: (Wd, Wh, Ww).

    Returns:
        (B * nW, Wd * Wh * Ww, C), windows ordered batch-major, then d, h, w.
    """
    B, D, H, W, C = x.shape
    wd, wh, ww = window
    x = x.view(B, D // wd, wd, H // wh, wh, W // ww, ww, C)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, C)


def window_reverse(windows: Tensor, window: Size3, grid: Size3) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, N, C) windows back to a (B, D, H, W, C) ``grid``."""
    wd, wh, ww = window
    D, H, W = grid
    x = windows.view(-1, D // wd, H // wh, W // ww, wd, wh, ww, windows.shape[-1])
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(-1, D, H, W, windows.shape[-1])


def shifted_window_mask(grid: Size3, window: Size3, shift: Size3, device: torch.device) -> Tensor:
    """Additive mask that keeps cyclically shifted windows from mixing regions that are not neighbours.

    After the roll by -shift, the last window along an axis holds tokens from both ends of the grid. Each axis
    is cut into the official three regions [0, L-w), [L-w, L-s), [L-s, L); tokens attend only within a region.

    Args:
        grid: (D, H, W) padded token grid.
        window: clipped window.
        shift: clipped shift.
        device: where to build the mask.

    Returns:
        (nW, N, N) float mask: 0 within a region, -100 across regions.
    """
    region_ids = []
    for length, size, offset in zip(grid, window, shift, strict=True):
        ids = torch.zeros(length, dtype=torch.long, device=device)
        if offset > 0:
            ids[length - size :] = 1
            ids[length - offset :] = 2
        region_ids.append(ids)
    regions = region_ids[0].view(-1, 1, 1) * 9 + region_ids[1].view(1, -1, 1) * 3 + region_ids[2].view(1, 1, -1)
    regions = window_partition(regions[None, ..., None], window).squeeze(-1)
    different = regions.unsqueeze(1) != regions.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)


def relative_position_index(window: Size3) -> Tensor:
    """Row of the bias table for every (query, key) token pair of one window.

    The relative offset (dd, dh, dw) between two tokens, shifted to be non-negative, is flattened row-major over a
    (2Wd-1, 2Wh-1, 2Ww-1) grid.

    Args:
        window: (Wd, Wh, Ww).

    Returns:
        (N, N) long tensor, N = Wd * Wh * Ww.
    """
    coords = torch.stack(torch.meshgrid(*(torch.arange(size) for size in window), indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :]
    wd, wh, ww = window
    return ((offsets[0] + wd - 1) * (2 * wh - 1) + offsets[1] + wh - 1) * (2 * ww - 1) + offsets[2] + ww - 1


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability ``drop_prob``.

    Args:
        drop_prob: probability of dropping a sample's branch; kept branches are scaled by 1 / (1 - drop_prob).
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """Drops (B, ...) samples of the residual branch ``x`` in training; identity otherwise."""
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * keep / keep_prob

    def extra_repr(self) -> str:
        """Shows the rate in the module's repr."""
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Two-layer GELU feed-forward network of a Swin block."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Maps (..., dim) to (..., dim)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows with a learned relative position bias.

    Args:
        dim: channels C.
        window_size: full (Wd, Wh, Ww); the bias table covers every offset within it.
        num_heads: attention heads; C must be divisible by it.
        qkv_bias: whether the qkv projection has a bias.
        attn_drop: dropout on attention weights (training only).
        proj_drop: dropout after the output projection.
        clipped_window_bias: bias of a window clipped to a smaller grid: ``"release"`` (the first N rows and
            columns of the full window's index, as every Video Swin and Clover checkpoint was trained) or
            ``"corner"`` (the offsets between the clipped window's own tokens).
    """

    def __init__(
        self,
        dim: int,
        window_size: Size3,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        clipped_window_bias: ClippedWindowBias = "release",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"channels ({dim}) must be divisible by num_heads ({num_heads})")
        if clipped_window_bias not in CLIPPED_WINDOW_BIASES:
            raise ValueError(
                f"clipped_window_bias must be one of {', '.join(CLIPPED_WINDOW_BIASES)}, got {clipped_window_bias!r}"
            )
        self.clipped_window_bias = clipped_window_bias
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        wd, wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self, window: Size3) -> Tensor:
        """Bias for a (possibly clipped) window.

        ``"release"`` (default) takes the first N rows and columns of the full window's (N_full, N_full) index, as
        the official Video Swin code does: when H or W is clipped these rows belong to full-window tokens that are
        not the clipped window's, so the offsets are not the tokens' own, but it is what every Video Swin and
        Clover checkpoint was trained and evaluated with. ``"corner"`` (ours, an option) treats the clipped window
        as a corner of the full window and takes the offsets between its own tokens. Both agree when only time
        is clipped.

        Args:
            window: (wd, wh, ww), each no larger than the full window.

        Returns:
            (heads, N, N) bias, N = wd * wh * ww.
        """
        index = self.get_buffer("relative_position_index")
        if tuple(window) != tuple(self.window_size) and self.clipped_window_bias == "release":
            tokens = window[0] * window[1] * window[2]
            index = index[:tokens, :tokens]
        elif tuple(window) != tuple(self.window_size):
            device = index.device
            _, full_h, full_w = self.window_size
            d, h, w = torch.meshgrid(*(torch.arange(size, device=device) for size in window), indexing="ij")
            corner = ((d * full_h + h) * full_w + w).flatten()
            index = index[corner][:, corner]
        tokens = index.shape[0]
        bias = self.relative_position_bias_table[index.flatten()].view(tokens, tokens, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: Tensor, window: Size3, shift_mask: Tensor | None = None) -> Tensor:
        """Attends within each window.

        Args:
            x: (B * nW, N, C) window tokens, batch-major.
            window: the (clipped) window these tokens come from.
            shift_mask: (nW, N, N) additive mask of shifted windows, or None.

        Returns:
            (B * nW, N, C).
        """
        windows, tokens, channels = x.shape
        heads = self.num_heads
        mask = self.relative_position_bias(window).unsqueeze(0)
        if shift_mask is not None:
            mask = mask + shift_mask.unsqueeze(1)
        # Windows of one clip are folded into the head axis so the (nW, heads, N, N) mask broadcasts over the batch
        # instead of being copied B times.
        per_clip = mask.shape[0]
        qkv = self.qkv(x).view(windows // per_clip, per_clip, tokens, 3, heads, channels // heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).flatten(2, 3).unbind(0)
        mask = mask.reshape(1, per_clip * heads, tokens, tokens).to(q.dtype)
        dropout = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = out.view(windows // per_clip, per_clip, heads, tokens, -1).permute(0, 1, 3, 2, 4)
        return self.proj_drop(self.proj(out.reshape(windows, tokens, channels)))


class SwinTransformerBlock3D(nn.Module):
    """Pre-norm (shifted-)window attention block followed by a pre-norm MLP.

    Args:
        dim: channels C.
        num_heads: attention heads.
        window_size: configured window.
        shift_size: configured shift ((0, 0, 0) for a regular block).
        mlp_ratio: MLP hidden size over C.
        qkv_bias: bias on the qkv projection.
        drop: dropout after projections.
        attn_drop: attention-weight dropout.
        drop_path: stochastic-depth rate of this block.
        clipped_window_bias: see :class:`WindowAttention3D`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: Size3,
        shift_size: Size3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        clipped_window_bias: ClippedWindowBias = "release",
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(
            dim,
            window_size,
            num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
            clipped_window_bias=clipped_window_bias,
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def _attention(self, x: Tensor, shift_mask: Tensor | None) -> Tensor:
        B, D, H, W, C = x.shape
        window, shift = clip_window((D, H, W), self.window_size, self.shift_size)
        # Padding comes after the norm, as in the official code: padded tokens enter attention as zeros.
        x = self.norm1(x)
        pad = [(-size) % step for size, step in zip((D, H, W), window, strict=True)]
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        grid = (D + pad[0], H + pad[1], W + pad[2])
        shifted = any(shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = self.attn(window_partition(x, window), window, shift_mask if shifted else None)
        x = window_reverse(windows, window, grid)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :D, :H, :W].contiguous()

    def forward(self, x: Tensor, shift_mask: Tensor | None = None) -> Tensor:
        """Applies the block.

        Args:
            x: (B, D, H, W, C) channels-last tokens.
            shift_mask: (nW, N, N) mask from :func:`shifted_window_mask`, used only if this block shifts.

        Returns:
            (B, D, H, W, C).
        """
        x = x + self.drop_path(self._attention(x, shift_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halves H and W by concatenating 2x2 neighbours (4C) and projecting to 2C; time is left alone."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """Maps (B, D, H, W, C) to (B, D, ceil(H/2), ceil(W/2), 2C)."""
        H, W = x.shape[2:4]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks alternating regular and shifted windows, then optional patch merging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: Size3,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        downsample: bool,
        activation_checkpointing: bool = False,
        clipped_window_bias: ClippedWindowBias = "release",
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size: Size3 = (window_size[0] // 2, window_size[1] // 2, window_size[2] // 2)
        self.activation_checkpointing = activation_checkpointing
        shifts = [(0, 0, 0) if index % 2 == 0 else self.shift_size for index in range(depth)]
        self.blocks = nn.ModuleList(
            SwinTransformerBlock3D(
                dim,
                num_heads,
                window_size,
                shift,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=rate,
                clipped_window_bias=clipped_window_bias,
            )
            for shift, rate in zip(shifts, drop_path, strict=True)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        """Maps (B, D, H, W, C) to (B, D, H', W', C'), halved and doubled when the stage downsamples."""
        grid = x.shape[1:4]
        window, shift = clip_window(grid, self.window_size, self.shift_size)
        D, H, W = (math.ceil(size / step) * step for size, step in zip(grid, window, strict=True))
        # One mask serves every shifted block of the stage, since they share the grid, window and shift.
        shift_mask = shifted_window_mask((D, H, W), window, shift, x.device) if any(shift) else None
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = activation_checkpoint(block, x, shift_mask, use_reentrant=False)
            else:
                x = block(x, shift_mask)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class PatchEmbed3D(nn.Module):
    """Non-overlapping 3D patches, zero-padded up to whole patches, projected by a Conv3d, then LayerNorm."""

    def __init__(self, patch_size: Size3, in_channels: int, embed_dim: int, patch_norm: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, video: Tensor) -> Tensor:
        """Maps (B, C, T, H, W) to (B, embed_dim, ceil(T/pt), ceil(H/ph), ceil(W/pw))."""
        T, H, W = video.shape[2:]
        pt, ph, pw = self.patch_size
        video = F.pad(video, (0, (-W) % pw, 0, (-H) % ph, 0, (-T) % pt))
        x = self.proj(video)
        if self.norm is not None:
            x = self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return x


class VideoSwinTransformer(nn.Module):
    """Video Swin Transformer encoder; the constructor arguments are its configuration.

    Defaults are Clover's Swin-B (patch 2x4x4, window 8x7x7, drop path 0.3, with the pretraining mask token).

    Args:
        patch_size: (time, height, width) patch size, also the patch-embed stride.
        in_channels: input channels.
        embed_dim: channels of stage 1; doubled at every later stage.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: (time, height, width) attention window, clipped per stage to the feature size.
        mlp_ratio: MLP hidden size over channels.
        qkv_bias: bias on the qkv projections.
        drop_rate: dropout after the patch embed and projections.
        attn_drop_rate: attention-weight dropout.
        drop_path_rate: stochastic-depth rate of the last block, linearly increasing from 0 over all blocks.
        patch_norm: LayerNorm after the patch embed.
        mask_token: learn a token that replaces masked patches (video masking in pretraining).
        pretrained_path: path of an official Video Swin checkpoint loaded at construction; its report is
            kept on ``self.load_report``.
        activation_checkpointing: recompute each block in backward to save activation memory (training only).
        clipped_window_bias: relative-position bias of windows clipped to a stage grid smaller than the window
            (inputs under ~193 px, one-frame images): ``"release"`` (default; the first N rows and columns of the
            full window's index, as the official code and so every Video Swin and Clover checkpoint) or
            ``"corner"`` (clover-pl's earlier choice: the offsets between the clipped window's own tokens).
    """

    def __init__(
        self,
        patch_size: tuple[int, int, int] = (2, 4, 4),
        in_channels: int = 3,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: tuple[int, int, int] = (8, 7, 7),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.3,
        patch_norm: bool = True,
        mask_token: bool = True,
        pretrained_path: str | None = None,
        activation_checkpointing: bool = False,
        clipped_window_bias: ClippedWindowBias = "release",
    ) -> None:
        arguments = constructor_arguments(locals())
        super().__init__()
        self.arguments = arguments
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} must have the same length")
        patch: Size3 = (patch_size[0], patch_size[1], patch_size[2])
        window: Size3 = (window_size[0], window_size[1], window_size[2])
        self.patch_size = patch
        self.window_size = window
        self.embed_dim = embed_dim
        self.out_dim = embed_dim * 2 ** (len(depths) - 1)
        self.downsample_factor = patch[1] * 2 ** (len(depths) - 1)

        self.patch_embed = PatchEmbed3D(patch, in_channels, embed_dim, patch_norm=patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        blocks = sum(depths)
        rates = [drop_path_rate * index / max(blocks - 1, 1) for index in range(blocks)]
        self.layers = nn.ModuleList()
        for stage, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            first = sum(depths[:stage])
            self.layers.append(
                BasicLayer(
                    dim=embed_dim * 2**stage,
                    depth=depth,
                    num_heads=heads,
                    window_size=window,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[first : first + depth],
                    downsample=stage < len(depths) - 1,
                    activation_checkpointing=activation_checkpointing,
                    clipped_window_bias=clipped_window_bias,
                )
            )
        self.norm = nn.LayerNorm(self.out_dim)
        if mask_token:
            self.mask_token: nn.Parameter | None = nn.Parameter(torch.zeros(1, embed_dim, 1, 1, 1))
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        else:
            self.mask_token = None
        self.apply(_init_weights)

        self.load_report: LoadReport | None = None
        if pretrained_path is not None:
            self.load_report = load_video_swin_checkpoint(self, pretrained_path)

    def architecture(self) -> dict[str, Any]:
        """This encoder's ``class_path``/``init_args``, without ``pretrained_path`` (a checkpoint has the weights)."""
        return {"class_path": class_path(self), "init_args": {**self.arguments, "pretrained_path": None}}

    def embed_patches(self, video: Tensor, mask: Tensor | None = None) -> Tensor:
        """Patch-embeds a clip and replaces the patches of masked cells by the mask token.

        Args:
            video: (B, C, T, H, W) float clip.
            mask: (B, Mh, Mw) bool, True where a spatial cell is masked (same cells for every frame), or None.
                The patch grid must split evenly into Mh x Mw cells.

        Returns:
            (B, embed_dim, T', H_p, W_p) patch tokens.

        Raises:
            ValueError: if a mask is given to a model without a mask token, or does not fit the patch grid.
        """
        x = self.patch_embed(video)
        if mask is None:
            return x
        if self.mask_token is None:
            raise ValueError("a video mask was given but the encoder was built with mask_token=False")
        B, _, _, H, W = x.shape
        if mask.dim() != 3 or mask.shape[0] != B:
            raise ValueError(f"video mask must have shape (B={B}, Mh, Mw), got {tuple(mask.shape)}")
        cells_h, cells_w = mask.shape[1:]
        if H % cells_h or W % cells_w:
            raise ValueError(
                f"video mask grid {cells_h}x{cells_w} does not divide the {H}x{W} patch grid; "
                f"choose a grid whose sides divide {H} and {W}"
            )
        weight = mask.to(x.dtype).repeat_interleave(H // cells_h, dim=1).repeat_interleave(W // cells_w, dim=2)
        weight = weight[:, None, None]
        return x * (1 - weight) + self.mask_token * weight

    def forward(self, video: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encodes a clip (an image is a 1-frame clip).

        Args:
            video: (B, C, T, H, W) float clip.
            mask: (B, Mh, Mw) bool cell mask for masked-video pretraining, or None.

        Returns:
            (B, T', H', W', out_dim) channels-last feature map after the final LayerNorm, with
            T' = ceil(T / patch_t) and H', W' the patch grid halved (rounding up) once per stage after the first.
            For 8 frames at 224 px with the defaults: (B, 4, 7, 7, 1024).
        """
        x = self.pos_drop(self.embed_patches(video, mask))
        x = x.permute(0, 2, 3, 4, 1).contiguous()
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def _init_weights(module: nn.Module) -> None:
    # The official initialisation; Conv3d keeps PyTorch's default.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
