"""The results store: an append-only JSONL file in the sweep directory, one line per finished cell.

A line is written when a cell finishes, ok or failed, with one ``write`` under an exclusive ``flock`` and then
``fsync``ed, so a killed sweep loses at most the cell in progress and cells launched as separate jobs (``--only``)
can share the file. A line cut short by a crash is skipped when reading, and the next append starts on a new line.
The latest line of a cell wins: a failed cell that is re-run and succeeds reads as ok.

Record fields: ``cell`` (id), ``status`` (``ok`` or ``failed``), ``kind``, ``metrics`` (name -> float),
``step`` (training step of the checkpoint evaluated or trained), ``artifacts`` (paths, e.g. a training run's
``best``/``last`` checkpoints), ``error`` (text or None), ``started_at`` (ISO time), ``seconds``, ``host``,
``definition`` (the cell's resolved definition).
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

OK = "ok"
FAILED = "failed"
STORE_NAME = "results.jsonl"


class ResultStore:
    """Append and read the records of one sweep directory.

    Args:
        directory: the sweep directory (created on first append); the store is ``<directory>/results.jsonl``.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, STORE_NAME)
        self.skipped_lines = 0

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (see the module docstring).

        Raises:
            ValueError: the record has no ``cell`` or a ``status`` other than ok / failed.
        """
        if not record.get("cell") or record.get("status") not in (OK, FAILED):
            raise ValueError(f"a record needs a cell id and a status ok or failed, got {record!r}")
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                line = b"\n" + line  # the previous writer died mid-line
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)  # also releases the lock

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, in file order (``skipped_lines`` counts the unreadable ones)."""
        self.skipped_lines = 0
        if not os.path.isfile(self.path):
            return []
        records = []
        with open(self.path, encoding="utf-8") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    self.skipped_lines += 1
                    continue
                if isinstance(record, dict) and "cell" in record:
                    records.append(record)
                else:
                    self.skipped_lines += 1
        return records

    def latest(self) -> dict[str, dict[str, Any]]:
        """The latest record of each cell, by cell id."""
        return {record["cell"]: record for record in self.records()}

    def is_ok(self, cell: str) -> bool:
        """Whether the cell's latest record is ok."""
        record = self.latest().get(cell)
        return record is not None and record.get("status") == OK
