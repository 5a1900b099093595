"""``clover-pl prepare synthetic``: the embedded default dataset, rendered with real codecs.

Each sample is a scene: a textured background of a named colour and one or two *entities*. An entity is a group of
1-3 identical objects (same shape, colour, size and, in videos, the same motion); a "pair" scene holds two different
single objects. Videos are H.264 ``.mp4`` clips in which objects move left, right, up or down, slowly or quickly, or
stay still; images are single ``.jpg`` frames without motion. Captions are templated English over
:data:`VOCABULARY`; direction and speed words need more than one frame to tell apart.

Output under ``out`` (see :func:`prepare_synthetic`): ``webvid/`` train videos (video2dataset layout), ``cc3m/`` train
images (img2dataset layout), ``heldout/`` retrieval videos (same layout; shard numbers, hence keys, continue after
the train videos') with ``retrieval.jsonl``, ``qa/`` open-ended, multiple-choice and fill-in-the-blank annotations
for train and held-out videos, and ``manifest.json``.

*Held-out* means: separate random draws (its own random stream: new positions, textures and caption templates),
keys disjoint from the train keys, captions that name every attribute, and scene descriptions unique within the
held-out set, so each retrieval query describes exactly one held-out video. An attribute combination may also occur
in training: the held-out set tests recognising composed attributes in new renders, not unseen combinations.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any

import av
import numpy as np

import clover_pl
from clover_pl.data.shards import make_key, write_shards

SHAPES = ("circle", "square", "triangle", "star")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 180, 50),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "purple": (140, 40, 190),
    "orange": (250, 140, 20),
}
"""Object colours (RGB); every one is at least ~90 RGB units from every background colour."""
BACKGROUNDS = {"gray": (128, 128, 128), "brown": (110, 75, 45), "teal": (0, 115, 125), "pink": (240, 165, 195)}
SIZES = {"small": 0.11, "large": 0.19}
"""Object radius as a fraction of the frame size."""
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}
SPEEDS = {"slow": 0.2, "fast": 0.45}
"""Displacement over the whole clip as a fraction of the frame size (independent of the frame count)."""
SPEED_ADVERBS = {"slow": "slowly", "fast": "quickly"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}

_CAPTION_WORDS = "a and are background is move moves moving on stay staying stays there with"
_QUESTION_WORDS = "caption color describes direction how many object objects shape size the video what which"
WORDPIECE_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDPIECE_PUNCTUATION = ["?", ",", "."]
VOCABULARY = sorted(
    {*SHAPES, *(shape + "s" for shape in SHAPES), *COLORS, *BACKGROUNDS, *SIZES, *DIRECTIONS, *SPEEDS}
    | {*SPEED_ADVERBS.values(), *COUNT_WORDS.values()}
    | set(_CAPTION_WORDS.split())
    | set(_QUESTION_WORDS.split())
)
"""Every word that captions, questions, options and answers use (lowercase; questions also end with ``?``)."""
MASK = "[MASK]"

_SPLIT_STREAMS = {"train": 1, "images": 2, "heldout": 3}
_TEMPLATES = ("plain", "with", "there", "short")
_COMPLETE_TEMPLATES = ("plain", "with", "there")
"""Templates that name every attribute, used for held-out captions, multiple-choice options and blanks."""
_MULTIPLE_CHOICE_QUESTION = "which caption describes the video?"
_OPTIONS = 5
_QA_TASKS = ("open_ended", "multiple_choice", "fill_in_blank")


@dataclass(frozen=True)
class Entity:
    """A group of ``count`` identical objects; ``direction``/``speed`` are None in images, ``speed`` when still."""

    shape: str
    color: str
    size: str
    direction: str | None
    speed: str | None
    count: int


@dataclass(frozen=True)
class Track:
    """One drawn object: its entity and its centre (x, y) in pixels on the first and last frame."""

    entity: int
    start: tuple[int, int]
    end: tuple[int, int]


@dataclass(frozen=True)
class Scene:
    """What one sample shows."""

    background: str
    entities: tuple[Entity, ...]
    tracks: tuple[Track, ...]

    def signature(self) -> tuple[Any, ...]:
        """Order-free description of the scene: equal signatures mean equally good captions."""
        entities = sorted((e.shape, e.color, e.size, e.direction or "", e.speed or "", e.count) for e in self.entities)
        return (self.background, *entities)

    def to_json(self, size: int) -> dict[str, Any]:
        """The per-sample metadata: background and one record per drawn object."""
        objects = []
        for track in self.tracks:
            entity = self.entities[track.entity]
            objects.append(
                {
                    "shape": entity.shape,
                    "color": entity.color,
                    "size": entity.size,
                    "direction": entity.direction,
                    "speed": entity.speed,
                    "group": track.entity,
                    "radius": SIZES[entity.size] * size,
                    "start": list(track.start),
                    "end": list(track.end),
                }
            )
        return {"background": self.background, "objects": objects}


# ----------------------------------------------------------------------------------------------------- scenes


def sample_scene(rng: np.random.Generator, size: int, motion: bool) -> Scene:
    """Draw a scene whose objects stay inside the frame and never overlap along their paths.

    Args:
        rng: the sample's random stream.
        size: frame height and width in pixels.
        motion: draw directions and speeds (videos) or not (images).

    Returns:
        The scene. Attributes that cannot be placed are redrawn, so crowded combinations are rarer and three large
        moving objects never occur (they do not fit side by side).
    """
    while True:
        background = str(rng.choice(list(BACKGROUNDS)))
        if rng.random() < 0.65:
            entities: tuple[Entity, ...] = (
                _sample_entity(rng, motion, count=int(rng.choice([1, 2, 3], p=[0.4, 0.3, 0.3]))),
            )
        else:
            first = _sample_entity(rng, motion, count=1)
            second = _sample_entity(rng, motion, count=1)
            while (second.shape, second.color) == (first.shape, first.color):
                second = _sample_entity(rng, motion, count=1)
            entities = (first, second)
        for _attempt in range(10):
            tracks = _place(rng, entities, size)
            if tracks is not None:
                return Scene(background, entities, tracks)


def _sample_entity(rng: np.random.Generator, motion: bool, count: int) -> Entity:
    direction = speed = None
    if motion:
        direction = str(rng.choice(list(DIRECTIONS)))
        speed = None if direction == "still" else str(rng.choice(list(SPEEDS)))
    return Entity(
        str(rng.choice(SHAPES)), str(rng.choice(list(COLORS))), str(rng.choice(list(SIZES))), direction, speed, count
    )


def _place(rng: np.random.Generator, entities: tuple[Entity, ...], size: int) -> tuple[Track, ...] | None:
    tracks: list[Track] = []
    boxes: list[tuple[int, int, int, int]] = []
    for index, entity in enumerate(entities):
        radius = SIZES[entity.size] * size
        margin = int(np.ceil(radius)) + 1
        step = round(SPEEDS[entity.speed] * size) if entity.speed else 0
        dx, dy = DIRECTIONS[entity.direction or "still"]
        for _ in range(entity.count):
            for _attempt in range(30):
                x0 = _draw_start(rng, margin, size, dx * step)
                y0 = _draw_start(rng, margin, size, dy * step)
                if x0 is None or y0 is None:
                    return None
                x1, y1 = x0 + dx * step, y0 + dy * step
                box = (min(x0, x1) - margin, min(y0, y1) - margin, max(x0, x1) + margin, max(y0, y1) + margin)
                if not any(_overlap(box, other) for other in boxes):
                    boxes.append(box)
                    tracks.append(Track(index, (x0, y0), (x1, y1)))
                    break
            else:
                return None
    return tuple(tracks)


def _draw_start(rng: np.random.Generator, margin: int, size: int, shift: int) -> int | None:
    low, high = margin - min(0, shift), size - 1 - margin - max(0, shift)
    return None if low > high else int(rng.integers(low, high + 1))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


# --------------------------------------------------------------------------------------------------- drawing


def render(scene: Scene, size: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a scene.

    Args:
        scene: what to draw.
        size: frame height and width in pixels.
        frames: number of frames T (1 for an image); objects move linearly from ``start`` to ``end``.
        rng: random stream for the background texture.

    Returns:
        ``(T, size, size, 3)`` uint8 RGB frames.
    """
    rows = np.linspace(-1.0, 1.0, size)[:, None, None] * rng.uniform(-12.0, 12.0)
    texture = rng.integers(-6, 7, size=(size, size, 3))
    background = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32) + rows + texture
    video = np.repeat(np.clip(background, 0, 255).astype(np.float32)[None], frames, axis=0)
    for track in scene.tracks:
        entity = scene.entities[track.entity]
        alpha = _sprite(entity.shape, SIZES[entity.size] * size)[..., None]
        color = np.asarray(COLORS[entity.color], dtype=np.float32)
        half = alpha.shape[0] // 2
        for t in range(frames):
            fraction = t / (frames - 1) if frames > 1 else 0.0
            x = round(track.start[0] + (track.end[0] - track.start[0]) * fraction)
            y = round(track.start[1] + (track.end[1] - track.start[1]) * fraction)
            patch = video[t, y - half : y + half + 1, x - half : x + half + 1]
            patch += alpha * (color - patch)
    return np.rint(video).astype(np.uint8)


