"""``clover-pl prepare tgif_qa``: TGIF-QA FrameQA, Action or Transition from the public csv files.

Inputs (dataset card: data_modules/tgif_qa/README.md): ``{Train,Test}_{task}_question.csv``. Despite the name they
are TAB separated, with a header row, CRLF line endings and csv quoting (a quoted cell with doubled quotes inside
reads as ``respond "no"``), so they are read with a csv reader, never split on TABs. Headers: FrameQA ``gif_name
question answer type vid_id key description``; Action and Transition ``gif_name question a1 a2 a3 a4 a5 answer
vid_id key``. The videos are ``{gif_name}.gif`` (a converted ``{gif_name}.mp4`` is preferred when both exist),
directly in the video folder or anywhere below it.

``question_id`` is the ``vid_id`` column (which holds a question id such as ``FRAMEQA1159``; repeats are reported as
``duplicate_id``), ``video_id`` the GIF name. FrameQA is open-ended with ``answer_type`` from ``type`` (0 object,
1 number, 2 color, 3 location) and a ``top_k`` vocabulary (1,540 in the release); Action and Transition are
multiple-choice over ``a1``-``a5`` with the csv's 0-based ``answer``. There is no official val split: only train and
test are written (the datamodule carves val from train).
"""

from __future__ import annotations

import csv
import os
from typing import Any

from clover_pl.data.qa_manifest import ProblemLog, QASetting, write_qa_manifest
from clover_pl.data.retrieval_manifest import VideoIndex
from clover_pl.prepare.errors import InputError, checked_rows
from clover_pl.prepare.qa_common import (
    NUM_OPTIONS,
    OPEN_ENDED_SCORING,
    SplitBuilder,
    converter_parser,
    manifest_sources,
    report,
    require_file,
    require_folder,
    vocabulary_text,
)
from clover_pl.progress import progress

TASKS = ("frameqa", "action", "transition")
FILES = {"train": "Train_{task}_question.csv", "test": "Test_{task}_question.csv"}
"""The annotation file of each split (``{task}`` is one of :data:`TASKS`)."""
OPTION_COLUMNS = tuple(f"a{number}" for number in range(1, NUM_OPTIONS + 1))
COLUMNS = {
    "frameqa": ("gif_name", "question", "answer", "type", "vid_id"),
    "action": ("gif_name", "question", *OPTION_COLUMNS, "answer", "vid_id"),
    "transition": ("gif_name", "question", *OPTION_COLUMNS, "answer", "vid_id"),
}
"""The columns each task's converter reads (the files have more)."""
FRAMEQA_TYPES = {"0": "object", "1": "number", "2": "color", "3": "location"}
DEFAULT_TOP_K = 1540


