"""The VideoQA manifest: a prepared question-answering benchmark as JSONL splits plus ``manifest.json``.

A folder ``OUT`` made by ``clover-pl prepare msrvtt_qa | msvd_qa | tgif_qa | msrvtt_mc | lsmdc_mc | lsmdc_fib |
synthetic_qa`` holds ``OUT/{train,val,test}.jsonl`` (a split may be absent), ``OUT/manifest.json``, for the
open-ended and fill-in-the-blank settings ``OUT/answers.json`` (the answer vocabulary: a JSON list, the label of an
answer is its position), and ``OUT/problems.jsonl`` (every input left out, with its id and reason). Each JSONL line
is one question::

    {"question_id": "7010-3", "video_id": "video7010", "video": "videos/video7010.mp4", "start": null, "end": null,
     "question": "what is a man doing?", "answer": "sing", "answer_type": "what"}

- ``question``: open-ended: the question; fill-in-the-blank: the sentence with exactly one ``[MASK]``;
  multiple-choice: the question, possibly ``""`` (LSMDC-MC has none);
- ``options``: multiple-choice only, exactly ``num_options`` non-empty candidates;
- ``answer``: open-ended and fill-in-the-blank: the answer string (it may be outside the vocabulary: such a test
  question counts as wrong); multiple-choice: the 0-based index of the right option;
- ``answer_type``: a category for per-type accuracy (TGIF-FrameQA object/number/color/location, MSRVTT-QA's first
  question word) or null;
- ``video``, ``start``, ``end``: as in the retrieval manifest (path relative to ``OUT`` or absolute; seconds).

``manifest.json`` holds ``dataset``, ``task`` (``"video_qa"``), ``setting`` (:data:`SETTINGS`), ``num_options``
(multiple-choice), ``answers`` (``{"file", "size", "top_k", "coverage": {split: fraction of its questions whose
answer is in the vocabulary}}``, open-ended and fill-in-the-blank), ``splits`` (``{split: {"file", "questions",
"videos", "answer_types"}}``), ``protocol``, ``dropped`` (``{reason: count}``), ``problems`` (the file and count),
``sources`` and ``version``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal, get_args

import clover_pl
from clover_pl.data.jsonl import read_checked_jsonl, stored_record
from clover_pl.data.retrieval_manifest import MANIFEST_NAME
from clover_pl.files import write_text_atomic

QASetting = Literal["open_ended", "multiple_choice", "fill_in_blank"]
"""The three VideoQA settings of the spec (table 5.1)."""
SETTINGS: tuple[QASetting, ...] = get_args(QASetting)
"""Every :data:`QASetting`, in the spec's order."""
BLANK = "[MASK]"
"""How a fill-in-the-blank text marks its blank (converters rewrite the datasets' own markers to it)."""
ANSWERS_NAME = "answers.json"
PROBLEMS_NAME = "problems.jsonl"
QA_SPLITS = ("train", "val", "test")
FIELDS = ("question_id", "video_id", "video", "start", "end", "question", "answer", "answer_type")


