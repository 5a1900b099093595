"""Progress bars for long commands: tqdm on a terminal, periodic plain lines in logs (CI, SLURM files).

On a terminal the bar redraws in place (total, rate and ETA). When the stream is not a terminal, tqdm's carriage
returns would pile up into one endless line, so each refresh is written as its own line instead, at most every
``CLOVER_PROGRESS_INTERVAL`` seconds (default 30), plus a first and a last line. Progress goes to stderr, so that
stdout keeps only a command's result.

Only tqdm is imported here (Lightning already depends on it): cheap enough for ``--help`` paths.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_SECONDS = 30.0
"""Seconds between two plain lines when the stream is not a terminal (``CLOVER_PROGRESS_INTERVAL`` overrides)."""


class _PlainLines:
    """A stream for tqdm that turns each redraw (carriage return, text, padding) into one line; empties vanish."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams (pytest's capture)
        return False


def plain_interval() -> float:
    """Seconds between plain progress lines: ``CLOVER_PROGRESS_INTERVAL`` if set to a number >= 0, else 30."""
    value = os.environ.get("CLOVER_PROGRESS_INTERVAL", "")
    try:
        return max(0.0, float(value)) if value.strip() else PLAIN_INTERVAL_SECONDS
    except ValueError:
        return PLAIN_INTERVAL_SECONDS


def progress_bar(
    total: int | float | None, desc: str, unit: str = "it", stream: TextIO | None = None, **options: Any
) -> tqdm:
    """A tqdm bar on ``stream`` (default stderr): redrawn on a terminal, periodic plain lines otherwise.

    Args:
        total: the count at completion (None: unknown; tqdm then shows count and rate without an ETA).
        desc: the label in front of the bar.
        unit: what is counted ("samples", "shards", "clips").
        stream: where to write (default ``sys.stderr``, looked up at call time).
        **options: other tqdm arguments (``unit_scale``, ``postfix``, ...).

    Returns:
        The bar; use it as a context manager, ``update(n)`` it, and ``set_postfix_str`` for counts beside it.
    """
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, **options)
    interval = plain_interval()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=_PlainLines(stream),
        mininterval=interval,
        miniters=1,
        ncols=100,
        ascii=True,
        **options,
    )


def note(message: str, stream: TextIO | None = None) -> None:
    """Print a line above any open bar (a bar redraws below it on a terminal)."""
    tqdm.write(message, file=sys.stderr if stream is None else stream)
