"""``clover-pl prepare synthetic``: the embedded default dataset (v2), rendered with real codecs.

What a sample shows and how it is drawn and described lives in the submodules: :mod:`.scene` (objects, materials,
actions, grounds; sampling and placement), :mod:`.render` (sprites, H.264 and JPEG), :mod:`.captions` (every visual
fact a noun or a verb) and :mod:`.questions` (open-ended, one-fact multiple choice, fill-in-the-blank). This module
writes the dataset.

Output under ``out`` (see :func:`prepare_synthetic`): ``webvid/`` train videos (video2dataset layout), ``cc3m/`` train
images (img2dataset layout), ``validation/`` the pretraining's validation videos, ``heldout/`` the retrieval and QA
evaluation videos with ``retrieval.jsonl``, ``qa/`` open-ended, multiple-choice and fill-in-the-blank annotations for
train and held-out videos, and ``manifest.json``. Shard numbers, hence keys, continue from split to split.

*Validation* and *held-out* are separate random draws (each its own random stream: new positions, textures and
caption templates), with keys disjoint from each other and from train; captions name every fact, and scene
descriptions are unique within each of the two sets, so each retrieval query describes exactly one clip. The
pretraining's validation never sees a held-out clip (the leakage the v1 data had: its quickstart validated on the
retrieval test shards). A fact combination may also occur in training: the held-out set tests recognising composed
facts in new renders, not unseen combinations.

Version 2 (this one) replaced v1's adjective/adverb captions ("two small red circles move left slowly"), whose
visual facts semantic (noun/verb) masking never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import clover_pl
from clover_pl.data.shards import make_key, write_shards
from clover_pl.files import write_text_atomic
from clover_pl.prepare.synthetic.captions import (
    COMPLETE_TEMPLATES,
    MASK,
    TEMPLATES,
    VOCABULARY,
    WORDPIECE_PUNCTUATION,
    WORDPIECE_SPECIAL,
    caption,
    caption_words,
)
from clover_pl.prepare.synthetic.questions import (
    fill_in_blank,
    multiple_choice,
    open_ended_questions,
    text_only_accuracy,
)
from clover_pl.prepare.synthetic.render import encode_jpg, encode_mp4, render
from clover_pl.prepare.synthetic.scene import (
    ACTIONS,
    GROUNDS,
    MATERIALS,
    OBJECTS,
    Entity,
    Scene,
    Track,
    sample_scene,
)
from clover_pl.progress import progress

__all__ = [
    "ACTIONS",
    "GROUNDS",
    "MASK",
    "MATERIALS",
    "OBJECTS",
    "VOCABULARY",
    "Entity",
    "Scene",
    "Track",
    "caption",
    "caption_words",
    "encode_jpg",
    "encode_mp4",
    "fill_in_blank",
    "main",
    "multiple_choice",
    "open_ended_questions",
    "prepare_synthetic",
    "render",
    "sample_scene",
]

DATA_VERSION = 2
_SPLIT_STREAMS = {"train": 1, "images": 2, "heldout": 3, "validation": 4}
_QA_TASKS = ("open_ended", "multiple_choice", "fill_in_blank")
_UNIQUE_SPLITS = ("validation", "heldout")


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
    heldout_videos: int = 2048,
    size: int = 64,
    frames: int = 16,
    fps: int = 8,
    samples_per_shard: int = 256,
    heldout_samples_per_shard: int = 128,
    validation_videos: int = 256,
) -> dict[str, Any]:
    """Render the synthetic dataset; the output is byte-identical for the same arguments.

    Layout under ``out`` (shard URLs relative to ``out`` are in the manifest):

    - ``webvid/{00000..}.tar`` + ``_stats.json``: train videos, video2dataset layout (``json``, ``mp4``, ``txt``);
    - ``cc3m/{00000..}.tar`` + ``_stats.json``: train images, img2dataset layout (``jpg``, ``json``, ``txt``);
    - ``validation/{N..}.tar`` + ``_stats.json``: the pretraining's validation videos, numbered after the train
      video shards, complete captions, unique scenes;
    - ``heldout/{M..}.tar`` + ``_stats.json``, numbered after the validation shards so keys are disjoint, and
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
        heldout_videos: number of held-out videos (the retrieval and QA evaluation clips; one one-fact
            multiple-choice question each).
        size: frame height and width in pixels (even, for yuv420p).
        frames: frames per clip.
        fps: frame rate of the clips.
        samples_per_shard: samples per train shard; must divide ``train_videos`` and ``train_images`` so that all
            train shards are equal (ranks stay in step); a multiple of 4 shards suits 2 ranks x 2 workers.
        heldout_samples_per_shard: samples per held-out shard (the last may hold fewer). Keys are strings; with the
            same key width as the train shards (the defaults: 8 digits) they are also disjoint as integers.
        validation_videos: number of pretraining validation videos (their own shards, ``heldout_samples_per_shard``
            each), disjoint from the held-out clips.

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
    for name, count in (("heldout_videos", heldout_videos), ("validation_videos", validation_videos)):
        if count < 1:
            raise ValueError(f"{name} must be >= 1, got {count}")
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
        "validation_videos": validation_videos,
    }
    validation_start = train_videos // samples_per_shard
    heldout_start = validation_start + -(-validation_videos // heldout_samples_per_shard)
    splits = [
        _Split("train", "webvid", "video", train_videos, samples_per_shard),
        _Split("images", "cc3m", "image", train_images, samples_per_shard),
        _Split("validation", "validation", "video", validation_videos, heldout_samples_per_shard, validation_start),
        _Split("heldout", "heldout", "video", heldout_videos, heldout_samples_per_shard, heldout_start),
    ]
    manifest: dict[str, Any] = {
        "dataset": "synthetic",
        "data_version": DATA_VERSION,
        "version": clover_pl.__version__,
        "arguments": arguments,
    }
    manifest["splits"], qa_records = {}, {}
    for split in splits:
        records: dict[str, list[dict[str, Any]]] = {name: [] for name in ("retrieval", *_QA_TASKS)}
        folder = os.path.join(out, split.folder)
        _remove_stale_shards(folder)
        paths = write_shards(
            progress(
                _samples(split, seed, size, frames, fps, records),
                total=split.count,
                desc=f"synthetic {split.name}",
                unit=split.kind,
            ),
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
        "validation (the pretraining's) and heldout (retrieval and QA evaluation) are separate random draws with keys "
        "disjoint from each other and from train, complete captions, scene descriptions unique within each set; fact "
        "combinations may also occur in training"
    )
    manifest["multiple_choice_text_only"] = text_only_accuracy(qa_records["heldout"]["multiple_choice"])
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
        if split.name in _UNIQUE_SPLITS:
            for _attempt in range(1000):
                if scene.signature() not in seen:
                    break
                scene = sample_scene(rng, size, motion=True)
            seen.add(scene.signature())
        template = str(rng.choice(COMPLETE_TEMPLATES if split.name in _UNIQUE_SPLITS else TEMPLATES))
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
    write_text_atomic(path, content)


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
    parser.add_argument("--heldout-videos", type=int, default=2048, help="retrieval and QA evaluation clips")
    parser.add_argument("--validation-videos", type=int, default=256, help="the pretraining's validation clips")
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
