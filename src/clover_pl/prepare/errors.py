"""User errors of ``clover-pl prepare``: one line naming the file or option, exit status 2, no traceback.

Converters raise :class:`InputError` (or ``FileNotFoundError``) for input that the user must fix; the dispatcher in
``clover_pl.prepare`` prints the message. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class InputError(ValueError):
    """An input file or option that cannot be used; the message names it and says what was expected."""


def require_file(path: str) -> str:
    """Return ``path`` if it is a file; else raise ``FileNotFoundError`` naming it."""
    return _require(path, os.path.isfile, "file")


def require_folder(path: str) -> str:
    """Return ``path`` if it is a folder (the video folder); else raise ``FileNotFoundError`` naming it."""
    return _require(path, os.path.isdir, "video folder")


def _require(path: str, exists: Callable[[str], bool], what: str) -> str:
    if not exists(path):
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def read_json(path: str, what: str) -> Any:
    """The JSON value in ``path`` (a BOM is allowed).

    Args:
        path: the file.
        what: what the file should be, for the message (``"MSRVTT_data.json"``, ``"a {split}_qa.json list"``).

    Raises:
        FileNotFoundError: no such file.
        InputError: the file is not UTF-8 or not valid JSON (e.g. a download cut short), naming where it breaks.
    """
    try:
        with open(require_file(path), encoding="utf-8-sig") as stream:
            return json.load(stream)
    except json.JSONDecodeError as error:
        cut = " (the file ends early: an interrupted download?)" if error.pos >= _size(path) - 1 else ""
        raise InputError(
            f"{path}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}{cut}; expected {what}"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: {not_utf8(path)}; expected {what}") from None


def read_text(path: str) -> str:
    """A text file's content as UTF-8 (a BOM is dropped).

    Raises:
        FileNotFoundError: no such file.
        InputError: the file is not UTF-8, naming the line and byte where it stops being so.
    """
    try:
        with open(require_file(path), encoding="utf-8-sig", newline="") as stream:
            return stream.read()
    except UnicodeDecodeError:
        raise InputError(f"{path}: {not_utf8(path)}; save it as UTF-8") from None


def not_utf8(path: str) -> str:
    """Where a file stops being UTF-8: ``"not UTF-8 text: line 3, byte 0xe9 at offset 75"`` (read on error only)."""
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return f"not UTF-8 text: line {line}, byte {data[error.start]:#04x} at offset {error.start}"
    return "not UTF-8 text"


def _size(path: str) -> int:
    try:
        with open(path, encoding="utf-8-sig") as stream:
            return len(stream.read())
    except (OSError, UnicodeDecodeError):
        return 0


def checked_rows(path: str, reader: Iterable[list[str]]) -> Iterator[list[str]]:
    """The rows of a ``csv.reader`` on ``path``, its errors turned into one `InputError` naming file and line.

    The reader's errors are a field over the size limit or a bad quote in strict mode; undecodable bytes (a file
    saved in another encoding) come from the file underneath.
    """
    rows = iter(reader)
    line = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"{path}: unreadable CSV/TSV after line {line}: {error}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: {not_utf8(path)}; save it as UTF-8") from None
        line = getattr(reader, "line_num", line + 1)
        yield row
