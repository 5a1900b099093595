"""Drawing and encoding of synthetic scenes: anti-aliased two-tone sprites on a textured ground, H.264 and JPEG."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from clover_pl.prepare.synthetic.scene import GROUNDS, MATERIALS, OBJECTS, RADIUS, Scene, motion

SHADE = 0.7
"""Brightness of a sprite's lower half (in its own frame), so that turning is visible."""


def render(scene: Scene, size: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a scene.

    Args:
        scene: what to draw.
        size: frame height and width in pixels.
        frames: number of frames T (1 for an image); frame t is at fraction ``t / (T - 1)`` of each action.
        rng: random stream for the ground texture.

    Returns:
        ``(T, size, size, 3)`` uint8 RGB frames.
    """
    rows = np.linspace(-1.0, 1.0, size)[:, None, None] * rng.uniform(-12.0, 12.0)
    texture = rng.integers(-6, 7, size=(size, size, 3))
    ground = np.asarray(GROUNDS[scene.ground], dtype=np.float32) + rows + texture
    video = np.repeat(np.clip(ground, 0, 255).astype(np.float32)[None], frames, axis=0)
    radius = RADIUS * size
    for track in scene.tracks:
        entity = scene.entities[track.entity]
        color = np.asarray(MATERIALS[entity.material], dtype=np.float32)
        # The lower half is darker, or lighter for dark materials (rubber), so that turning shows on every material.
        lower = color * SHADE if color.mean() > 60 else color + 80.0
        for t in range(frames):
            fraction = t / (frames - 1) if frames > 1 else 0.0
            dx, dy, angle = motion(entity, size, fraction)
            alpha, shade = sprite(OBJECTS[entity.object], radius, round(math.degrees(angle)) % 360)
            half = alpha.shape[0] // 2
            x, y = round(track.start[0] + dx), round(track.start[1] + dy)
            patch = video[t, y - half : y + half + 1, x - half : x + half + 1]
            tone = np.where(shade[..., None] < 1.0, lower, color)
            patch += alpha[..., None] * (tone - patch)
    return np.rint(np.clip(video, 0, 255)).astype(np.uint8)


@lru_cache(maxsize=4096)
def sprite(shape: str, radius: float, degrees: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and shading of a shape of circumradius ``radius`` turned by ``degrees`` (clockwise), 4x4 supersampled.

    Returns:
        ``(alpha, shade)``, both ``(2R+1, 2R+1)`` float32: coverage in [0, 1], and brightness 1 (upper half in the
        shape's own frame) or :data:`SHADE` (lower half).
    """
    half = int(math.ceil(radius)) + 1
    offsets = (np.arange(4) + 0.5) / 4 - 0.5
    grid = np.arange(-half, half + 1)
    y = (grid[:, None, None, None] + offsets[None, None, :, None]) / radius
    x = (grid[None, :, None, None] + offsets[None, None, None, :]) / radius
    y, x = np.broadcast_arrays(y, x)
    theta = math.radians(degrees)  # rotate the sample points back into the shape's frame
    x, y = x * math.cos(theta) + y * math.sin(theta), -x * math.sin(theta) + y * math.cos(theta)
    if shape == "circle":
        inside = x**2 + y**2 <= 1.0
    elif shape == "ring":
        inside = (x**2 + y**2 <= 1.0) & (x**2 + y**2 >= 0.3)
    elif shape == "square":
        inside = np.maximum(np.abs(x), np.abs(y)) <= 0.8
    elif shape == "triangle":  # pointing up, centroid at the centre
        inside = (y <= 0.5) & (y >= -1.0 + np.sqrt(3.0) * np.abs(x))
    else:  # a five-pointed star, inner radius 0.45
        sector = np.pi / 5
        angle = np.abs((np.arctan2(x, -y) + sector) % (2 * sector) - sector)
        rho = np.hypot(x, y)
        tip, notch = np.array([0.0, 1.0]), 0.45 * np.array([np.sin(sector), np.cos(sector)])
        edge = notch - tip
        px, py = rho * np.sin(angle) - tip[0], rho * np.cos(angle) - tip[1]
        inside = (edge[0] * py - edge[1] * px) * (edge[0] * -tip[1] - edge[1] * -tip[0]) >= 0
    alpha = inside.mean(axis=(2, 3)).astype(np.float32)
    lower = (inside & (y > 0)).mean(axis=(2, 3))
    shade = np.where(lower > 0.5 * np.maximum(alpha, 1e-6), SHADE, 1.0).astype(np.float32)
    return alpha, shade


def encode_mp4(video: np.ndarray, fps: int, gop: int = 8) -> bytes:
    """Encode frames as H.264 (yuv420p, single-threaded so the bytes are reproducible) in an mp4.

    Args:
        video: ``(T, H, W, 3)`` uint8 RGB with even H and W.
        fps: frame rate.
        gop: keyframe interval; short so that seeking pays off.

    Returns:
        The mp4 file's bytes.
    """
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 1
        for index, array in enumerate(video):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def encode_jpg(image: np.ndarray) -> bytes:
    """Encode one RGB frame ``(H, W, 3)`` uint8 as a baseline JPEG (FFmpeg's mjpeg encoder, yuvj420p)."""
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height, context.pix_fmt = image.shape[1], image.shape[0], "yuvj420p"
    context.time_base = Fraction(1, 1)
    context.thread_count = 1
    context.options = {"qmin": "2", "qmax": "3"}
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    frame.pts = 0
    return b"".join(bytes(packet) for packet in [*context.encode(frame), *context.encode(None)])
