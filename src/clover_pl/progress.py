"""Progress bars for every long-running clover-pl command, on stderr, with total, rate and ETA (tqdm).

On a terminal a bar redraws in place. When stderr is not a terminal (CI logs, SLURM output files) a carriage-return
bar would pile up as one endless line, so the same bar is written as plain lines instead, at most one per
``interval`` seconds (``CLOVER_PROGRESS_INTERVAL``, default 30), plus the first and the last state.

tqdm, not rich: Lightning already depends on tqdm, so every clover-pl install has it. This module imports neither
torch nor Lightning (``clover-pl prepare <x> --help`` must stay fast).

Usage::

    from clover_pl.progress import progress

    for shard in progress(shards, desc="webvid shards", unit="shard"):
        ...
    with progress(total=len(rows), desc="rows") as bar:
        bar.update(1)
        bar.set_postfix(loss=0.5, refresh=False)  # refresh=False: a postfix alone must not print a log line
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any, TypeVar

from tqdm.std import tqdm

T = TypeVar("T")

DEFAULT_INTERVAL = 30.0
"""Seconds between two plain progress lines when stderr is not a terminal."""


PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
"""One plain progress line: ``shards: 120/2500 (5%) [01:02<20:31, 1.93shard/s]``."""

PLAIN_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"
"""A plain progress line when the total is unknown."""


def _has_len(iterable: object) -> bool:
    try:
        len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams (pytest's capture)
        return False


def terminal_columns(stream: IO[str]) -> int:
    """Width of the terminal behind ``stream``; 0 when it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def line_interval() -> float:
    """Seconds between plain progress lines: ``CLOVER_PROGRESS_INTERVAL`` or :data:`DEFAULT_INTERVAL`."""
    value = os.environ.get("CLOVER_PROGRESS_INTERVAL")
    if value is None:
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"CLOVER_PROGRESS_INTERVAL={value!r} is not a number of seconds") from None
    return max(0.0, seconds)


class LineWriter:
    """A text stream for tqdm that turns its in-place redraws into one plain line per redraw.

    tqdm redraws by writing a carriage return and the bar; here every non-empty redraw becomes the bar and a
    newline on the wrapped stream, so a log file gets readable lines.

    Args:
        stream: where the lines go (stderr).
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        """Write each non-empty redraw of ``text`` as its own line (a repeated identical line is dropped)."""
        for part in text.replace("\n", "\r").split("\r"):
            line = part.rstrip()
            if line and line != self.last:
                self.stream.write(line + "\n")
                self.last = line
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.stream.flush()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    initial: float = 0,
    leave: bool = True,
    stream: IO[str] | None = None,
    disable: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr; plain periodic lines when stderr is not a terminal.

    Args:
        iterable: what to iterate over (None: call ``update`` yourself).
        total: expected number of items (``len(iterable)`` when it has one); None shows count and rate, no ETA.
        desc: the bar's label.
        unit: what one item is (``"shard"``, ``"step"``, ``"cell"``).
        initial: items already done (a resumed run), so that the count starts there.
        leave: keep the finished bar on screen.
        stream: where to write (default ``sys.stderr`` at call time).
        disable: no output at all.
        **kwargs: passed to ``tqdm`` (``unit_scale``, ``postfix``, ...).

    Returns:
        The ``tqdm`` object: iterate over it, or call ``update`` / ``set_postfix`` / ``close``.
    """
    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        options: dict[str, Any] = {"file": stream, "dynamic_ncols": True}
        if terminal_columns(stream) <= 0:  # a terminal without a size (docker -t, script): tqdm would draw nothing
            options = {"file": stream, "ncols": 100, "nrows": 50}
    else:
        interval = line_interval()
        # miniters=1: every update checks the clock, so tqdm's monitor thread never forces an extra line.
        options = {"file": LineWriter(stream), "mininterval": interval, "miniters": 1}
        # No bar graphic in a log file: the count, the share done, the time spent and left, the rate.
        options["bar_format"] = PLAIN_FORMAT if total is not None or _has_len(iterable) else PLAIN_FORMAT_NO_TOTAL
        options["leave"] = True  # the final state is the line a log reader looks for
    options.update(kwargs)
    options.setdefault("leave", leave)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, **options)
