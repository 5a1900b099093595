"""``clover-pl prepare lsmdc_mc``: LSMDC 2016 movie multiple-choice to a VideoQA manifest.

Inputs (dataset card: data_modules/lsmdc_mc/README.md):
``LSMDC16_multiple_choice_{train,valid,test_randomized}.csv``, TAB separated, no header, no quoting. Every row
starts with the 5-field prefix ``CLIP_ID, START_ALIGNED, END_ALIGNED, START_EXTRACTED, END_EXTRACTED``. Train and
valid rows have 10 fields: the prefix, the correct sentence, then 4 distractors, so the right answer is always the
first candidate in the file; the converter shuffles each question's candidates with a seeded hash of its id
(deterministic, independent of library versions) and records where the right sentence went. Test rows have 11
fields: the prefix, 5 sentences already in random order and the **1-based** ``ANSWER_INDEX``, stored 0-based.

``question_id`` is ``{CLIP_ID}#{line}`` (a clip id is not unique; ``line`` is the 1-based line number in the file),
``video_id`` the clip id, ``question`` ``""`` (LSMDC-MC has no question). A clip's file is
``VIDEOS/{movie}/{clip_id}.avi`` with ``movie = clip_id.rsplit('_', 1)[0]``, else found by stem anywhere below.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from clover_pl.data.qa_manifest import ProblemLog, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.lsmdc import movie_of
from clover_pl.prepare.qa_common import (
    NUM_OPTIONS,
    SplitBuilder,
    converter_parser,
    manifest_sources,
    parse_index,
    read_tab_rows,
    report,
    require_file,
    require_folder,
)
from clover_pl.progress import progress

FILES = {
    "train": "LSMDC16_multiple_choice_train.csv",
    "val": "LSMDC16_multiple_choice_valid.csv",
    "test": "LSMDC16_multiple_choice_test_randomized.csv",
}
"""The annotation file of each split."""
PREFIX_FIELDS = 5
"""CLIP_ID and the four timestamps that start every LSMDC row."""


def shuffled_order(question_id: str, seed: int, count: int = NUM_OPTIONS) -> list[int]:
    """A permutation of ``range(count)`` fixed by ``sha256(f"{seed}:{question_id}:{i}")``: a seeded, order-free shuffle.

    Returns:
        ``order``: the shuffled candidates are ``[candidates[i] for i in order]``.
    """
    return sorted(range(count), key=lambda i: hashlib.sha256(f"{seed}:{question_id}:{i}".encode()).hexdigest())


def find_clip(index: VideoIndex, clip_id: str) -> str | None:
    """The file of an LSMDC clip: ``{movie}/{clip_id}.avi``, ``{clip_id}.avi``, else any file with the clip's stem."""
    file = f"{clip_id}.avi"
    return index.find([os.path.join(movie_of(clip_id), file), file], stem=clip_id) if clip_id else None


def prepare_lsmdc_mc(annotations: str, videos: str, out: str, seed: int = 0) -> dict[str, Any]:
    """Convert LSMDC multiple-choice to a VideoQA manifest (see the module docstring).

    Args:
        annotations: folder holding the files of :data:`FILES`.
        videos: the LSMDC video folder (searched recursively).
        out: output folder.
        seed: seed of the train and val candidate shuffle.

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: an annotation file or the video folder does not exist (the message names it).
    """
    paths = {split: require_file(os.path.join(annotations, name)) for split, name in FILES.items()}
    index = VideoIndex(require_folder(videos))
    problems = ProblemLog()
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, path in paths.items():
        builder = SplitBuilder(split, "multiple_choice", problems)
        expected = PREFIX_FIELDS + NUM_OPTIONS + (1 if split == "test" else 0)
        for line, fields in progress(list(read_tab_rows(path)), desc=f"{split} questions", unit="questions"):
            clip_id = fields[0].strip()
            question_id = f"{clip_id}#{line}"
            if len(fields) != expected or not clip_id:
                detail = f"line {line}: {len(fields)} TAB-separated fields, expected {expected}"
                builder.reject(question_id, "wrong_number_of_fields", detail)
                continue
            candidates = fields[PREFIX_FIELDS : PREFIX_FIELDS + NUM_OPTIONS]
            if split == "test":
                position = parse_index(fields[-1])
                if position is None or not 1 <= position <= NUM_OPTIONS:
                    detail = f"line {line}: ANSWER_INDEX {fields[-1]!r} is not in 1..{NUM_OPTIONS}"
                    builder.reject(question_id, "answer_out_of_range", detail)
                    continue
                options, answer = candidates, position - 1
            else:
                order = shuffled_order(question_id, seed)
                options, answer = [candidates[i] for i in order], order.index(0)
            builder.add(question_id, clip_id, find_clip(index, clip_id), "", answer, options=options)
        splits[split] = builder.records
    protocol = (
        f"LSMDC 2016 movie multiple-choice. test is the standard test set: {FILES['test']} (candidates in the "
        f"file's order, the 1-based ANSWER_INDEX stored 0-based); val is {FILES['val']}, for model selection; train "
        f"is {FILES['train']}. In train and valid the right sentence is always first in the file, so each question's "
        f"{NUM_OPTIONS} candidates are shuffled by the sha256 of 'seed:question_id:i' (seed {seed}) and answer is "
        "where the right sentence went. There is no question text. Accuracy is the argmax over the candidates' "
        "scores. Rows without the expected number of TAB-separated fields are left out; everything left out is "
        "listed with its id in problems.jsonl."
    )
    sources = manifest_sources(paths, videos=os.path.abspath(videos), seed=seed)
    return write_qa_manifest(
        out, "lsmdc_mc", "multiple_choice", splits, protocol, problems, sources, num_options=NUM_OPTIONS
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare lsmdc_mc --annotations DIR --videos DIR --out OUT [--seed 0]``.

    Args:
        argv: arguments after ``prepare lsmdc_mc``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "lsmdc_mc",
        "LSMDC movie multiple-choice: LSMDC16_multiple_choice_*.csv + video folder -> OUT/{train,val,test}.jsonl, "
        "problems.jsonl, manifest.json.",
        f"folder with {', '.join(FILES.values())}",
        "folder of {movie}/{clip_id}.avi (searched recursively)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val candidate shuffle")
    args = parser.parse_args(argv)
    manifest = prepare_lsmdc_mc(args.annotations, args.videos, args.out, args.seed)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
