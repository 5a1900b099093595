"""JSONL split files of the prepared downstream datasets (retrieval and VideoQA): atomic writes, checked reads."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

# Re-exported for the callers that still import it from here; new code imports it from clover_pl.files.
from clover_pl.files import write_text_atomic as write_text_atomic


def stored_record(record: dict[str, Any], root: str, fields: Iterable[str]) -> dict[str, Any]:
    """The record as a line stores it: ``fields`` first, ``video`` relative to ``root`` when it lies inside it."""
    video = record["video"]
    if os.path.isabs(video) and os.path.commonpath([root, os.path.abspath(video)]) == root:
        video = os.path.relpath(video, root)
    stored = {name: record[name] for name in fields}
    stored["video"] = video
    stored.update((name, value) for name, value in record.items() if name not in stored)
    return stored


def read_checked_jsonl(
    path: str, root: str, problem_of: Callable[[Any], str | None], id_field: str
) -> list[dict[str, Any]]:
    """Read a split file, checking every line, and resolve its paths and times.

    Args:
        path: the JSONL file; blank lines are skipped.
        root: the prepared folder, against which a relative ``video`` is resolved.
        problem_of: what is wrong with a record, or None (the line contract of the dataset kind).
        id_field: the field that must not repeat within the file.

    Returns:
        The records in file order, ``video`` absolute, ``start``/``end`` float or None.

    Raises:
        ValueError: a malformed line; the message starts with ``path:line:``.
    """
    root = os.path.abspath(root)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            problem = problem_of(record)
            if problem is None and record[id_field] in seen:
                problem = f"repeated {id_field} {record[id_field]!r}"
            if problem:
                raise ValueError(f"{path}:{number}: {problem}")
            seen.add(record[id_field])
            record["video"] = os.path.normpath(os.path.join(root, record["video"]))
            for bound in ("start", "end"):
                record[bound] = None if record[bound] is None else float(record[bound])
            records.append(record)
    return records