@lru_cache(maxsize=64)
def _sprite(shape: str, radius: float) -> np.ndarray:
    """Anti-aliased coverage ``(2R+1, 2R+1)`` in [0, 1] of a shape of circumradius ``radius``, 4x4 supersampled."""
    half = int(np.ceil(radius)) + 1
    offsets = (np.arange(4) + 0.5) / 4 - 0.5
    grid = np.arange(-half, half + 1)
    y = (grid[:, None, None, None] + offsets[None, None, :, None]) / radius
    x = (grid[None, :, None, None] + offsets[None, None, None, :]) / radius
    y, x = np.broadcast_arrays(y, x)
    if shape == "circle":
        inside = x**2 + y**2 <= 1.0
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
    return inside.mean(axis=(2, 3)).astype(np.float32)


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


# -------------------------------------------------------------------------------------------------- captions


def caption(scene: Scene, template: str) -> str:
    """Describe a scene with one of the templates ``plain``, ``with``, ``there`` (complete) or ``short``."""
    return " ".join(word for word, _ in caption_words(scene, template))


def caption_words(scene: Scene, template: str) -> list[tuple[str, str | None]]:
    """A caption as ``(word, attribute)`` pairs; ``attribute`` names what the word states (None: a function word).

    Args:
        scene: what to describe.
        template: ``plain`` ("two small red circles move left slowly on a gray background"), ``with`` ("a gray
            background with ..."), ``there`` ("there are ... on a gray background") or ``short`` (no background).

    Returns:
        The words in order.
    """
    participle = template in ("with", "there")
    parts: list[tuple[str, str | None]] = []
    for index, entity in enumerate(scene.entities):
        if index:
            parts.append(("and", None))
        parts += _noun_phrase(entity) + _verb_phrase(entity, participle)
    background = [("on", None), ("a", None), (scene.background, "background"), ("background", None)]
    if template == "with":
        return [("a", None), (scene.background, "background"), ("background", None), ("with", None), *parts]
    if template == "there":
        verb = "is" if scene.entities[0].count == 1 else "are"
        return [("there", None), (verb, None), *parts, *background]
    return parts + (background if template == "plain" else [])


