"""``clover-pl prepare msrvtt_qa``: MSRVTT-QA (open-ended) from the public json files to a VideoQA manifest.

Inputs (dataset card: data_modules/msrvtt_qa/README.md): ``train_qa.json``, ``val_qa.json`` and ``test_qa.json``,
each a JSON list of ``{"answer", "category_id", "id", "question", "video_id"}`` with an **integer** ``video_id`` N,
and the MSR-VTT video folder: ``video{N}.mp4`` flat, in ``TrainValVideo/`` + ``TestVideo/`` or anywhere below (found
recursively by stem; ``.mp4`` preferred). The official splits are kept as they are (train video0-6512, val
6513-7009, test 7010-9999).

Each question becomes one record: ``question_id`` = ``str(id)``, ``video_id`` = ``video{N}``, the question and
answer stripped, ``answer_type`` = the question's first word (what / who / how / where / when, else ``other``).
The answer vocabulary is the ``top_k`` most frequent train answers (1,500 in the release, ClipBERT's list).
"""

from __future__ import annotations

import os
from typing import Any

from clover_pl.data.qa_manifest import ProblemLog, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.qa_common import (
    OPEN_ENDED_SCORING,
    SplitBuilder,
    add_json_questions,
    converter_parser,
    manifest_sources,
    parse_index,
    read_json_list,
    report,
    require_folder,
    vocabulary_text,
)

FILES = {"train": "train_qa.json", "val": "val_qa.json", "test": "test_qa.json"}
"""The annotation file of each split."""
DEFAULT_TOP_K = 1500


def prepare_msrvtt_qa(annotations: str, videos: str, out: str, top_k: int | None = DEFAULT_TOP_K) -> dict[str, Any]:
    """Convert MSRVTT-QA to a VideoQA manifest (see the module docstring).

    Args:
        annotations: folder holding the files of :data:`FILES`.
        videos: the MSR-VTT video folder (searched recursively).
        out: output folder.
        top_k: answer vocabulary size (None: every train answer).

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: an annotation file or the video folder does not exist (the message names it).
        ValueError: an annotation file does not hold a JSON list, or ``top_k`` is below 1.
    """
    vocabulary = vocabulary_text(top_k)
    paths = {split: os.path.join(annotations, name) for split, name in FILES.items()}
    items = {split: read_json_list(path) for split, path in paths.items()}
    index = VideoIndex(require_folder(videos))
    problems = ProblemLog()

    def locate(raw: Any) -> tuple[str, str | None]:
        number = parse_index(raw)
        if number is None:
            return str(raw), None
        video_id = f"video{number}"
        return video_id, index.find([f"{video_id}.mp4"], stem=video_id)

    splits: dict[str, list[dict[str, Any]]] = {}
    for split, split_items in items.items():
        builder = SplitBuilder(split, "open_ended", problems)
        add_json_questions(builder, split_items, locate)
        splits[split] = builder.records
    protocol = (
        f"MSRVTT-QA open-ended. test is the standard test set: {FILES['test']} (videos video7010-9999); val is the "
        f"official {FILES['val']} (video6513-7009), for model selection; train is {FILES['train']}. "
        f"{vocabulary}; the release used 1,500. answer_type is the question's first word (what/who/how/where/when, "
        f"else other) for per-type accuracy. {OPEN_ENDED_SCORING}"
    )
    sources = manifest_sources(paths, videos=os.path.abspath(videos), top_k=top_k)
    return write_qa_manifest(out, "msrvtt_qa", "open_ended", splits, protocol, problems, sources, top_k=top_k)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare msrvtt_qa --annotations DIR --videos DIR --out OUT [--top-k 1500]``.

    Args:
        argv: arguments after ``prepare msrvtt_qa``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "msrvtt_qa",
        "MSRVTT-QA open-ended: {train,val,test}_qa.json + video folder -> OUT/{train,val,test}.jsonl, answers.json, "
        "problems.jsonl, manifest.json.",
        f"folder with {', '.join(FILES.values())}",
        "folder of video{N}.mp4 files (searched recursively)",
        DEFAULT_TOP_K,
    )
    args = parser.parse_args(argv)
    manifest = prepare_msrvtt_qa(args.annotations, args.videos, args.out, args.top_k or None)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