class ProblemLog:
    """What a converter left out: a count per reason and every (id, reason, detail), for ``problems.jsonl``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.entries: list[dict[str, str]] = []

    def add(self, item_id: str, reason: str, detail: str = "") -> None:
        """Record that input ``item_id`` was left out for ``reason`` (a short snake_case word)."""
        self.counts[reason] += 1
        self.entries.append({"id": str(item_id), "reason": reason, "detail": detail})

    def summary(self, limit: int = 5) -> str:
        """Counts by reason and the first ``limit`` ids of each, one line per reason."""
        lines = []
        for reason, count in sorted(self.counts.items()):
            ids = [entry["id"] for entry in self.entries if entry["reason"] == reason][:limit]
            more = f" (+{count - len(ids)} more)" if count > len(ids) else ""
            lines.append(f"  {reason}: {count}: {', '.join(ids)}{more}")
        return "\n".join(lines)


def build_answer_vocabulary(answers: Iterable[str], top_k: int | None) -> list[str]:
    """The ``top_k`` most frequent answers (all when None), most frequent first, ties in alphabetical order.

    Args:
        answers: the training split's answers, one per question (repeats count).
        top_k: vocabulary size (1500 MSRVTT-QA, 1000 MSVD-QA, 1540 TGIF-FrameQA, 908 LSMDC-FiB in the release).

    Returns:
        The vocabulary; an answer's label is its position.
    """
    counts = Counter(answers)
    ranked = sorted(counts, key=lambda answer: (-counts[answer], answer))
    return ranked if top_k is None else ranked[:top_k]


def answer_coverage(records: list[dict[str, Any]], vocabulary: Iterable[str]) -> float:
    """Fraction of the questions whose answer is in the vocabulary (1.0 for an empty split)."""
    known = set(vocabulary)
    return sum(record["answer"] in known for record in records) / len(records) if records else 1.0


def record_problem(record: Any, setting: str, num_options: int | None = None) -> str | None:
    """What is wrong with one question record, or None if it follows the line contract of the setting."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [name for name in FIELDS if name not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for name in ("question_id", "video_id", "video"):
        if not isinstance(record[name], str) or not record[name].strip():
            return f"{name} must be a non-empty string, got {record[name]!r}"
    if not isinstance(record["question"], str):
        return f"question must be a string, got {record['question']!r}"
    for bound in ("start", "end"):
        value = record[bound]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
        ):
            return f"{bound} must be null or a finite number >= 0 (seconds), got {value!r}"
    answer = record["answer"]
    if setting == "multiple_choice":
        options = record.get("options")
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            return f"options must be a list of non-empty strings, got {options!r}"
        if num_options is not None and len(options) != num_options:
            return f"{len(options)} options, expected {num_options}"
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
            return f"answer must be an option index in [0, {len(options)}), got {answer!r}"
        return None
    if setting not in SETTINGS:
        return f"unknown setting {setting!r}; valid settings: {', '.join(SETTINGS)}"
    if not isinstance(answer, str) or not answer.strip():
        return f"answer must be a non-empty string, got {answer!r}"
    if not record["question"].strip():
        return "empty question"
    if setting == "fill_in_blank" and record["question"].count(BLANK) != 1:
        return f"a fill-in-the-blank text needs exactly one {BLANK}, found {record['question'].count(BLANK)}"
    return None


