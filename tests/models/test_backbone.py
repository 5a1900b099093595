import pytest
import torch

from clover_pl.models import PRESETS, CloverBackbone, FusionEncoder, TextEncoder, VideoSwinTransformer, clover_backbone
from clover_pl.models.builders import SWIN_SIZES


def tiny_inputs(batch: int = 2, frames: int = 4, length: int = 7):
    video = torch.randn(batch, frames, 3, 32, 32)
    ids = torch.randint(5, 80, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0
    return video, ids, mask


def test_encode_and_fuse_shapes(tiny_backbone: CloverBackbone) -> None:
    video, ids, mask = tiny_inputs()
    tokens = tiny_backbone.encode_video(video)
    assert tokens.shape == (2, 2, 4, 4, 64)  # T' = 4 / 2, H' = W' = 32 / 4 / 2
    states = tiny_backbone.encode_text(ids, mask)
    assert states.shape == (2, 7, 32)
    fused = tiny_backbone.fuse(tokens, states, mask)
    assert fused.video.shape == (2, 32, 32)
    assert fused.text.shape == (2, 7, 32)
    assert fused.cls.shape == (2, 32)


def test_an_image_is_a_one_frame_clip(tiny_backbone: CloverBackbone) -> None:
    tokens = tiny_backbone.encode_video(torch.randn(3, 1, 3, 32, 32))
    assert tokens.shape == (3, 1, 4, 4, 64)  # padded in time to 2 frames: T' = 1, 16 tokens
    fused = tiny_backbone.fuse(tokens, torch.randn(3, 5, 32), torch.ones(3, 5))
    assert fused.video.shape == (3, 16, 32)


def test_masked_video_changes_the_tokens(tiny_backbone: CloverBackbone) -> None:
    video, _, _ = tiny_inputs()
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, :2, :2] = True
    assert not torch.allclose(tiny_backbone.encode_video(video, mask), tiny_backbone.encode_video(video))


@pytest.mark.slow
def test_backward_reaches_every_parameter() -> None:
    backbone = clover_backbone("tiny").train()
    video, ids, mask = tiny_inputs()
    cells = torch.zeros(2, 4, 4, dtype=torch.bool)
    cells[:, 1:3, 1:3] = True
    masked_tokens = backbone.encode_video(video, cells)
    tokens = backbone.encode_video(video)
    fused = backbone.fuse(masked_tokens, backbone.encode_text(ids, mask), mask)
    (tokens.square().mean() + fused.cls.square().mean() + fused.video.mean()).backward()
    without_grad = [name for name, p in backbone.named_parameters() if p.grad is None]
    # BERT's token-type table only ever sees type 0, whose row is trained; the table itself still gets a gradient.
    assert without_grad == []


def test_freeze_parts() -> None:
    backbone = clover_backbone("tiny")
    backbone.freeze(["video", "fusion"])
    assert not any(p.requires_grad for p in backbone.video.parameters())
    assert not any(p.requires_grad for p in backbone.fusion.parameters())
    assert all(p.requires_grad for p in backbone.text.parameters())
    with pytest.raises(ValueError, match="valid parts: video, text, fusion"):
        backbone.freeze(["vision"])


def test_widths_are_checked() -> None:
    video = VideoSwinTransformer(embed_dim=8, depths=[1], num_heads=[1], window_size=(2, 4, 4))
    text = TextEncoder(vocab_size=20, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16)
    with pytest.raises(ValueError, match="video_dim=12"):
        CloverBackbone(video, text, FusionEncoder(video_dim=12, hidden_size=16, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="hidden_size=24"):
        CloverBackbone(video, text, FusionEncoder(video_dim=8, hidden_size=24, num_layers=1, num_heads=2))


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid presets: tiny, swin_tiny, swin_small, base"):
        clover_backbone("huge")


def test_tiny_preset_golden_values() -> None:
    # Guards against unintended changes of the architecture or its initialisation (fixed seed, pinned torch).
    torch.manual_seed(0)
    backbone = clover_backbone("tiny").eval()
    video, ids, mask = tiny_inputs()
    with torch.no_grad():
        tokens = backbone.encode_video(video)
        fused = backbone.fuse(tokens, backbone.encode_text(ids, mask), mask)
    torch.testing.assert_close(tokens.abs().mean(), torch.tensor(GOLDEN_VIDEO), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.cls.abs().mean(), torch.tensor(GOLDEN_FUSED), rtol=1e-4, atol=1e-5)


GOLDEN_VIDEO = 0.8015449643135071
GOLDEN_FUSED = 0.8329630494117737


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def kinetics_head(backbone: CloverBackbone) -> int:
    return backbone.video.out_dim * 400 + 400


def test_base_parameter_counts() -> None:
    with torch.device("meta"):
        backbone = clover_backbone("base")
    # Video Swin-B: 88 M in the Video Swin paper, a figure that includes the Kinetics-400 classification head.
    assert abs(count(backbone.video) + kinetics_head(backbone) - 88.0e6) / 88.0e6 < 0.01
    # BERT-base-uncased has 109,482,240 parameters with its pooler; Clover never uses the pooler, which we leave
    # out (768 * 768 + 768 = 590,592 parameters).
    assert count(backbone.text) == 109_482_240 - 590_592
    # Fusion: three BERT-base layers (7,087,872 each) + Linear(1024 -> 768) + positions, modality and norm.
    layer = 4 * (768 * 768 + 768) + 2 * 768 + (768 * 3072 + 3072) + (3072 * 768 + 768) + 2 * 768
    assert layer == 7_087_872
    extra = (1024 * 768 + 768) + 49 * 768 + 16 * 768 + 2 * 768 + 2 * 768
    assert count(backbone.fusion) == 3 * layer + extra


@pytest.mark.parametrize("preset", ["swin_tiny", "swin_small"])
def test_video_swin_presets_have_the_official_sizes(preset: str) -> None:
    with torch.device("meta"):
        backbone = clover_backbone(preset)
    expected = {"swin_tiny": 28.2e6, "swin_small": 49.8e6}[preset]  # the Video Swin paper's figures, head included
    assert abs(count(backbone.video) + kinetics_head(backbone) - expected) / expected < 0.01
    assert backbone.fusion.video_dim == 768 == backbone.video.out_dim
    assert SWIN_SIZES[preset]["embed_dim"] == 96
    assert set(PRESETS) == {"tiny", "swin_tiny", "swin_small", "base"}
