"""Encoder settings of preparation-time re-encoding, and the named presets of ``clover-pl prepare webvid --preset``.

A WebVid clip as served (about 640x360 H.264 at 1 Mbit/s, x264's keyframe interval of up to 250 frames) costs a data
worker hundreds of frames of decoding to pull 8 TSN frames out of it: the decoder cannot start between keyframes.
The ``train`` preset re-encodes once, at preparation, so that training decodes a few frames around each sampled one
and no scaling is needed: the short side is the published pipeline's resize (256), keyframes come every few frames,
and x264's ``fastdecode`` tune drops CABAC, the deblocking filter and weighted prediction (cheaper decoding per frame).
The frame rate and the frame count are kept, so TSN sampling draws the same frame indices for the same seed as on the
original file. Chosen by measurement on WebVid-like clips (``bench/preset_grid.py``, table in ``bench/RESULTS.md``):
``train`` is the most clips/s per core within 2x the original bytes at x264's default quality (crf 23);
``train_fast`` the most clips/s per core within 2x the bytes at any quality (3.4 dB PSNR lower, 1.26x faster).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeSettings:
    """libx264 settings of a re-encode.

    Attributes:
        name: The preset's name (recorded in the manifest), or None for hand-given settings.
        crf: Constant rate factor (quality; lower is better and bigger); ignored when ``bitrate`` is set.
        bitrate: Average bits per second instead of a constant quality, or None.
        keyframe_interval: Frames between keyframes (x264's keyint; scene-cut keyframes may come earlier); None: one
            a second.
        x264_preset: x264's speed preset (encode time against size).
        tune: x264's tune (``fastdecode``: no CABAC, no deblocking, no weighted prediction), or None.
    """

    name: str | None = None
    crf: float = 23.0
    bitrate: int | None = None
    keyframe_interval: int | None = None
    x264_preset: str = "veryfast"
    tune: str | None = None

    def options(self) -> dict[str, str]:
        """The libx264 private options (``crf``, ``preset``, ``tune``) for PyAV's ``add_stream(options=...)``."""
        options = {"preset": self.x264_preset}
        if self.bitrate is None:
            options["crf"] = f"{self.crf:g}"
        if self.tune:
            options["tune"] = self.tune
        return options


DEFAULT_ENCODE = EncodeSettings()
"""The settings of ``--fps/--short-side/--max-duration`` without a preset: crf 23, veryfast, a keyframe a second."""


@dataclass(frozen=True)
class Preset:
    """A named re-encode: the short side to scale down to (None keeps it) and the encoder settings."""

    short_side: int | None
    encode: EncodeSettings


PRESETS: dict[str, Preset] = {
    # The most clips/s per core within 2x the original bytes among points at x264's default quality (crf 23):
    # 34 clips/s per core against 4 for the clips as served, 1.28x the bytes, fastdecode costing no PSNR.
    "train": Preset(
        short_side=256,
        encode=EncodeSettings(name="train", crf=23.0, keyframe_interval=8, x264_preset="veryfast", tune="fastdecode"),
    ),
    # The most clips/s per core within 2x the bytes, whatever the quality: 43 clips/s per core at 1.16x the bytes,
    # 3.4 dB PSNR below "train" (a second lossy generation at 1 Mbit/s).
    "train_fast": Preset(
        short_side=256,
        encode=EncodeSettings(
            name="train_fast", bitrate=1_000_000, keyframe_interval=4, x264_preset="veryfast", tune="fastdecode"
        ),
    ),
}
"""Every ``--preset``; chosen from the grid in ``bench/RESULTS.md`` (``bench/preset_grid.py``)."""