def write_qa_manifest(
    out: str,
    dataset: str,
    setting: QASetting,
    splits: dict[str, list[dict[str, Any]]],
    protocol: str,
    problems: ProblemLog,
    sources: dict[str, Any],
    top_k: int | None = None,
    num_options: int | None = None,
) -> dict[str, Any]:
    """Write the splits, the answer vocabulary (from ``splits["train"]`` only), problems and manifest, atomically.

    Args:
        out: the output folder (created).
        dataset: the benchmark's name (``msrvtt_qa``, ``tgif_frameqa``, ...).
        setting: one of :data:`SETTINGS`.
        splits: ``{split: [record, ...]}`` with the fields of the module docstring, in the order to store.
        protocol: one paragraph: the standard splits, the vocabulary, how val was made, how the benchmark scores.
        problems: what the converter left out (each with its id).
        sources: the input paths and options, as given to the converter.
        top_k: answer vocabulary size for the open-ended and fill-in-the-blank settings (None: every train answer).
        num_options: candidates per multiple-choice question (5 in every benchmark of the paper).

    Returns:
        The manifest.

    Raises:
        ValueError: a record breaks the line contract or a question id repeats within a split (converters report
            bad inputs through ``problems`` instead of passing them here), or an open-ended set has no train split.
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; valid settings: {', '.join(SETTINGS)}")
    os.makedirs(out, exist_ok=True)
    root = os.path.abspath(out)
    entries: dict[str, dict[str, Any]] = {}
    for split, records in splits.items():
        lines, seen = [], set()
        for index, record in enumerate(records):
            problem = record_problem(record, setting, num_options)
            if problem is None and record["question_id"] in seen:
                problem = "repeated question_id"
            if problem:
                raise ValueError(f"{dataset} split {split!r}, record {index}: {problem}: {record!r}")
            seen.add(record["question_id"])
            lines.append(json.dumps(stored_record(record, root, FIELDS), ensure_ascii=False) + "\n")
        file = f"{split}.jsonl"
        write_text_atomic(os.path.join(out, file), "".join(lines))
        types = Counter(str(record["answer_type"]) for record in records if record["answer_type"] is not None)
        entries[split] = {
            "file": file,
            "questions": len(records),
            "videos": len({record["video_id"] for record in records}),
            "answer_types": dict(sorted(types.items())),
        }
    for split in QA_SPLITS:
        stale = os.path.join(out, f"{split}.jsonl")
        if split not in splits and os.path.exists(stale):
            os.remove(stale)
    manifest: dict[str, Any] = {"dataset": dataset, "task": "video_qa", "setting": setting}
    if setting == "multiple_choice":
        manifest["num_options"] = num_options
    else:
        if "train" not in splits:
            raise ValueError(f"{dataset}: the {setting} answer vocabulary is built from a train split; none given")
        vocabulary = build_answer_vocabulary((record["answer"] for record in splits["train"]), top_k)
        write_text_atomic(os.path.join(out, ANSWERS_NAME), json.dumps(vocabulary, ensure_ascii=False) + "\n")
        manifest["answers"] = {
            "file": ANSWERS_NAME,
            "size": len(vocabulary),
            "top_k": top_k,
            "coverage": {split: round(answer_coverage(records, vocabulary), 6) for split, records in splits.items()},
        }
    problem_lines = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in problems.entries)
    write_text_atomic(os.path.join(out, PROBLEMS_NAME), problem_lines)
    manifest.update(
        splits=entries,
        protocol=protocol,
        dropped={reason: int(count) for reason, count in sorted(problems.counts.items()) if count},
        problems={"file": PROBLEMS_NAME, "count": len(problems.entries)},
        sources=sources,
        version=clover_pl.__version__,
    )
    write_text_atomic(os.path.join(out, MANIFEST_NAME), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_qa_manifest(out: str) -> dict[str, Any]:
    """The manifest of a prepared VideoQA folder, checked to be one."""
    path = os.path.join(out, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: prepare the benchmark with `clover-pl prepare <dataset>` first")
    with open(path, encoding="utf-8") as stream:
        manifest = json.load(stream)
    if manifest.get("task") != "video_qa" or manifest.get("setting") not in SETTINGS:
        raise ValueError(f"{path} is not a VideoQA manifest (task {manifest.get('task')!r}); see clover-pl prepare")
    return manifest


def read_answer_vocabulary(out: str) -> list[str]:
    """The answer vocabulary of a prepared open-ended or fill-in-the-blank folder (label = position)."""
    manifest = read_qa_manifest(out)
    if "answers" not in manifest:
        raise ValueError(f"{out}: a {manifest['setting']} benchmark has no answer vocabulary")
    with open(os.path.join(out, manifest["answers"]["file"]), encoding="utf-8") as stream:
        return json.load(stream)


def read_qa_split(out: str, split: str) -> list[dict[str, Any]]:
    """Read and check one split of a prepared VideoQA folder.

    Returns:
        One dict per question, in file order, with ``video`` made absolute and ``start``/``end`` as float or None.

    Raises:
        FileNotFoundError: the split does not exist.
        ValueError: a malformed line; the message starts with ``path:line:``.
    """
    manifest = read_qa_manifest(out)
    if split not in manifest["splits"]:
        raise FileNotFoundError(f"{out}: no {split!r} split (the manifest lists {sorted(manifest['splits'])})")
    path = os.path.join(out, manifest["splits"][split]["file"])
    setting, num_options = manifest["setting"], manifest.get("num_options")
    return read_checked_jsonl(path, out, lambda record: record_problem(record, setting, num_options), "question_id")


def qa_summary_line(manifest: dict[str, Any], out: str) -> str:
    """One line: questions per split, vocabulary size and coverage, drops by reason."""
    splits = ", ".join(
        f"{split} {entry['questions']} questions / {entry['videos']} videos"
        for split, entry in manifest["splits"].items()
    )
    answers = ""
    if "answers" in manifest:
        coverage = ", ".join(f"{split} {100 * value:.1f}%" for split, value in manifest["answers"]["coverage"].items())
        answers = f"; {manifest['answers']['size']} answers (coverage {coverage})"
    drops = ", ".join(f"{reason} {count}" for reason, count in manifest["dropped"].items()) or "none"
    return f"{manifest['dataset']} {manifest['setting']} in {out}: {splits}{answers}; dropped: {drops}"
