"""The lean sample path: uint8 clips through the workers, normalisation batched on the device, same sampling."""

import io
import logging
import sys
import types
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clover_pl.data import PretrainDataModule
from clover_pl.data.gpu_decode import VIDEO_DECODERS, resolve_video_decoder
from clover_pl.data.transforms import ClipTransform, normalize, normalize_video
from clover_pl.data.video import count_frames, decode_video, sample_frame_indices
from clover_pl.prepare.presets import PRESETS
from clover_pl.prepare.synthetic import encode_mp4
from clover_pl.prepare.webvid import Reencode, reencode_video
from clover_pl.tasks import PretrainTask, RetrievalTask, VideoQATask

LEVEL = 1.01 / 255 / min((0.229, 0.224, 0.225))  # one uint8 level, normalised


def clip(seed: int = 0, frames: int = 4, height: int = 40, width: int = 56) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize(
    ("settings", "levels"),
    [
        ({"train": True}, 1),
        ({"train": True, "short_side": 32, "flip": 1.0}, 2),  # two resizes, each rounded
        ({"train": False}, 2),
        ({"train": True, "whole_frame": True}, 1),
    ],
)
def test_uint8_transform_is_the_float_transform_rounded(settings: dict, levels: int) -> None:
    video = clip()
    reference = ClipTransform(24, **settings)(video, generator=torch.Generator().manual_seed(5))
    lean = ClipTransform(24, normalize=False, **settings)(video, generator=torch.Generator().manual_seed(5))
    assert lean.dtype == torch.uint8
    assert lean.shape == (4, 3, 24, 24)
    assert lean.is_contiguous()
    # Same crop box (same random draws), pixels within a level per resize of the float32 path.
    assert (normalize(lean) - reference).abs().max() <= levels * LEVEL


def test_normalize_video_matches_per_clip_normalize_and_passes_floats() -> None:
    batch = torch.stack([clip(seed) for seed in range(3)])  # (B, T, C, H, W)
    expected = torch.stack([normalize(video) for video in batch])
    assert torch.allclose(normalize_video(batch), expected, atol=1e-5)
    # Multiple-choice batches carry more leading dimensions.
    assert torch.allclose(normalize_video(batch[None]), expected[None], atol=1e-5)
    already = expected.clone()
    assert normalize_video(already) is already


@pytest.mark.parametrize("task", [PretrainTask, RetrievalTask, VideoQATask])
def test_every_task_normalises_uint8_batches_after_the_transfer(task: type) -> None:
    video = torch.stack([clip(seed) for seed in range(2)])
    batch = task.on_after_batch_transfer(None, {"video": video, "input_ids": torch.ones(2, 3)}, 0)
    assert batch["video"].dtype == torch.float32
    assert torch.allclose(batch["video"], torch.stack([normalize(v) for v in video]), atol=1e-5)
    assert batch["input_ids"].dtype == torch.float32  # other keys untouched


def datamodule(root: Path, **overrides) -> PretrainDataModule:
    settings = {
        "tokenizer": str(root / "vocab.txt"),
        "video_shards": str(root / "webvid" / "{00000..00001}.tar"),
        "batch_size": 4,
        "num_frames": 4,
        "image_size": 24,
        "max_text_length": 16,
        "video_mask_grid": (4, 4),
        "video_mask_cells": 5,
        "num_workers": 0,
        "shuffle_buffer": 4,
    }
    module = PretrainDataModule(**{**settings, **overrides})
    module.setup("fit")
    return module


def batches(module: PretrainDataModule) -> list[dict]:
    return [batch for loader in module.epoch_loaders(0) for batch in loader]


def test_lean_datamodule_delivers_the_same_samples_in_uint8(synthetic_data: Path) -> None:
    today = batches(datamodule(synthetic_data, normalize_on_device=False))
    lean = batches(datamodule(synthetic_data))  # the default
    assert len(today) == len(lean) == 2
    for old, new in zip(today, lean, strict=True):
        assert old["video"].dtype == torch.float32
        assert new["video"].dtype == torch.uint8
        assert (normalize_video(new["video"]) - old["video"]).abs().max() <= LEVEL
        for key in ("id", "video_mask", "input_ids", "masked_input_ids", "mlm_labels", "attention_mask"):
            assert torch.equal(old[key], new[key]), key


