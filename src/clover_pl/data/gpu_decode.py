"""Video decoding on the GPU (NVDEC through torchcodec) behind one switch, with the CPU decoder as the fallback.

``PretrainDataModule(video_decoder="torchcodec_cuda")`` decodes the sampled frames of each clip on the GPU and hands
the data worker the same thing `clover_pl.data.video.decode_video` does: a (T, C, H, W) uint8 RGB clip on the CPU,
its short side scaled on the GPU, so the crop, the masks and the uint8 batch contract stay as they are. The frame
indices come from `sample_frame_indices` over `count_frames` with the same generator, so the same frames are sampled
as by the CPU path. Where no CUDA device is visible or torchcodec does not import, the switch says so in one line
and the CPU path (PyAV) decodes.

Engine choice: torchcodec installs from PyPI beside the project's torch without replacing it (``pip install
--dry-run torchcodec`` pulls torchcodec alone); NVIDIA DALI pulls about ten CUDA packages. It is an optional extra
(``pip install clover-pl[gpu-decode]``), imported only when the switch asks for it.

Known limits: the display rotation of phone videos is not applied on this path; CUDA cannot start in forked
DataLoader workers, so the datamodule starts its workers with ``spawn`` when this decoder is on (each worker holds a
CUDA context, a few hundred MiB of GPU memory).
"""

from __future__ import annotations

import importlib
import logging
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from clover_pl.data.decode_error import DecodeError
from clover_pl.data.frame_sampling import SamplingMode, check_sampling, sample_frame_indices
from clover_pl.data.video import count_frames, scaled_size

VideoDecoder = Literal["cpu", "torchcodec_cuda"]
"""Which engine decodes training videos: PyAV on the CPU, or NVDEC through torchcodec."""

VIDEO_DECODERS: tuple[VideoDecoder, ...] = get_args(VideoDecoder)
"""Valid ``video_decoder`` values."""

log = logging.getLogger(__name__)


def gpu_decoder_unavailable() -> str | None:
    """Why the GPU decoder cannot run here, or None when it can.

    Checks, in order: a visible CUDA device, torchcodec importing, and a two-frame H.264 clip decoding on the GPU
    (torchcodec's PyPI wheel is a CPU build; its CUDA build also needs an FFmpeg with NVDEC).
    """
    if not torch.cuda.is_available():
        return "no CUDA device is visible"
    try:
        decoders = importlib.import_module("torchcodec.decoders")
    except Exception as error:  # ImportError, or a CUDA/FFmpeg library that does not load
        return f"torchcodec does not import ({_first_line(error)})"
    try:
        frames = decoders.VideoDecoder(_probe_clip(), device="cuda").get_frames_at([0, 1]).data
    except Exception as error:  # a CPU-only build, no NVDEC in FFmpeg, a driver problem
        return f"torchcodec cannot decode on the GPU ({_first_line(error)})"
    if frames.device.type != "cuda":
        return "torchcodec decoded on the CPU, not the GPU"
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120] if text else ''}"


def _probe_clip() -> bytes:
    """Two 64x64 H.264 frames in an mp4, encoded here (PyAV's libx264)."""
    import io

    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for value in (40, 200):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), value, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def resolve_video_decoder(name: VideoDecoder) -> VideoDecoder:
    """The decoder that will actually run for the switch value ``name``; says in one line when it falls back.

    Raises:
        ValueError: For a name not in `VIDEO_DECODERS`.
    """
    if name not in VIDEO_DECODERS:
        raise ValueError(f"unknown video_decoder {name!r}; valid decoders: {', '.join(VIDEO_DECODERS)}")
    if name == "cpu":
        return "cpu"
    reason = gpu_decoder_unavailable()
    if reason is not None:
        log.warning("video_decoder=%s: %s; decoding on the CPU (PyAV) instead", name, reason)
        return "cpu"
    return name


def decode_video_cuda(
    data: bytes,
    num_samples: int,
    mode: SamplingMode = "random",
    short_side: int | None = None,
    generator: torch.Generator | None = None,
    threads: int = 1,
    *,
    device: str = "cuda",
) -> torch.Tensor:
    """Decodes the sampled frames on the GPU; the interface of `decode_video` (without windows).

    Args:
        data: The encoded file, in memory.
        num_samples: Frames to return (T).
        mode: "random" (training) or "middle" (testing).
        short_side: Resize on the GPU so that the short side has this length; None keeps the coded size.
        generator: Source of randomness for "random" sampling (the same draws as `decode_video`).
        threads: Unused (the CPU decoder's threads); kept for the common interface.
        device: The CUDA device.

    Returns:
        (T, C, H, W) uint8 RGB on the CPU, frames in temporal order.

    Raises:
        DecodeError: For a video that cannot be decoded.
    """
    check_sampling(num_samples, mode)
    indices = sample_frame_indices(count_frames(data), num_samples, mode, generator)
    from torchcodec.decoders import VideoDecoder  # optional dependency: imported only on this path

    try:
        decoder = VideoDecoder(data, device=device, seek_mode="exact")
        frames = decoder.get_frames_at(indices).data  # (T, C, H, W) uint8 on the GPU
    except Exception as error:  # torchcodec raises RuntimeError/ValueError for damaged input
        raise DecodeError("corrupt", f"{type(error).__name__}: {error}") from error
    height, width = frames.shape[-2:]
    new_width, new_height = scaled_size(width, height, short_side)
    if (new_height, new_width) != (height, width):
        frames = F.interpolate(
            frames.float(), size=(new_height, new_width), mode="bilinear", antialias=True, align_corners=False
        )
        frames = frames.round_().clamp_(0, 255).to(torch.uint8)
    return frames.cpu()