def _noun_phrase(entity: Entity) -> list[tuple[str, str | None]]:
    count = ("a", None) if entity.count == 1 else (COUNT_WORDS[entity.count], "count")
    noun = entity.shape if entity.count == 1 else entity.shape + "s"
    return [count, (entity.size, "size"), (entity.color, "color"), (noun, "shape")]


def _verb_phrase(entity: Entity, participle: bool) -> list[tuple[str, str | None]]:
    if entity.direction is None:
        return []
    singular = entity.count == 1
    if entity.direction == "still":
        verb = "staying" if participle else ("stays" if singular else "stay")
        return [(verb, None), ("still", "direction")]
    verb = "moving" if participle else ("moves" if singular else "move")
    return [(verb, None), (entity.direction, "direction"), (SPEED_ADVERBS[entity.speed or "slow"], "speed")]


# ----------------------------------------------------------------------------------------------------------- QA


def open_ended_questions(scene: Scene) -> list[dict[str, str]]:
    """Questions with one-word answers about a video's scene (colour, shape, size, count, direction, speed).

    Returns:
        ``{"question", "answer", "answer_type"}`` records; an entity is named by its shape, or by colour and shape
        when two entities share the shape.
    """
    records: list[dict[str, str]] = []
    shapes = [entity.shape for entity in scene.entities]
    colors = [entity.color for entity in scene.entities]
    for entity in scene.entities:
        plural = entity.count > 1
        noun = entity.shape + ("s" if plural else "")
        be = "are" if plural else "is"
        unique_shape = shapes.count(entity.shape) == 1
        ref = f"the {noun}" if unique_shape else f"the {entity.color} {noun}"
        if unique_shape:
            records.append(_qa(f"what color {be} {ref}?", entity.color, "color"))
        if colors.count(entity.color) == 1:
            records.append(
                _qa(f"what shape {be} the {entity.color} object{'s' if plural else ''}?", entity.shape, "shape")
            )
        records.append(_qa(f"what size {be} {ref}?", entity.size, "size"))
        if entity.direction is not None:
            records.append(_qa(f"which direction {be} {ref} moving?", entity.direction, "direction"))
        if entity.speed is not None:
            records.append(_qa(f"how fast {be} {ref} moving?", entity.speed, "speed"))
    for shape in dict.fromkeys(shapes):
        total = sum(entity.count for entity in scene.entities if entity.shape == shape)
        records.append(_qa(f"how many {shape}s are there?", COUNT_WORDS[total], "count"))
    records.append(_qa("what color is the background?", scene.background, "background"))
    return records


