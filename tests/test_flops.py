"""The analytic FLOP counter against a hand count and against torch's own FlopCounterMode.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the matmuls, convolutions and attention kernels
that really run (2 per multiply-add, backward included), and nothing else: no norms, softmax, GELU or elementwise
work. ``clover_pl.flops`` follows the same convention, so on the same step the two agree exactly, not only within a
few percent. Attention runs under SDPA's math backend here: FlopCounterMode has no formula for the CPU's fused
flash kernel, while the math backend is two plain batched matmuls that it counts.
"""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from clover_pl.flops import (
    BackboneSizes,
    FusionEncoderSizes,
    TextEncoderSizes,
    VideoEncoderSizes,
    fusion_encoder_flops,
    pretrain_step_flops,
    task_step_flops,
    text_encoder_flops,
    video_encoder_flops,
    video_token_grid,
)
from clover_pl.losses import CloverObjective
from clover_pl.models import clover_backbone, clover_tiny
from clover_pl.tasks import PretrainTask

# The tiny step of these tests: 2 clips of 4 frames at 32 px, texts of 8 tokens, contrastive width 64.
B, T, SIZE, L, E = 2, 4, 32, 8, 64


def counted(function, *args, **kwargs) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        function(*args, **kwargs)
    return counter.get_total_flops()