def read_question_csv(path: str, columns: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and rows of a TGIF-QA question file (TAB separated, csv quoting, any line ending).

    Returns:
        ``(header, [(line_number, cells), ...])``, blank rows left out; a row may have more or fewer cells than the
        header.

    Raises:
        FileNotFoundError: the file does not exist.
        InputError: the file is not a readable TSV, or its header lacks one of ``columns``.
    """
    with open(require_file(path), encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream, delimiter="\t")
        checked = checked_rows(path, reader)
        header = [name.strip() for name in next(checked, [])]
        rows = [(reader.line_num, cells) for cells in checked if any(cell.strip() for cell in cells)]
    missing = [name for name in columns if name not in header]
    if missing:
        raise InputError(f"{path}: the header lacks {', '.join(missing)} (header: {' '.join(header)})")
    return header, rows


def prepare_tgif_qa(
    task: str, annotations: str, videos: str, out: str, top_k: int | None = DEFAULT_TOP_K
) -> dict[str, Any]:
    """Convert one TGIF-QA task to a VideoQA manifest (see the module docstring).

    Args:
        task: ``frameqa``, ``action`` or ``transition``.
        annotations: folder holding ``{Train,Test}_{task}_question.csv``.
        videos: the GIF folder (searched recursively).
        out: output folder.
        top_k: FrameQA answer vocabulary size (None: every train answer); unused by Action and Transition.

    Returns:
        The manifest (dataset ``tgif_frameqa``, ``tgif_action`` or ``tgif_transition``).

    Raises:
        FileNotFoundError: an annotation file or the video folder does not exist (the message names it).
        ValueError: an unknown task, a header without the task's columns, or ``top_k`` below 1.
    """
    if task not in TASKS:
        raise ValueError(f"unknown TGIF-QA task {task!r}; valid tasks: {', '.join(TASKS)}")
    open_ended = task == "frameqa"
    vocabulary = vocabulary_text(top_k) if open_ended else ""
    paths = {split: os.path.join(annotations, name.format(task=task)) for split, name in FILES.items()}
    tables = {split: read_question_csv(path, COLUMNS[task]) for split, path in paths.items()}
    index = VideoIndex(require_folder(videos))
    problems = ProblemLog()
    setting: QASetting = "open_ended" if open_ended else "multiple_choice"
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, (header, rows) in tables.items():
        builder = SplitBuilder(split, setting, problems)
        file = os.path.basename(paths[split])
        for line, cells in progress(rows, desc=f"{task} {split} questions", unit="questions"):
            if len(cells) != len(header):
                question_id = _cell(header, cells, "vid_id") or f"{file}:{line}"
                detail = f"{file}:{line}: {len(cells)} fields, the header has {len(header)}"
                builder.reject(question_id, "wrong_number_of_fields", detail)
                continue
            row = dict(zip(header, cells, strict=True))
            question_id = row["vid_id"].strip() or f"{file}:{line}"
            gif = row["gif_name"].strip()
            video = index.find([f"{gif}.mp4"], stem=gif) if gif else None
            if open_ended:
                answer_type = FRAMEQA_TYPES.get(row["type"].strip(), "other")
                builder.add(question_id, gif, video, row["question"], row["answer"], answer_type)
            else:
                options = [row[column] for column in OPTION_COLUMNS]
                builder.add(question_id, gif, video, row["question"], row["answer"], options=options)
        splits[split] = builder.records
    dataset = f"tgif_{task}"
    scoring = (
        f"answer_type is the type column (0 object, 1 number, 2 color, 3 location). {vocabulary}; the release used "
        f"1,540 (ClipBERT's list was built on train+val). {OPEN_ENDED_SCORING}"
        if open_ended
        else f"Each question has {NUM_OPTIONS} candidates a1-a5 and the csv's 0-based answer index; accuracy is the "
        "argmax over the candidates' scores. Questions left out are listed with their ids in problems.jsonl."
    )
    protocol = (
        f"TGIF-QA {task}. test is the standard test set: {os.path.basename(paths['test'])}; train is "
        f"{os.path.basename(paths['train'])}. There is no official val split: carve one from train for model "
        f"selection (the datamodule does; hcrn holds out 10%), never select on test. {scoring}"
    )
    sources = manifest_sources(paths, task=task, videos=os.path.abspath(videos), top_k=top_k if open_ended else None)
    if open_ended:
        return write_qa_manifest(out, dataset, setting, splits, protocol, problems, sources, top_k=top_k)
    return write_qa_manifest(out, dataset, setting, splits, protocol, problems, sources, num_options=NUM_OPTIONS)


def _cell(header: list[str], cells: list[str], column: str) -> str:
    position = header.index(column)
    return cells[position].strip() if position < len(cells) else ""


def main(argv: list[str] | None = None) -> int:
    """Command line: ``clover-pl prepare tgif_qa --task frameqa --annotations DIR --videos DIR --out OUT``.

    Args:
        argv: arguments after ``prepare tgif_qa``.

    Returns:
        The exit status (0).
    """
    parser = converter_parser(
        "tgif_qa",
        "TGIF-QA FrameQA (open-ended) or Action / Transition (multiple-choice): {Train,Test}_{task}_question.csv + "
        "GIF folder -> OUT/{train,test}.jsonl, problems.jsonl, manifest.json (and answers.json for frameqa).",
        "folder with {Train,Test}_{task}_question.csv",
        "folder of {gif_name}.gif (or .mp4; searched recursively)",
        DEFAULT_TOP_K,  # used by frameqa only
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="which TGIF-QA task")
    args = parser.parse_args(argv)
    manifest = prepare_tgif_qa(args.task, args.annotations, args.videos, args.out, args.top_k or None)
    print(report(manifest, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
