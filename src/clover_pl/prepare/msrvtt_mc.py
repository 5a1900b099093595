"""``clover-pl prepare msrvtt_mc``: MSRVTT-MC (multiple-choice, test only) to a VideoQA manifest.

Inputs (dataset card: data_modules/msrvtt_mc/README.md): ClipBERT's ``msrvtt_retrieval_mc_test.jsonl``, one
``{"qid", "clip_name": "video7010", "options": [5 captions], "answer": 0-based}`` per line, or singularity's JSON
list of ``{"video": "video9770.mp4", "caption": [5 captions], "answer": 0-based}`` (the form is told by the first
character: ``[`` for the list); and the MSR-VTT video folder (``video{N}.mp4``, searched recursively by stem).

Each item becomes one record: ``question_id`` = ``str(qid)`` (the item's position when there is no ``qid``),
``video_id`` = the clip name, ``question`` = ``""`` (MSRVTT-MC has none: the candidates are captions), ``options``
and the 0-based ``answer``. There is no train or val split: the benchmark is scored with the retrieval model.
"""

from __future__ import annotations

import json
import os
from typing import Any

from clover_pl.data.qa_manifest import ProblemLog, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.errors import InputError, read_text
from clover_pl.prepare.qa_common import (
    NUM_OPTIONS,
    SplitBuilder,
    converter_parser,
    report,
    require_folder,
)
from clover_pl.progress import progress

DEFAULT_FILE = "msrvtt_retrieval_mc_test.jsonl"


def read_items(path: str, problems: ProblemLog) -> list[tuple[str, Any]]:
    """The items of a jsonl or JSON-list file, each with its fallback id (line number or list position).

    A jsonl line that is not valid JSON is reported as ``malformed_row`` with id ``line N`` and skipped.

    Raises:
        FileNotFoundError: the file does not exist.
        InputError: a JSON-list file that does not parse.
    """
    text = read_text(path).replace("\r\n", "\n")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(
                f"{path}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}; expected a JSON "
                "list or one JSON object per line (msrvtt_retrieval_mc_test.jsonl)"
            ) from None
        return [(str(position), item) for position, item in enumerate(data)]
    items: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((str(number - 1), json.loads(line)))
        except json.JSONDecodeError as error:
            problems.add(f"line {number}", "malformed_row", f"test: not valid JSON ({error.msg})")
    return items


def prepare_msrvtt_mc(annotations: str, videos: str, out: str) -> dict[str, Any]:
    """Convert MSRVTT-MC to a multiple-choice VideoQA manifest with a test split only (see the module docstring).

    Args:
        annotations: ``msrvtt_retrieval_mc_test.jsonl`` (or singularity's JSON list).
        videos: the MSR-VTT video folder (searched recursively).
        out: output folder.

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: the annotation file or the video folder does not exist (the message names it).
        InputError: a JSON-list file that does not parse.
    """
    problems = ProblemLog()
    items = read_items(annotations, problems)
    index = VideoIndex(require_folder(videos))
    builder = SplitBuilder("test", "multiple_choice", problems)
    for fallback_id, item in progress(items, desc="test questions", unit="questions"):
        if not isinstance(item, dict):
            builder.reject(fallback_id, "malformed_row", f"expected a JSON object, got {item!r}")
            continue
        question_id = str(item["qid"]) if item.get("qid") not in (None, "") else fallback_id
        name = str(item.get("clip_name") or item.get("video") or "")
        clip = os.path.splitext(os.path.basename(name))[0]
        video = index.find([name, f"{clip}.mp4"], stem=clip) if clip else None
        options = item["options"] if "options" in item else item.get("caption")
        builder.add(question_id, clip, video, str(item.get("question") or ""), item.get("answer"), options=options)
    protocol = (
        f"MSRVTT-MC (JSFusion), multiple-choice, test only: {os.path.basename(annotations)}, one item per video of "
        f"the full-split test range, {NUM_OPTIONS} candidate captions of which one is right (0-based answer). There "
        "is no train or val split and no question text. As in the release, it is scored with the dual-encoder "
        "similarity of the retrieval model (zero-shot, or after retrieval fine-tuning on MSR-VTT): the prediction "
        "is the argmax over the cosine similarities of the video and the candidates; accuracy over all items. Items "
        "left out are listed with their ids in problems.jsonl."
    )
    sources = {"test": os.path.abspath(annotations), "videos": os.path.abspath(videos)}
    splits = {"test": builder.records}
    return write_qa_manifest(
        out, "msrvtt_mc", "multiple_choice", splits, protocol, problems, sources, num_options=NUM_OPTIONS
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare msrvtt_mc --annotations FILE --videos DIR --out OUT``.

    Args:
        argv: arguments after ``prepare msrvtt_mc``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "msrvtt_mc",
        "MSRVTT-MC (test only): ClipBERT jsonl or singularity json + video folder -> OUT/test.jsonl, "
        "problems.jsonl, manifest.json.",
        f"{DEFAULT_FILE} (or singularity's json list)",
        "folder of video{N}.mp4 files (searched recursively)",
    )
    args = parser.parse_args(argv)
    manifest = prepare_msrvtt_mc(args.annotations, args.videos, args.out)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
