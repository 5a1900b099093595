"""``clover-pl prepare synthetic_qa``: the three VideoQA benchmarks of a prepared synthetic dataset.

It reads a folder made by ``clover-pl prepare synthetic`` (its ``manifest.json``, video shards and
``qa/{train,heldout}_{open_ended,multiple_choice,fill_in_blank}.jsonl``, keyed by the clips' shard ``key``) and
writes, under ``OUT`` (default ``<synthetic>/videoqa``):

- ``videos/<key>.mp4``: each clip used, once, with the shard's ``.mp4`` bytes as they are;
- ``open_ended/``, ``multiple_choice/``, ``fill_in_blank/``: one prepared VideoQA folder per setting
  (:mod:`clover_pl.data.qa_manifest`), whose ``video`` paths point at the shared ``videos/`` (``../videos/<key>.mp4``).

Splits, by clip (as in ``synthetic_retrieval``): ``train`` = the questions of the first ``train_videos`` clips of the
train video shards (all by default); ``val`` = those of the first ``val_videos`` held-out clips; ``test`` = those of
the other held-out clips. Question ids: open-ended ``<key>-<n>`` (the clip's n-th question), multiple-choice and
fill-in-the-blank ``<key>`` (one question per clip). The answer vocabularies hold every train answer.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from typing import Any

from clover_pl.data.qa_manifest import SETTINGS, ProblemLog, write_qa_manifest
from clover_pl.prepare.qa_common import NUM_OPTIONS, SplitBuilder, report, require_file
from clover_pl.prepare.synthetic_retrieval import synthetic_clips, write_bytes_if_changed

DEFAULT_VAL_VIDEOS = 128
VIDEO_FOLDER = "videos"


def prepare_synthetic_qa(
    synthetic_out: str, out: str | None = None, train_videos: int | None = None, val_videos: int = DEFAULT_VAL_VIDEOS
) -> dict[str, dict[str, Any]]:
    """Write the synthetic VideoQA benchmarks (see the module docstring).

    Args:
        synthetic_out: a folder made by ``prepare_synthetic``.
        out: output folder; default ``<synthetic_out>/videoqa``.
        train_videos: train clips whose questions form ``train`` (None: all of them).
        val_videos: held-out clips whose questions form ``val``; the other held-out clips' form ``test``.

    Returns:
        ``{setting: manifest}`` for ``open_ended``, ``multiple_choice`` and ``fill_in_blank``.

    Raises:
        FileNotFoundError: ``synthetic_out`` has no ``manifest.json`` or lacks a QA file.
        ValueError: more train clips asked than there are, or no held-out clip left for ``test``.
    """
    out = out or os.path.join(synthetic_out, "videoqa")
    with open(require_file(os.path.join(synthetic_out, "manifest.json")), encoding="utf-8") as stream:
        synthetic = json.load(stream)
    available = {name: int(synthetic["splits"][name]["samples"]) for name in ("train", "heldout")}
    train_videos = available["train"] if train_videos is None else train_videos
    if not 1 <= train_videos <= available["train"]:
        raise ValueError(f"train_videos={train_videos} must be in [1, {available['train']}] (train clips)")
    if not 0 <= val_videos < available["heldout"]:
        raise ValueError(
            f"val_videos={val_videos} must be in [0, {available['heldout']}) so that test keeps a held-out clip"
        )
    folder = os.path.join(out, VIDEO_FOLDER)
    os.makedirs(folder, exist_ok=True)
    written: set[str] = set()
    train_keys, beyond = _copy_clips(synthetic_clips(synthetic_out, synthetic, "train"), train_videos, folder, written)
    heldout_keys, _ = _copy_clips(synthetic_clips(synthetic_out, synthetic, "heldout"), None, folder, written)
    for name in os.listdir(folder):
        if name.endswith(".mp4") and name not in written:
            os.remove(os.path.join(folder, name))
    split_of = dict.fromkeys(train_keys, "train")
    split_of.update((key, "val" if position < val_videos else "test") for position, key in enumerate(heldout_keys))
    manifests: dict[str, dict[str, Any]] = {}
    for setting in SETTINGS:
        problems = ProblemLog()
        builders = {split: SplitBuilder(split, setting, problems) for split in ("train", "val", "test")}
        paths = {}
        for source, fallback in (("train", "train"), ("heldout", "test")):
            paths[source] = require_file(os.path.join(synthetic_out, "qa", f"{source}_{setting}.jsonl"))
            _add_questions(paths[source], setting, split_of, beyond, builders[fallback], builders)
        splits = {split: builder.records for split, builder in builders.items() if split != "val" or val_videos}
        sources = {
            "synthetic": os.path.abspath(synthetic_out),
            **{f"{source}_questions": os.path.abspath(path) for source, path in paths.items()},
            "train_videos": train_videos,
            "val_videos": val_videos,
        }
        options = {"num_options": NUM_OPTIONS} if setting == "multiple_choice" else {"top_k": None}
        manifests[setting] = write_qa_manifest(
            os.path.join(out, setting),
            f"synthetic_{setting}",
            setting,
            splits,
            _protocol(setting, train_videos, val_videos),
            problems,
            sources,
            **options,
        )
    return manifests


def _copy_clips(
    clips: Iterator[dict[str, Any]], count: int | None, folder: str, written: set[str]
) -> tuple[list[str], set[str]]:
    """Copy the ``.mp4`` of the first ``count`` clips (all when None) to ``folder``.

    Returns:
        The keys copied, in shard order, and the keys of the clips past ``count`` (a clip without ``.mp4`` is in
        neither: its questions are reported as ``missing_video``).
    """
    copied: list[str] = []
    beyond: set[str] = set()
    for clip in clips:
        key = clip["__key__"]
        if count is not None and len(copied) == count:
            beyond.add(key)
        elif "mp4" in clip:
            write_bytes_if_changed(os.path.join(folder, f"{key}.mp4"), clip["mp4"])
            written.add(f"{key}.mp4")
            copied.append(key)
    return copied, beyond


def _add_questions(
    path: str,
    setting: str,
    split_of: dict[str, str],
    beyond: set[str],
    fallback: SplitBuilder,
    builders: dict[str, SplitBuilder],
) -> None:
    """Add a synthetic QA file's questions to the builder of their clip's split (``fallback`` when no clip)."""
    numbers: dict[str, int] = {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            record = json.loads(line)
            key = str(record.get("key", ""))
            numbers[key] = numbers.get(key, -1) + 1
            if key in beyond:
                continue  # a train clip past --train-videos
            question_id = f"{key}-{numbers[key]}" if setting == "open_ended" else key
            builder = builders[split_of[key]] if key in split_of else fallback
            video = os.path.join("..", VIDEO_FOLDER, f"{key}.mp4") if key in split_of else None
            question = record.get("text" if setting == "fill_in_blank" else "question", "")
            answer_type = record.get("answer_type")  # multiple choice: the changed fact; blanks: the blank's
            builder.add(question_id, key, video, question, record.get("answer"), answer_type, record.get("options"))


def _protocol(setting: str, train_videos: int, val_videos: int) -> str:
    task = {
        "open_ended": "open-ended questions (material, object, action, count, ground); the answer "
        "vocabulary is every train answer, answer_type the attribute asked",
        "multiple_choice": f"one-fact multiple-choice: which of {NUM_OPTIONS} captions describes the clip (0-based "
        "answer); the four distractors change the same fact (answer_type: object, material or action, with _pair in "
        "two-entity scenes) to four different values; accuracy is the argmax over the candidates' scores",
        "fill_in_blank": "fill-in-the-blank: a complete caption with one fact word replaced by [MASK]; the "
        "answer vocabulary is every train answer",
    }[setting]
    return (
        f"Synthetic VideoQA, {task}. test is the standard test set: the questions of the held-out clips after the "
        f"first {val_videos}; "
        + (f"val is those of the first {val_videos} held-out clips, for model selection; " if val_videos else "")
        + f"train is those of the first {train_videos} clips of the train video shards. Held-out clips are separate "
        "renders with keys disjoint from train. Videos are whole clips in ../videos (start and end null)."
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare synthetic_qa --synthetic DIR [--out OUT] [--val-videos 128]``.

    Args:
        argv: arguments after ``prepare synthetic_qa``.

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="clover-pl prepare synthetic_qa",
        description="Cut the VideoQA benchmarks (OUT/videos/*.mp4 and OUT/{open_ended,multiple_choice,"
        "fill_in_blank}/) from a dataset made by `clover-pl prepare synthetic`.",
    )
    parser.add_argument("--synthetic", required=True, help="folder made by `clover-pl prepare synthetic`")
    parser.add_argument("--out", help="output folder (default: SYNTHETIC/videoqa)")
    parser.add_argument("--train-videos", type=int, help="train clips whose questions form train (default: all)")
    parser.add_argument(
        "--val-videos",
        type=int,
        default=DEFAULT_VAL_VIDEOS,
        help=f"held-out clips whose questions form val (default {DEFAULT_VAL_VIDEOS}); the rest are test",
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.synthetic, "videoqa")
    manifests = prepare_synthetic_qa(args.synthetic, out, args.train_videos, args.val_videos)
    for setting, manifest in manifests.items():
        print(report(manifest, os.path.join(out, setting)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
