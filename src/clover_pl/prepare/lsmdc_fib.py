"""``clover-pl prepare lsmdc_fib``: LSMDC 2016 movie fill-in-the-blank to a VideoQA manifest.

Inputs (dataset card: data_modules/lsmdc_fib/README.md): ``LSMDC16_annos_{training,val,test}_FIB.csv``, TAB
separated, no header, no quoting, 8 fields per row: the 5-field prefix ``CLIP_ID, START_ALIGNED, END_ALIGNED,
START_EXTRACTED, END_EXTRACTED``, then ``SENTENCE`` (complete), ``FILL_IN`` (the sentence with the blank written
``_____``) and ``BLANK`` (the removed word, the answer).

Each row becomes one record: ``question_id`` = ``{CLIP_ID}#{line}`` (a clip id is not unique; ``line`` is the
1-based line number in the file), ``video_id`` the clip id, ``question`` the ``FILL_IN`` text with its blank marker
(a run of three or more underscores) rewritten to ``[MASK]``, ``answer`` the ``BLANK`` word as written. A text with
no blank or several blanks is reported as ``blank_count``. The answer vocabulary is the ``top_k`` most frequent train
answers (908 in the release). Clip files are found as for LSMDC retrieval.
"""

from __future__ import annotations

import os
import re
from typing import Any

from clover_pl.data.qa_manifest import BLANK, ProblemLog, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.lsmdc_mc import PREFIX_FIELDS, find_clip
from clover_pl.prepare.qa_common import (
    OPEN_ENDED_SCORING,
    SplitBuilder,
    converter_parser,
    manifest_sources,
    read_tab_rows,
    report,
    require_file,
    require_folder,
    vocabulary_text,
)
from clover_pl.progress import progress

FILES = {
    "train": "LSMDC16_annos_training_FIB.csv",
    "val": "LSMDC16_annos_val_FIB.csv",
    "test": "LSMDC16_annos_test_FIB.csv",
}
"""The annotation file of each split."""
FIELDS_PER_LINE = PREFIX_FIELDS + 3
BLANK_MARKER = re.compile(r"_{3,}")
"""How the files write the blank (``_____``; any run of three or more underscores counts as one blank)."""
DEFAULT_TOP_K = 908


def mark_blank(text: str) -> str:
    """``FILL_IN`` text with each blank marker rewritten to ``[MASK]``: ``SOMEONE _____ .`` -> ``SOMEONE [MASK] .``."""
    return BLANK_MARKER.sub(BLANK, text)


def prepare_lsmdc_fib(annotations: str, videos: str, out: str, top_k: int | None = DEFAULT_TOP_K) -> dict[str, Any]:
    """Convert LSMDC fill-in-the-blank to a VideoQA manifest (see the module docstring).

    Args:
        annotations: folder holding the files of :data:`FILES`.
        videos: the LSMDC video folder (searched recursively).
        out: output folder.
        top_k: answer vocabulary size (None: every train answer).

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: an annotation file or the video folder does not exist (the message names it).
        ValueError: ``top_k`` is below 1.
    """
    vocabulary = vocabulary_text(top_k)
    paths = {split: require_file(os.path.join(annotations, name)) for split, name in FILES.items()}
    index = VideoIndex(require_folder(videos))
    problems = ProblemLog()
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, path in paths.items():
        builder = SplitBuilder(split, "fill_in_blank", problems)
        for line, fields in progress(list(read_tab_rows(path)), desc=f"{split} questions", unit="questions"):
            clip_id = fields[0].strip()
            question_id = f"{clip_id}#{line}"
            if len(fields) != FIELDS_PER_LINE or not clip_id:
                detail = f"line {line}: {len(fields)} TAB-separated fields, expected {FIELDS_PER_LINE}"
                builder.reject(question_id, "wrong_number_of_fields", detail)
                continue
            text, answer = mark_blank(fields[PREFIX_FIELDS + 1]), fields[PREFIX_FIELDS + 2]
            builder.add(question_id, clip_id, find_clip(index, clip_id), text, answer)
        splits[split] = builder.records
    protocol = (
        f"LSMDC 2016 movie fill-in-the-blank. test is the standard test set: {FILES['test']}; val is {FILES['val']}, "
        f"for model selection; train is {FILES['train']}. question is the FILL_IN sentence with its blank (_____) "
        f"rewritten to {BLANK}, exactly one per text; the model classifies the fused output at the {BLANK} position. "
        f"{vocabulary}; the release used 908. {OPEN_ENDED_SCORING}"
    )
    sources = manifest_sources(paths, videos=os.path.abspath(videos), top_k=top_k)
    return write_qa_manifest(out, "lsmdc_fib", "fill_in_blank", splits, protocol, problems, sources, top_k=top_k)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare lsmdc_fib --annotations DIR --videos DIR --out OUT [--top-k 908]``.

    Args:
        argv: arguments after ``prepare lsmdc_fib``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "lsmdc_fib",
        "LSMDC movie fill-in-the-blank: LSMDC16_annos_*_FIB.csv + video folder -> OUT/{train,val,test}.jsonl, "
        "answers.json, problems.jsonl, manifest.json.",
        f"folder with {', '.join(FILES.values())}",
        "folder of {movie}/{clip_id}.avi (searched recursively)",
        DEFAULT_TOP_K,
    )
    args = parser.parse_args(argv)
    manifest = prepare_lsmdc_fib(args.annotations, args.videos, args.out, args.top_k or None)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