def tiny_batch(batch_size: int = B) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 100, (batch_size, L))
    chosen = torch.zeros(batch_size, L, dtype=torch.bool)
    chosen[:, 2] = True
    mask = torch.zeros(batch_size, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    return {
        "video": torch.randn(batch_size, T, 3, SIZE, SIZE),
        "video_mask": mask,
        "input_ids": ids,
        "attention_mask": torch.ones(batch_size, L, dtype=torch.long),
        "masked_input_ids": ids.masked_fill(chosen, 4),
        "mlm_labels": ids.masked_fill(~chosen, -100),
    }


def test_sizes_are_read_off_a_backbone() -> None:
    tiny = BackboneSizes.from_backbone(clover_tiny())
    assert tiny.video == VideoEncoderSizes(
        patch_size=(2, 4, 4), in_channels=3, embed_dim=32, depths=(1, 1), window_size=(2, 4, 4), mlp_ratio=4.0
    )
    assert tiny.text == TextEncoderSizes(hidden_size=32, num_layers=2, intermediate_size=64, vocab_size=128)
    assert tiny.fusion == FusionEncoderSizes(video_dim=64, hidden_size=32, num_layers=1, intermediate_size=64)
    with torch.device("meta"):
        base = clover_backbone("base")
    assert BackboneSizes.from_backbone(base) == BackboneSizes()  # the defaults are Clover's base


def test_tiny_step_equals_the_hand_count() -> None:
    # Video, per clip. Patch grid (4/2, 32/4, 32/4) = (2, 8, 8): 128 tokens.
    patch_embed = 2 * 128 * (3 * 2 * 4 * 4) * 32  # Conv3d as a matmul: 128 patches x 96 inputs x 32 channels
    # Stage 1, width 32: window (2, 4, 4) = 32 tokens, 4 windows, no padding; MLP width 128.
    stage1 = (
        2 * 128 * 32 * 96  # qkv
        + 2 * 128 * 32 * 32  # Q K^T: each of 128 queries against the 32 keys of its window, 32 channels
        + 2 * 128 * 32 * 32  # A V
        + 2 * 128 * 32 * 32  # proj
        + 2 * (2 * 128 * 32 * 128)  # fc1 + fc2
    )
    merge = 2 * 32 * 128 * 64  # grid (2, 4, 4): 32 tokens, 4 x 32 -> 64
    # Stage 2, width 64: the grid is one window of 32 tokens; MLP width 256.
    stage2 = 2 * 32 * 64 * 192 + 2 * 32 * 32 * 64 + 2 * 32 * 32 * 64 + 2 * 32 * 64 * 64 + 2 * (2 * 32 * 64 * 256)
    video = patch_embed + stage1 + merge + stage2
    assert video == 8_388_608
    # Text, per text: 2 BERT layers of width 32 (MLP 64) over 8 tokens; embeddings are lookups.
    bert_layer = 2 * 8 * 32 * 96 + 2 * 8 * 8 * 32 + 2 * 8 * 8 * 32 + 2 * 8 * 32 * 32 + 2 * (2 * 8 * 32 * 64)
    text = 2 * bert_layer
    # Fusion, per pair: 2 x 4 x 4 = 32 video tokens projected 64 -> 32, then 1 layer over 32 + 8 = 40 tokens.
    fusion = 2 * 32 * 64 * 32 + (2 * 40 * 32 * 96 + 2 * 40 * 40 * 32 * 2 + 2 * 40 * 32 * 32 + 2 * (2 * 40 * 32 * 64))
    # Heads, per batch of 2: video 64 -> 128 -> 64, text 32 -> 32 -> 64 (complete and masked); fused V-head
    # 32 -> 128 -> 64 and T-head 32 -> 32 -> 64.
    project_video = 2 * B * 64 * 128 + 2 * B * 128 * 64
    project_text = 2 * B * 32 * 32 + 2 * B * 32 * 64
    heads = 2 * (project_video + project_text) + (2 * B * 32 * 128 + 2 * B * 128 * 64) + project_text
    mlm = 2 * (B * L) * 32 * 32 + 2 * (B * L) * 32 * 128  # dense + decoder over the 128-token vocabulary
    loss = 2 * 3 * (2 * B * B * E)  # 2 anchors x 3 kinds of (B x E) @ (E x B) similarities
    forward = B * (2 * video + 2 * text + 2 * fusion) + heads + mlm + loss
    backward = 2 * forward - 2 * B * patch_embed  # the pixels need no gradient: the patch embed's backward is 1x

    flops = pretrain_step_flops(BackboneSizes.from_backbone(clover_tiny()), B, T, SIZE, SIZE, L, embed_dim=E)
    assert flops.forward_total == forward == 39_017_472
    assert flops.total == forward + backward == 113_906_688


def test_video_encoder_equals_flop_counter_mode_with_padding() -> None:
    encoder = clover_tiny().video.eval()
    sizes = BackboneSizes.from_backbone(clover_tiny()).video
    # 3 frames at 36 x 44 px: patch grid (2, 9, 11) padded to windows (2, 12, 12), merged to (2, 5, 6) and padded
    # to (2, 8, 8); the conv pads too.
    for frames, height, width in [(T, SIZE, SIZE), (3, 36, 44), (1, 32, 32)]:
        video = torch.randn(2, 3, frames, height, width)
        with torch.no_grad():
            assert counted(encoder, video) == 2 * video_encoder_flops(sizes, frames, height, width)


def test_text_and_fusion_encoders_equal_flop_counter_mode() -> None:
    backbone = clover_tiny().eval()
    sizes = BackboneSizes.from_backbone(backbone)
    ids = torch.randint(5, 100, (B, L))
    mask = torch.ones(B, L, dtype=torch.long)
    tokens = torch.randn(B, 2, 4, 4, 64)
    states = torch.randn(B, L, 32)
    with torch.no_grad():
        assert counted(backbone.encode_text, ids, mask) == B * text_encoder_flops(sizes.text, L)
        assert counted(backbone.fuse, tokens, states, mask) == B * fusion_encoder_flops(sizes.fusion, 32, L)


SWITCHES = {
    "no_masked": {"use_masked": False},
    "no_fused": {"use_fused": False},
    "no_mlm": {"use_mlm": False},
    "pair_wise_baseline": {"use_tma": False},
    "baseline_without_mlm": {"use_tma": False, "use_mlm": False},
}


@pytest.mark.parametrize(
    "switches",
    [pytest.param({}, id="full")]
    + [pytest.param(value, id=name, marks=pytest.mark.slow) for name, value in SWITCHES.items()],
)
@pytest.mark.slow
def test_training_step_equals_flop_counter_mode(switches: dict[str, bool]) -> None:
    """Forward and backward of the real objective, one pass per switch setting."""
    ranking = switches.get("use_masked", True) and switches.get("use_tma", True)
    task = PretrainTask(clover_tiny(), CloverObjective(use_ranking=ranking, **switches), embed_dim=E).train()
    batch = tiny_batch()
    expected = task_step_flops(task, batch)

    def step() -> None:
        task.compute_losses(batch)["loss"].backward()

    with torch.no_grad():
        assert counted(task.compute_losses, batch) == expected.forward_total
    assert counted(step) == expected.total


def test_base_encoders_equal_flop_counter_mode_on_meta() -> None:
    """Clover-base at 8 frames of 224 px, counted without computing anything (meta tensors)."""
    with torch.device("meta"):
        backbone = clover_backbone("base").eval()
        video = torch.empty(2, 3, 8, 224, 224)
        ids = torch.zeros(2, 30, dtype=torch.long)
        tokens = torch.empty(2, 4, 7, 7, 1024)
        states = torch.empty(2, 30, 768)
        mask = torch.ones(2, 30, dtype=torch.long)
    sizes = BackboneSizes.from_backbone(backbone)
    assert video_token_grid(sizes.video, 8, 224, 224) == (4, 7, 7)
    with torch.no_grad():
        assert counted(backbone.video, video) == 2 * video_encoder_flops(sizes.video, 8, 224, 224)
        # No attention mask: transformers would read the mask's values to decide whether it can drop it.
        assert counted(lambda: backbone.text.bert(input_ids=ids)) == 2 * text_encoder_flops(sizes.text, 30)
        assert counted(backbone.fuse, tokens, states, mask) == 2 * fusion_encoder_flops(sizes.fusion, 196, 30)


def test_base_figures() -> None:
    """The per-clip figures quoted in docs/scale.md."""
    sizes = BackboneSizes()
    assert video_encoder_flops(sizes.video, 8, 224, 224) == 130_910_388_224
    assert text_encoder_flops(sizes.text, 30) == 5_129_256_960
    assert fusion_encoder_flops(sizes.fusion, 196, 30) == 10_376_613_888
    step = pretrain_step_flops(sizes, 32, 8, 224, 224, 30, world_size=32)
    assert step.total / 32 == pytest.approx(883.2e9, rel=1e-3)
    image_step = pretrain_step_flops(sizes, 32, 1, 224, 224, 30, world_size=32)  # CC3M: one frame, T' = 1
    assert image_step.total / 32 == pytest.approx(242.2e9, rel=1e-3)


def test_world_size_only_changes_the_loss() -> None:
    sizes = BackboneSizes()
    one = pretrain_step_flops(sizes, 32, 8, 224, 224, 30)
    many = pretrain_step_flops(sizes, 32, 8, 224, 224, 30, world_size=32)
    assert {k: v for k, v in one.forward.items() if k != "loss"} == {
        k: v for k, v in many.forward.items() if k != "loss"
    }
    assert many.forward["loss"] == 32**2 * one.forward["loss"]
    assert pretrain_step_flops(sizes, 32, 8, 224, 224, 30, training=False).total == one.forward_total