def numbered_clip(frames: int = 60, fps: int = 25) -> bytes:
    """Frame i shows i in binary as 6 bars of 16 px (white = 1) over moving texture; x264's default GOP (250)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 120, (64, 160, 3), dtype=np.uint8)
    video = np.stack([np.roll(texture, 3 * index, axis=1)[:, :96].copy() for index in range(frames)])
    for index in range(frames):
        for bit in range(6):
            video[index, :32, 16 * bit : 16 * bit + 16] = 255 if index >> bit & 1 else 0
    return encode_mp4(video, fps, gop=250)


def frame_numbers(decoded: torch.Tensor) -> list[int]:
    bars = decoded[:, :, 4:28].float().mean(dim=(1, 2))  # (T, W): the bar rows
    return [
        sum(1 << bit for bit in range(6) if bars[t, 16 * bit + 4 : 16 * bit + 12].mean() > 128)
        for t in range(len(bars))
    ]


def test_preset_keeps_the_published_sampling() -> None:
    source = numbered_clip()
    preset = PRESETS["train"]
    encoded, _ = reencode_video(source, Reencode(short_side=preset.short_side, encode=preset.encode))
    assert count_frames(encoded) == count_frames(source) == 60
    for seed in range(4):
        original = decode_video(source, 8, "random", generator=torch.Generator().manual_seed(seed))
        again = decode_video(encoded, 8, "random", generator=torch.Generator().manual_seed(seed))
        shown = frame_numbers(original)
        # The frames shown are the TSN indices drawn from the seed, on both files.
        assert shown == sample_frame_indices(60, 8, "random", torch.Generator().manual_seed(seed))
        assert frame_numbers(again) == shown
        # Pixels within codec tolerance (crf 23 twice over noisy texture).
        assert (original.float() - again.float()).abs().mean() < 6


def test_gpu_decoder_switch_falls_back_to_the_cpu_in_one_line(synthetic_data: Path, caplog) -> None:
    assert not torch.cuda.is_available()  # this machine: the fallback is what runs
    with caplog.at_level(logging.WARNING, logger="clover_pl.data.gpu_decode"):
        assert resolve_video_decoder("torchcodec_cuda") == "cpu"
    (message,) = [record.getMessage() for record in caplog.records]
    assert message == "video_decoder=torchcodec_cuda: no CUDA device is visible; decoding on the CPU (PyAV) instead"
    module = datamodule(synthetic_data, video_decoder="torchcodec_cuda")
    assert module.video_engine == "cpu"
    fallback, cpu = batches(module), batches(datamodule(synthetic_data))
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(fallback, cpu, strict=True))


def test_gpu_decoder_without_torchcodec_names_it(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import fails as when not installed
    with caplog.at_level(logging.WARNING, logger="clover_pl.data.gpu_decode"):
        assert resolve_video_decoder("torchcodec_cuda") == "cpu"
    assert "torchcodec does not import" in caplog.records[0].getMessage()


def test_unknown_video_decoder_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown video_decoder 'nvdec'; valid decoders: cpu, torchcodec_cuda"):
        resolve_video_decoder("nvdec")
    assert VIDEO_DECODERS == ("cpu", "torchcodec_cuda")


@pytest.mark.gpu
def test_gpu_decoder_samples_the_same_frames_as_the_cpu() -> None:
    pytest.importorskip("torchcodec")
    from clover_pl.data.gpu_decode import decode_video_cuda

    source = numbered_clip()
    for seed in range(3):
        cpu = decode_video(source, 8, "random", generator=torch.Generator().manual_seed(seed))
        gpu = decode_video_cuda(source, 8, "random", generator=torch.Generator().manual_seed(seed))
        assert gpu.shape == cpu.shape
        assert gpu.dtype == torch.uint8
        assert frame_numbers(gpu) == frame_numbers(cpu)
        assert (gpu.float() - cpu.float()).abs().mean() < 3


def test_count_frames_reads_the_sample_table() -> None:
    with av.open(io.BytesIO(numbered_clip(frames=30))) as container:
        assert container.streams.video[0].frames == 30
    assert count_frames(numbered_clip(frames=30)) == 30


def test_gpu_decoder_that_cannot_decode_on_the_gpu_falls_back(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    class CpuOnlyDecoder:  # torchcodec's PyPI wheel: imports, refuses device="cuda"
        def __init__(self, data: bytes, device: str = "cpu") -> None:
            raise RuntimeError("Unsupported device: cuda")

    module = types.ModuleType("torchcodec.decoders")
    module.VideoDecoder = CpuOnlyDecoder
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "torchcodec", types.ModuleType("torchcodec"))
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", module)
    with caplog.at_level(logging.WARNING, logger="clover_pl.data.gpu_decode"):
        assert resolve_video_decoder("torchcodec_cuda") == "cpu"
    assert "torchcodec cannot decode on the GPU (RuntimeError: Unsupported device: cuda)" in caplog.text