def _qa(question: str, answer: str, answer_type: str) -> dict[str, str]:
    return {"question": question, "answer": answer, "answer_type": answer_type}


def multiple_choice(scene: Scene, rng: np.random.Generator) -> dict[str, Any]:
    """Five captions of which one describes the scene; each distractor changes one attribute.

    Returns:
        ``{"question", "options", "answer"}`` with a 0-based ``answer``.
    """
    template = str(rng.choice(_COMPLETE_TEMPLATES))
    correct = caption(scene, template)
    options = [correct]
    for changed in _perturbations(scene, rng):
        text = caption(changed, template)
        if text not in options:
            options.append(text)
        if len(options) == _OPTIONS:
            break
    order = rng.permutation(len(options))
    return {
        "question": _MULTIPLE_CHOICE_QUESTION,
        "options": [options[i] for i in order],
        "answer": int(np.flatnonzero(order == 0)[0]),
    }


def _perturbations(scene: Scene, rng: np.random.Generator) -> Iterator[Scene]:
    """Scenes that differ from ``scene`` in one attribute, in random order (always at least four)."""
    choices: list[tuple[int, str, Any]] = [(-1, "background", value) for value in BACKGROUNDS]
    for index, entity in enumerate(scene.entities):
        choices += [(index, "color", value) for value in COLORS]
        choices += [(index, "shape", value) for value in SHAPES] + [(index, "size", value) for value in SIZES]
        if entity.direction is not None:
            choices += [(index, "direction", value) for value in DIRECTIONS]
        if entity.speed is not None:
            choices += [(index, "speed", value) for value in SPEEDS]
        if len(scene.entities) == 1:
            choices += [(index, "count", value) for value in COUNT_WORDS]
    for position in rng.permutation(len(choices)):
        index, attribute, value = choices[int(position)]
        if index < 0:
            yield replace(scene, background=value)
            continue
        changes: dict[str, Any] = {attribute: value}
        if attribute == "direction" and value != "still" and scene.entities[index].speed is None:
            changes["speed"] = str(rng.choice(list(SPEEDS)))
        elif attribute == "direction" and value == "still":
            changes["speed"] = None
        entities = list(scene.entities)
        entities[index] = replace(entities[index], **changes)
        yield replace(scene, entities=tuple(entities))


