"""What the VideoQA converters share: input checks, the per-split record builder, and the printed report.

Every converter turns raw rows into the records of :mod:`clover_pl.data.qa_manifest` through a
:class:`SplitBuilder`, which checks each row in a fixed order and reports the first fault it finds to a
:class:`~clover_pl.data.qa_manifest.ProblemLog` with the question's id, so one bad row never stops a conversion:

1. ``duplicate_id``: the id was already used in this split (the first row with it is the one kept);
2. ``empty_question`` (open-ended and fill-in-the-blank), ``blank_count`` (fill-in-the-blank: not exactly one
   ``[MASK]``);
3. ``empty_answer`` (open-ended and fill-in-the-blank); ``wrong_number_of_options``, ``empty_option`` and
   ``answer_out_of_range`` (multiple-choice);
4. ``missing_video``: no file for the question's video.

Converters add their own reasons for rows they cannot read at all (``malformed_row``, ``wrong_number_of_fields``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from clover_pl.data.qa_manifest import BLANK, PROBLEMS_NAME, ProblemLog, qa_summary_line
from clover_pl.prepare.errors import InputError, read_json, read_text, require_file, require_folder  # noqa: F401 (re-exported)
from clover_pl.progress import progress

QUESTION_WORDS = ("what", "who", "how", "where", "when")
"""The question types of MSRVTT-QA and MSVD-QA (the first word of the question); any other word is ``other``."""
NUM_OPTIONS = 5
"""Candidates per multiple-choice question in every benchmark of the paper."""

OPEN_ENDED_SCORING = (
    "Accuracy is the exact match of the predicted vocabulary entry with the answer string; a val or test question "
    "whose answer is outside the vocabulary stays in the denominator and counts as wrong (manifest "
    "answers.coverage is the best reachable accuracy). Questions left out are listed with their ids in "
    "problems.jsonl."
)
"""The scoring sentence of every open-ended and fill-in-the-blank protocol."""


def read_json_list(path: str) -> list[Any]:
    """The items of a JSON file that holds a list (``{split}_qa.json``).

    Raises:
        FileNotFoundError: the file does not exist.
        InputError: the file is not valid JSON (a truncated download) or does not hold a list.
    """
    data = read_json(path, "a JSON list of questions")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    return data


def read_tab_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """The TAB-separated fields of each non-blank line of a headerless file (LSMDC), no quoting interpreted.

    Yields:
        ``(line_number, fields)``, line numbers 1-based.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    with io.StringIO(read_text(path), newline="") as stream:
        for number, line in enumerate(stream, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield number, text.split("\t")


def question_word(question: str) -> str:
    """The question type from the first word: one of :data:`QUESTION_WORDS`, else ``"other"``."""
    match = re.match(r"\s*([a-z]+)", question.lower())
    word = match.group(1) if match else ""
    return word if word in QUESTION_WORDS else "other"


def vocabulary_text(top_k: int | None) -> str:
    """How a protocol paragraph names the answer vocabulary; checks ``top_k``.

    Raises:
        ValueError: ``top_k`` is neither None nor positive.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be None (every train answer) or >= 1, got {top_k}")
    choice = "every train answer" if top_k is None else f"the {top_k} most frequent train answers"
    return f"The answer vocabulary is {choice} (most frequent first, ties alphabetical; train split only)"


def manifest_sources(paths: dict[str, str], **inputs: Any) -> dict[str, Any]:
    """The manifest's ``sources``: each split's annotation file as an absolute path, then ``inputs`` in order."""
    sources: dict[str, Any] = {split: os.path.abspath(path) for split, path in paths.items()}
    sources.update(inputs)
    return sources


def parse_index(value: Any) -> int | None:
    """A non-negative integer from an int or a string of digits (``7``, ``"7"``, ``" 7 "``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class SplitBuilder:
    """Collects the records of one split; each row it refuses goes to ``problems`` with its id and reason.

    Args:
        split: the split's name (``train``, ``val``, ``test``), written into each problem's detail.
        setting: ``open_ended``, ``multiple_choice`` or ``fill_in_blank``.
        problems: the log shared by the splits of one prepared folder.
        num_options: candidates per multiple-choice question.
    """

    def __init__(self, split: str, setting: str, problems: ProblemLog, num_options: int = NUM_OPTIONS) -> None:
        self.split = split
        self.setting = setting
        self.problems = problems
        self.num_options = num_options
        self.records: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def reject(self, question_id: str, reason: str, detail: str) -> None:
        """Report one input of this split as left out."""
        self.problems.add(question_id, reason, f"{self.split}: {detail}")

    def add(
        self,
        question_id: str,
        video_id: str,
        video: str | None,
        question: str,
        answer: Any,
        answer_type: str | None = None,
        options: Any = None,
    ) -> bool:
        """Check one question and keep it as a record, or report why not.

        Args:
            question_id: the question's id, unique within the split.
            video_id: the video's id (shared by the questions on one video).
            video: the video file, or None when none was found.
            question: the question (stripped here); fill-in-the-blank: the text with its ``[MASK]``; may be empty
                for multiple-choice.
            answer: open-ended and fill-in-the-blank: the answer string (stripped here); multiple-choice: the
                0-based option index (an int or a string of digits).
            answer_type: the category for per-type accuracy, or None.
            options: multiple-choice: the candidate strings (stripped here).

        Returns:
            Whether the record was kept.
        """
        if question_id in self._seen:
            self.reject(question_id, "duplicate_id", "the id was already used in this split; the first is kept")
            return False
        self._seen.add(question_id)
        question = (question if isinstance(question, str) else "").strip()
        record: dict[str, Any] = {"question_id": question_id, "video_id": video_id, "video": video}
        problem = self._question_problem(question) or self._answer_problem(answer, options, record)
        if problem is None and video is None:
            problem = ("missing_video", f"no file for video {video_id!r}")
        if problem is not None:
            self.reject(question_id, *problem)
            return False
        record.update(start=None, end=None, question=question, answer_type=answer_type)
        if self.setting != "multiple_choice":
            record["answer"] = answer.strip()
        self.records.append(record)
        return True

    def _question_problem(self, question: str) -> tuple[str, str] | None:
        if self.setting == "multiple_choice":
            return None
        if not question:
            return "empty_question", "the question is empty"
        if self.setting == "fill_in_blank" and question.count(BLANK) != 1:
            return "blank_count", f"needs exactly one blank, found {question.count(BLANK)}: {question!r}"
        return None

    def _answer_problem(self, answer: Any, options: Any, record: dict[str, Any]) -> tuple[str, str] | None:
        if self.setting != "multiple_choice":
            if not isinstance(answer, str) or not answer.strip():
                return "empty_answer", f"the answer is empty ({answer!r})"
            return None
        if not isinstance(options, list) or len(options) != self.num_options:
            count = len(options) if isinstance(options, list) else 0
            return "wrong_number_of_options", f"{count} candidates, expected {self.num_options}: {options!r}"
        texts = [option.strip() if isinstance(option, str) else "" for option in options]
        if not all(texts):
            return "empty_option", f"option {texts.index('')} is empty"
        index = parse_index(answer)
        if index is None or index >= len(texts):
            return "answer_out_of_range", f"answer {answer!r} is not an option index in [0, {len(texts)})"
        record.update(options=texts, answer=index)
        return None


def add_json_questions(
    builder: SplitBuilder, items: list[Any], locate: Callable[[Any], tuple[str, str | None]]
) -> None:
    """Add the questions of a ``{split}_qa.json`` list (MSRVTT-QA, MSVD-QA) to ``builder``.

    Args:
        builder: the split's builder (open-ended).
        items: ``{"id", "question", "answer", "video_id"}`` objects; ``question_id`` is ``str(id)`` and
            ``answer_type`` the question's first word (:func:`question_word`).
        locate: raw ``video_id`` -> (the video's id, its file or None).
    """
    for position, item in enumerate(progress(items, desc=f"{builder.split} questions", unit="questions")):
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            builder.reject(f"{builder.split}[{position}]", "malformed_row", f"not an object with an id: {item!r}")
            continue
        question = str(item.get("question") or "")
        answer = "" if item.get("answer") is None else str(item["answer"])
        video_id, video = locate(item.get("video_id"))
        builder.add(str(item["id"]), video_id, video, question, answer, question_word(question))


def converter_parser(
    name: str, description: str, annotations_help: str, videos_help: str, top_k: int | None = None
) -> argparse.ArgumentParser:
    """The command line every VideoQA converter shares.

    ``--annotations``, ``--videos``, ``--out`` and, for the settings with an answer vocabulary, ``--top-k``
    (default ``top_k``; 0 keeps every train answer).

    Args:
        name: the dataset name after ``clover-pl prepare``.
        description: what the converter reads and writes.
        annotations_help: what ``--annotations`` names.
        videos_help: what ``--videos`` names.
        top_k: the default vocabulary size; None: no ``--top-k`` option.
    """
    parser = argparse.ArgumentParser(prog=f"clover-pl prepare {name}", description=description)
    parser.add_argument("--annotations", required=True, help=annotations_help)
    parser.add_argument("--videos", required=True, help=videos_help)
    parser.add_argument("--out", required=True, help="output folder")
    if top_k is not None:
        parser.add_argument(
            "--top-k", type=int, default=top_k, help=f"answer vocabulary size (default {top_k}; 0: all)"
        )
    return parser


def report(manifest: dict[str, Any], out: str) -> str:
    """What ``clover-pl prepare`` prints: the summary line, then the problems by reason with their first ids."""
    problems = ProblemLog()
    with open(os.path.join(out, PROBLEMS_NAME), encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                entry = json.loads(line)
                problems.add(entry["id"], entry["reason"], entry.get("detail", ""))
    summary = problems.summary()
    return qa_summary_line(manifest, out) + (f"\nproblems ({PROBLEMS_NAME}):\n{summary}" if summary else "")
