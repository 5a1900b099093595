"""``clover-pl prepare msvd_qa``: MSVD-QA (open-ended) from the public json files to a VideoQA manifest.

Inputs (dataset card: data_modules/msvd_qa/README.md): ``train_qa.json``, ``val_qa.json`` and ``test_qa.json``, each
a JSON list of ``{"answer", "id", "question", "video_id"}`` with an **integer, 1-based** ``video_id`` N;
``youtube_mapping.txt``, one ``{clip_name} vid{N}`` pair per line (space separated; clip names may start with ``-``
and contain ``_``, e.g. ``-4wsuPCjDBc_5_15``); and the ``YouTubeClips`` folder of ``{clip_name}.avi`` files
(searched recursively by stem when not directly inside). The official splits are kept as they are.

Each question becomes one record: ``question_id`` = ``str(id)``, ``video_id`` = the clip name, the question and
answer stripped, ``answer_type`` = the question's first word (what / who / how / where / when, else ``other``).
The answer vocabulary is the ``top_k`` most frequent train answers (1,000 in the release).
"""

from __future__ import annotations

import io
import os
from typing import Any

from clover_pl.data.qa_manifest import ProblemLog, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.errors import read_text
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
MAPPING_NAME = "youtube_mapping.txt"
DEFAULT_TOP_K = 1000


def read_mapping(path: str, problems: ProblemLog) -> dict[str, str]:
    """``vid{N}`` -> clip name from ``youtube_mapping.txt``; a line that is not two words is reported and skipped.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    mapping: dict[str, str] = {}
    with io.StringIO(read_text(path)) as stream:
        for number, line in enumerate(stream, start=1):
            words = line.split()
            if not words:
                continue
            if len(words) != 2:
                problems.add(f"{MAPPING_NAME}:{number}", "malformed_row", f"expected 'clip_name vidN', got {line!r}")
                continue
            mapping[words[1]] = words[0]
    return mapping


def prepare_msvd_qa(
    annotations: str, videos: str, out: str, mapping: str | None = None, top_k: int | None = DEFAULT_TOP_K
) -> dict[str, Any]:
    """Convert MSVD-QA to a VideoQA manifest (see the module docstring).

    Args:
        annotations: folder holding the files of :data:`FILES` (and ``youtube_mapping.txt`` unless ``mapping``).
        videos: the ``YouTubeClips`` folder (searched recursively).
        out: output folder.
        mapping: ``youtube_mapping.txt``; default ``annotations/youtube_mapping.txt``.
        top_k: answer vocabulary size (None: every train answer).

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: an annotation file, the mapping or the video folder does not exist (the message names
            it).
        ValueError: an annotation file does not hold a JSON list, or ``top_k`` is below 1.
    """
    vocabulary = vocabulary_text(top_k)
    mapping = mapping or os.path.join(annotations, MAPPING_NAME)
    paths = {split: os.path.join(annotations, name) for split, name in FILES.items()}
    items = {split: read_json_list(path) for split, path in paths.items()}
    problems = ProblemLog()
    clips = read_mapping(mapping, problems)
    index = VideoIndex(require_folder(videos))

    def locate(raw: Any) -> tuple[str, str | None]:
        number = parse_index(raw)
        clip = clips.get(f"vid{number}") if number is not None else None
        if clip is None:
            return (f"vid{number}" if number is not None else str(raw)), None
        return clip, index.find([f"{clip}.avi", os.path.join("YouTubeClips", f"{clip}.avi")], stem=clip)

    splits: dict[str, list[dict[str, Any]]] = {}
    for split, split_items in items.items():
        builder = SplitBuilder(split, "open_ended", problems)
        add_json_questions(builder, split_items, locate)
        splits[split] = builder.records
    protocol = (
        f"MSVD-QA open-ended. test is the standard test set: {FILES['test']}; val is the official {FILES['val']}, "
        f"for model selection; train is {FILES['train']}. Videos: video_id N (1-based) -> vidN -> {MAPPING_NAME} "
        f"-> {{clip}}.avi. {vocabulary}; the release used 1,000. answer_type is the question's first word "
        f"(what/who/how/where/when, else other) for per-type accuracy. {OPEN_ENDED_SCORING}"
    )
    sources = manifest_sources(paths, mapping=os.path.abspath(mapping), videos=os.path.abspath(videos), top_k=top_k)
    return write_qa_manifest(out, "msvd_qa", "open_ended", splits, protocol, problems, sources, top_k=top_k)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare msvd_qa --annotations DIR --videos DIR --out OUT [--top-k 1000]``.

    Args:
        argv: arguments after ``prepare msvd_qa``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "msvd_qa",
        "MSVD-QA open-ended: {train,val,test}_qa.json + youtube_mapping.txt + YouTubeClips -> "
        "OUT/{train,val,test}.jsonl, answers.json, problems.jsonl, manifest.json.",
        f"folder with {', '.join(FILES.values())}",
        "YouTubeClips folder of {clip}.avi (searched recursively)",
        DEFAULT_TOP_K,
    )
    parser.add_argument("--mapping", help=f"{MAPPING_NAME} (default: ANNOTATIONS/{MAPPING_NAME})")
    args = parser.parse_args(argv)
    manifest = prepare_msvd_qa(args.annotations, args.videos, args.out, args.mapping, args.top_k or None)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