def fill_in_blank(scene: Scene, rng: np.random.Generator) -> dict[str, str]:
    """A complete caption with one attribute word replaced by ``[MASK]``.

    Returns:
        ``{"text", "answer"}``.
    """
    words = caption_words(scene, str(rng.choice(_COMPLETE_TEMPLATES)))
    position = int(rng.choice([i for i, (_, attribute) in enumerate(words) if attribute is not None]))
    answer = words[position][0]
    return {"text": " ".join(MASK if i == position else word for i, (word, _) in enumerate(words)), "answer": answer}


# ---------------------------------------------------------------------------------------------------- writing


@dataclass
class _Split:
    name: str
    folder: str
    kind: str
    count: int
    samples_per_shard: int
    start_shard: int = 0


def prepare_synthetic(
    out: str,
    seed: int = 0,
    train_videos: int = 2048,
    train_images: int = 1024,
    heldout_videos: int = 512,
    size: int = 64,
    frames: int = 16,
    fps: int = 8,
    samples_per_shard: int = 256,
    heldout_samples_per_shard: int = 128,
) -> dict[str, Any]:
    """Render the synthetic dataset; the output is byte-identical for the same arguments.

    Layout under ``out`` (shard URLs relative to ``out`` are in the manifest):

    - ``webvid/{00000..}.tar`` + ``_stats.json``: train videos, video2dataset layout (``json``, ``mp4``, ``txt``);
    - ``cc3m/{00000..}.tar`` + ``_stats.json``: train images, img2dataset layout (``jpg``, ``json``, ``txt``);
    - ``heldout/{N..}.tar`` + ``_stats.json``, numbered after the train video shards so keys are disjoint, and
      ``heldout/retrieval.jsonl``: ``{"key", "video_id", "caption"}`` in key order, one caption per video;
    - ``qa/{train,heldout}_{open_ended,multiple_choice,fill_in_blank}.jsonl`` keyed by video key, and
      ``qa/{open_ended,fill_in_blank}_ans2label.json`` (answers seen in train, sorted);
    - ``vocab.txt``: a WordPiece vocabulary (BERT's special tokens, every word, punctuation) for the tiny model;
    - ``manifest.json``: arguments, counts per split and shard, vocabulary and answer vocabularies, code version.

    Args:
        out: output folder (created; this function's own files in it are replaced).
        seed: random seed.
        train_videos: number of train video clips.
        train_images: number of train images.
        heldout_videos: number of held-out videos (the retrieval test set).
        size: frame height and width in pixels (even, for yuv420p).
        frames: frames per clip.
        fps: frame rate of the clips.
        samples_per_shard: samples per train shard; must divide ``train_videos`` and ``train_images`` so that all
            train shards are equal (ranks stay in step); a multiple of 4 shards suits 2 ranks x 2 workers.
        heldout_samples_per_shard: samples per held-out shard (the last may hold fewer). Keys are strings; with the
            same key width as the train shards (the defaults: 8 digits) they are also disjoint as integers.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        ValueError: an odd ``size``, too few frames, or train counts that do not fill equal shards.
    """
    if size % 2 or size < 16:
        raise ValueError(f"size must be even and >= 16, got {size}")
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (motion needs two frames), got {frames}")
    for name, count in (("train_videos", train_videos), ("train_images", train_images)):
        if count < 1 or count % samples_per_shard:
            raise ValueError(f"{name}={count} must be a positive multiple of samples_per_shard={samples_per_shard}")
    if heldout_videos < 1:
        raise ValueError(f"heldout_videos must be >= 1, got {heldout_videos}")
    arguments = {
        "seed": seed,
        "train_videos": train_videos,
        "train_images": train_images,
        "heldout_videos": heldout_videos,
        "size": size,
        "frames": frames,
        "fps": fps,
        "samples_per_shard": samples_per_shard,
        "heldout_samples_per_shard": heldout_samples_per_shard,
    }
    splits = [
        _Split("train", "webvid", "video", train_videos, samples_per_shard),
        _Split("images", "cc3m", "image", train_images, samples_per_shard),
        _Split(
            "heldout",
            "heldout",
            "video",
            heldout_videos,
            heldout_samples_per_shard,
            start_shard=train_videos // samples_per_shard,
        ),
    ]
    manifest: dict[str, Any] = {"dataset": "synthetic", "version": clover_pl.__version__, "arguments": arguments}
    manifest["splits"], qa_records = {}, {}
    for split in splits:
        records: dict[str, list[dict[str, Any]]] = {name: [] for name in ("retrieval", *_QA_TASKS)}
        folder = os.path.join(out, split.folder)
        _remove_stale_shards(folder)
        paths = write_shards(
            _samples(split, seed, size, frames, fps, records),
            folder,
            split.samples_per_shard,
            split.kind,
            start_shard=split.start_shard,
        )
        manifest["splits"][split.name] = _split_entry(split, paths)
        qa_records[split.name] = records
    manifest["splits"]["heldout"]["retrieval"] = "heldout/retrieval.jsonl"
    _write_jsonl(os.path.join(out, "heldout", "retrieval.jsonl"), qa_records["heldout"]["retrieval"])
    manifest["qa"] = _write_qa(out, qa_records)
    manifest["vocabulary"] = VOCABULARY
    # The tiny text encoder's WordPiece vocabulary: BERT's special tokens, every word, and the punctuation used.
    wordpieces = WORDPIECE_SPECIAL + VOCABULARY + WORDPIECE_PUNCTUATION
    _write_text(os.path.join(out, "vocab.txt"), "\n".join(wordpieces) + "\n")
    manifest["tokenizer"] = "vocab.txt"
    manifest["answer_vocabularies"] = {
        name: sorted({record["answer"] for record in qa_records["train"][name]})
        for name in ("open_ended", "fill_in_blank")
    }
    for name, answers in manifest["answer_vocabularies"].items():
        _write_json(os.path.join(out, "qa", f"{name}_ans2label.json"), {a: i for i, a in enumerate(answers)})
    manifest["heldout_definition"] = (
        "separate random draws from the train splits, keys disjoint from train keys, complete captions, scene "
        "descriptions unique within the held-out set; attribute combinations may also occur in training"
    )
    _write_json(os.path.join(out, "manifest.json"), manifest)
    return manifest


