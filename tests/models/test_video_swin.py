import math

import pytest
import torch
from torch.testing import assert_close

from clover_pl.models.video_swin import (
    BasicLayer,
    DropPath,
    PatchMerging,
    VideoSwinTransformer,
    WindowAttention3D,
    clip_window,
)

TINY = {"embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": (2, 4, 4), "drop_path_rate": 0.0}


def tiny_model(**overrides) -> VideoSwinTransformer:
    torch.manual_seed(0)
    return VideoSwinTransformer(**{**TINY, **overrides}).eval()


def test_output_shape_and_sizes():
    model = tiny_model()
    out = model(torch.randn(2, 3, 8, 64, 64))
    assert out.shape == (2, 4, 8, 8, 32)
    assert model.out_dim == 32
    assert model.downsample_factor == 8


def test_base_like_window_is_clipped():
    assert clip_window((4, 14, 14), (8, 7, 7), (4, 3, 3)) == ((4, 7, 7), (0, 3, 3))
    assert clip_window((1, 7, 7), (8, 7, 7), (4, 3, 3)) == ((1, 7, 7), (0, 0, 0))
    model = tiny_model(window_size=(8, 7, 7))
    assert model(torch.randn(1, 3, 8, 56, 56)).shape == (1, 4, 7, 7, 32)


def test_single_frame_clip_gives_one_time_step():
    model = tiny_model(window_size=(8, 7, 7))
    assert model(torch.randn(2, 3, 1, 56, 56)).shape == (2, 1, 7, 7, 32)


def test_odd_sizes_are_padded():
    model = tiny_model(depths=[1, 1, 1], num_heads=[1, 1, 2])
    out = model(torch.randn(1, 3, 3, 97, 55))
    time, height, width = math.ceil(3 / 2), math.ceil(97 / 4), math.ceil(55 / 4)
    for _ in range(2):
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    assert out.shape == (1, time, height, width, 64)
    assert torch.isfinite(out).all()


def test_mask_token_replaces_exactly_the_masked_cells():
    model = tiny_model()
    video = torch.randn(2, 3, 4, 64, 64)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    mask[1, 3, 0] = True
    plain = model.embed_patches(video)
    masked = model.embed_patches(video, mask)
    assert masked.shape == plain.shape == (2, 16, 2, 16, 16)
    # Each cell covers 4x4 patches, for every time step.
    patch_mask = mask.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None, None].expand_as(plain)
    assert torch.equal(masked[~patch_mask], plain[~patch_mask])
    token = model.mask_token.expand_as(plain)
    assert torch.equal(masked[patch_mask], token[patch_mask])
    assert not torch.equal(masked[patch_mask], plain[patch_mask])