def _samples(
    split: _Split, seed: int, size: int, frames: int, fps: int, records: dict[str, list[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """Render a split's samples in order, appending its annotation records as a side effect."""
    seen: set[tuple[Any, ...]] = set()
    for index in range(split.count):
        rng = np.random.default_rng([seed, _SPLIT_STREAMS[split.name], index])
        key = make_key(
            split.start_shard + index // split.samples_per_shard,
            index % split.samples_per_shard,
            split.samples_per_shard,
        )
        sample_id = f"{split.name}-{index:06d}"
        scene = sample_scene(rng, size, motion=split.kind == "video")
        if split.name == "heldout":
            for _attempt in range(1000):
                if scene.signature() not in seen:
                    break
                scene = sample_scene(rng, size, motion=True)
            seen.add(scene.signature())
        template = str(rng.choice(_COMPLETE_TEMPLATES if split.name == "heldout" else _TEMPLATES))
        text = caption(scene, template)
        meta: dict[str, Any] = {"split": split.name, "template": template, "width": size, "height": size}
        if split.kind == "image":
            image = render(scene, size, 1, rng)[0]
            meta.update(image_id=sample_id, url=f"synthetic://{split.folder}/{sample_id}.jpg")
            yield {"jpg": encode_jpg(image), "txt": text, "json": {**meta, "scene": scene.to_json(size)}}
            continue
        video = render(scene, size, frames, rng)
        meta = {
            "videoid": sample_id,
            "page_idx": 0,
            "page_dir": "synthetic",
            "duration": frames / fps,
            **meta,
            "frames": frames,
            "fps": fps,
            "url": f"synthetic://{split.folder}/{sample_id}.mp4",
        }
        records["retrieval"].append({"key": key, "video_id": sample_id, "caption": text})
        records["open_ended"] += [{"key": key, **qa} for qa in open_ended_questions(scene)]
        records["multiple_choice"].append({"key": key, **multiple_choice(scene, rng)})
        records["fill_in_blank"].append({"key": key, **fill_in_blank(scene, rng)})
        yield {"mp4": encode_mp4(video, fps), "txt": text, "json": {**meta, "scene": scene.to_json(size)}}


def _split_entry(split: _Split, paths: list[str]) -> dict[str, Any]:
    names = [os.path.basename(path) for path in paths]
    first, last = names[0][:-4], names[-1][:-4]
    pattern = f"{split.folder}/{first}.tar" if first == last else f"{split.folder}/{{{first}..{last}}}.tar"
    shard_counts = [min(split.samples_per_shard, split.count - i * split.samples_per_shard) for i in range(len(names))]
    return {
        "folder": split.folder,
        "kind": split.kind,
        "urls": pattern,
        "samples": split.count,
        "shards": dict(zip(names, shard_counts, strict=True)),
    }


def _write_qa(out: str, qa_records: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for split in ("train", "heldout"):
        for name in _QA_TASKS:
            path = f"qa/{split}_{name}.jsonl"
            _write_jsonl(os.path.join(out, path), qa_records[split][name])
            entries.setdefault(split, {})[name] = {"path": path, "count": len(qa_records[split][name])}
    return entries


def _remove_stale_shards(folder: str) -> None:
    """Delete shards an earlier run left here, so that no glob picks up a mix of two runs."""
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if re.fullmatch(r"\d{5}(\.tar|_stats\.json)", name):
                os.remove(os.path.join(folder, name))


def _write_jsonl(path: str, records: list[dict[str, Any]]) -> None:
    _write_text(path, "".join(json.dumps(record) + "\n" for record in records))


def _write_json(path: str, value: Any) -> None:
    _write_text(path, json.dumps(value, indent=2) + "\n")


def _write_text(path: str, content: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        stream.write(content)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare synthetic --out DIR [--seed ...]``.

    Args:
        argv: arguments after ``prepare synthetic`` (default ``sys.argv[1:]``).

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare synthetic", description="Render the synthetic video-language dataset."
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-videos", type=int, default=2048)
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--heldout-videos", type=int, default=512)
    parser.add_argument("--size", type=int, default=64, help="frame height and width (even)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--samples-per-shard", type=int, default=256, help="must divide the train counts")
    parser.add_argument("--heldout-samples-per-shard", type=int, default=128)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    manifest = prepare_synthetic(**vars(args))
    splits = manifest["splits"]
    print(
        f"synthetic dataset in {args.out} ({time.perf_counter() - began:.1f} s): "
        + ", ".join(f"{name} {entry['samples']} {entry['kind']}s in {entry['urls']}" for name, entry in splits.items())
        + f"; vocabulary {len(VOCABULARY)} words"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