def test_mask_errors():
    model = tiny_model()
    video = torch.randn(1, 3, 2, 64, 64)
    with pytest.raises(ValueError, match="does not divide"):
        model.embed_patches(video, torch.zeros(1, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask_token=False"):
        tiny_model(mask_token=False)(video, torch.zeros(1, 4, 4, dtype=torch.bool))


def bias_for(attention: WindowAttention3D, window: tuple[int, int, int]) -> torch.Tensor:
    """(heads, N, N) bias built from the table with explicit loops over token pairs."""
    full_d, full_h, full_w = attention.window_size
    coords = [(d, h, w) for d in range(window[0]) for h in range(window[1]) for w in range(window[2])]
    rows = torch.empty(len(coords), len(coords), dtype=torch.long)
    for i, (di, hi, wi) in enumerate(coords):
        for j, (dj, hj, wj) in enumerate(coords):
            offset_d, offset_h, offset_w = di - dj + full_d - 1, hi - hj + full_h - 1, wi - wj + full_w - 1
            rows[i, j] = (offset_d * (2 * full_h - 1) + offset_h) * (2 * full_w - 1) + offset_w
    return attention.relative_position_bias_table[rows].permute(2, 0, 1)


def naive_attention(attention: WindowAttention3D, tokens: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v on one window's (N, C) tokens."""
    heads = attention.num_heads
    q, k, v = attention.qkv(tokens).view(tokens.shape[0], 3, heads, -1).permute(1, 2, 0, 3)
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + bias
    out = (scores.softmax(-1) @ v).transpose(0, 1).reshape(tokens.shape)
    return attention.proj(out)


def test_window_attention_matches_naive_on_one_window():
    torch.manual_seed(0)
    attention = WindowAttention3D(dim=8, window_size=(2, 3, 3), num_heads=2).eval()
    with torch.no_grad():
        attention.relative_position_bias_table.normal_()
    x = torch.randn(3, 18, 8)
    out = attention(x, (2, 3, 3))
    expected = torch.stack([naive_attention(attention, x[i], bias_for(attention, (2, 3, 3))) for i in range(3)])
    assert_close(out, expected)
    # With clipped_window_bias="corner", a clipped window uses the offsets of its own tokens.
    corner = WindowAttention3D(dim=8, window_size=(2, 3, 3), num_heads=2, clipped_window_bias="corner").eval()
    corner.load_state_dict(attention.state_dict())
    x = torch.randn(2, 4, 8)
    expected = torch.stack([naive_attention(corner, x[i], bias_for(corner, (1, 2, 2))) for i in range(2)])
    assert_close(corner(x, (1, 2, 2)), expected)


def release_bias_for(attention: WindowAttention3D, window: tuple[int, int, int]) -> torch.Tensor:
    """The release's bias of a clipped window, from the spec's description: the full window's (N_full, N_full)
    relative-position index, built with loops over every token pair of the full window, cut to its first N rows
    and first N columns (N = tokens of the clipped window)."""
    full = attention.window_size
    coords = [(d, h, w) for d in range(full[0]) for h in range(full[1]) for w in range(full[2])]
    span_h, span_w = 2 * full[1] - 1, 2 * full[2] - 1
    index = [
        [
            ((di - dj + full[0] - 1) * span_h + hi - hj + full[1] - 1) * span_w + wi - wj + full[2] - 1
            for dj, hj, wj in coords
        ]
        for di, hi, wi in coords
    ]
    tokens = window[0] * window[1] * window[2]
    first = torch.tensor([row[:tokens] for row in index[:tokens]])
    return attention.relative_position_bias_table[first].permute(2, 0, 1)


@pytest.mark.parametrize("window", [(1, 2, 2), (2, 2, 3), (1, 3, 3), (1, 3, 2)])
def test_clipped_window_bias_defaults_to_the_release_first_rows(window: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    attention = WindowAttention3D(dim=8, window_size=(2, 3, 3), num_heads=2).eval()
    assert attention.clipped_window_bias == "release"
    with torch.no_grad():
        attention.relative_position_bias_table.normal_()
    tokens = window[0] * window[1] * window[2]
    x = torch.randn(2, tokens, 8)
    expected = torch.stack([naive_attention(attention, x[i], release_bias_for(attention, window)) for i in range(2)])
    assert_close(attention(x, window), expected)
    if window[1:] != (3, 3):  # H or W clipped: the release's rows are not the clipped tokens' own offsets
        assert not torch.allclose(release_bias_for(attention, window), bias_for(attention, window))


def test_clipped_window_bias_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="clipped_window_bias must be one of release, corner"):
        WindowAttention3D(dim=8, window_size=(2, 3, 3), num_heads=2, clipped_window_bias="first")


def test_clipped_window_bias_reaches_every_block_and_changes_small_inputs() -> None:
    torch.manual_seed(0)
    release = tiny_model(window_size=(2, 7, 7)).eval()
    corner = tiny_model(window_size=(2, 7, 7), clipped_window_bias="corner").eval()
    modes = {block.attn.clipped_window_bias for layer in corner.layers for block in layer.blocks}
    assert modes == {"corner"}
    with torch.no_grad():
        for layer in release.layers:
            for block in layer.blocks:
                block.attn.relative_position_bias_table.normal_()
        corner.load_state_dict(release.state_dict())
        video = torch.randn(1, 3, 2, 16, 16)  # a 4x4 grid under a 7x7 window: clipped in H and W
        assert not torch.allclose(release(video), corner(video))


def naive_block(block, x: torch.Tensor, window: tuple[int, int, int], shift: tuple[int, int, int]) -> torch.Tensor:
    """Swin block by explicit loops over windows; two tokens of a window may attend to each other only if,
    along every axis, both or neither came around the end of the grid in the cyclic roll."""
    _, D, H, W, C = x.shape
    rolled = torch.roll(block.norm1(x), shifts=[-s for s in shift], dims=(1, 2, 3))
    attended = torch.empty_like(rolled)
    for b in range(x.shape[0]):
        for d0 in range(0, D, window[0]):
            for h0 in range(0, H, window[1]):
                for w0 in range(0, W, window[2]):
                    positions = [
                        (d, h, w)
                        for d in range(d0, d0 + window[0])
                        for h in range(h0, h0 + window[1])
                        for w in range(w0, w0 + window[2])
                    ]
                    tokens = torch.stack([rolled[b, d, h, w] for d, h, w in positions])
                    wrapped = torch.tensor(
                        [[p + s >= size for p, s, size in zip(pos, shift, (D, H, W), strict=True)] for pos in positions]
                    )
                    apart = (wrapped[:, None, :] != wrapped[None, :, :]).any(-1)
                    bias = bias_for(block.attn, window) + apart.float() * -100.0
                    out = naive_attention(block.attn, tokens, bias)
                    for (d, h, w), value in zip(positions, out, strict=True):
                        attended[b, d, h, w] = value
    x = x + torch.roll(attended, shifts=shift, dims=(1, 2, 3))
    return x + block.mlp(block.norm2(x))


def test_shifted_stage_matches_naive_loops():
    torch.manual_seed(0)
    stage = BasicLayer(
        dim=8,
        depth=2,
        num_heads=2,
        window_size=(2, 2, 4),
        mlp_ratio=2.0,
        qkv_bias=True,
        drop=0.0,
        attn_drop=0.0,
        drop_path=[0.0, 0.0],
        downsample=False,
    ).eval()
    with torch.no_grad():
        for block in stage.blocks:
            block.attn.relative_position_bias_table.normal_()
    assert stage.blocks[1].shift_size == (1, 1, 2)
    x = torch.randn(1, 4, 2, 8, 8)  # H equals the window: clipped there, shifted along D and W
    expected = naive_block(stage.blocks[1], naive_block(stage.blocks[0], x, (2, 2, 4), (0, 0, 0)), (2, 2, 4), (1, 0, 2))
    assert_close(stage(x), expected)


def test_patch_merging_order_and_padding():
    merging = PatchMerging(dim=2)
    seen = []
    merging.norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = torch.randn(1, 2, 5, 3, 2)
    out = merging(x)
    assert out.shape == (1, 2, 3, 2, 4)
    merged = seen[0]
    padded = torch.nn.functional.pad(x, (0, 0, 0, 1, 0, 1))
    # Channels hold the neighbours (row, col) = (0, 0), (1, 0), (0, 1), (1, 1), as in the official checkpoints.
    for index, (row, col) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        assert torch.equal(merged[..., 2 * index : 2 * index + 2], padded[:, :, row::2, col::2])


# Encoder parameters (no classification head) of the official configurations. They equal the 2D Swin encoders
# plus the 3D patch kernel and the larger (2*8-1)x13x13 bias tables; adding the 400-class Kinetics head gives the
# published 28.2M / 49.8M / 88.1M.
OFFICIAL = {
    "tiny": ({"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]}, 27_850_470, 28.2e6),
    "small": ({"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24]}, 49_509_078, 49.8e6),
    "base": ({}, 87_638_984, 88.1e6),
}


@pytest.mark.parametrize("name", OFFICIAL)
def test_parameter_counts_match_official(name):
    sizes, encoder, published = OFFICIAL[name]
    with torch.device("meta"):
        model = VideoSwinTransformer(**sizes, mask_token=False)
    count = sum(p.numel() for p in model.parameters())
    assert count == encoder
    assert abs(count + model.out_dim * 400 + 400 - published) / published < 0.005


def test_backward_reaches_every_parameter():
    model = tiny_model(drop_path_rate=0.1).train()
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    out = model(torch.randn(2, 3, 4, 64, 64), mask)
    (out * torch.randn_like(out)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_deterministic_in_eval():
    video = torch.randn(1, 3, 4, 32, 32)
    first, second = tiny_model(), tiny_model()
    assert torch.equal(first(video), second(video))
    assert torch.equal(first(video), first(video))


def test_drop_path():
    x = torch.randn(8, 3, 5)
    assert DropPath(0.5).eval()(x) is x
    model = tiny_model(drop_path_rate=0.5)
    video = torch.randn(2, 3, 2, 32, 32)
    assert torch.equal(model(video), model(video))
    model.train()
    assert not torch.equal(model(video), model(video))


def test_constructor_is_a_cli_config():
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(VideoSwinTransformer, "encoder")
    config = parser.parse_object(
        {"encoder": {"embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": [2, 4, 4]}}
    )
    model = parser.instantiate(config).encoder
    assert model.window_size == (2, 4, 4)
    assert model(torch.randn(1, 3, 2, 32, 32)).shape == (1, 1, 4, 4, 32)
