"""clover_pl.progress (the shared tqdm helper) and the sweep's time estimate."""

import io
import re

import pytest

from clover_pl.progress import LineWriter, progress
from clover_pl.sweeps.runner import remaining_time


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_the_bar_is_plain_lines_with_total_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "0")
    stream = io.StringIO()
    for _ in progress(range(3), desc="shards", unit="shard", stream=stream):
        pass
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("shards: 0/3 (0%)")
    assert lines[-1].startswith("shards: 3/3 (100%)")
    assert "shard/s" in lines[-1]


def test_off_a_terminal_lines_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "3600")
    stream = io.StringIO()
    for _ in progress(range(1000), desc="rows", stream=stream):
        pass
    assert len(stream.getvalue().splitlines()) == 2  # the first and the final state only


def test_resumed_count_starts_at_initial_and_unknown_total_has_no_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "0")
    stream = io.StringIO()
    bar = progress(total=10, initial=4, desc="fit", unit="step", stream=stream)
    bar.update(2)
    bar.close()
    assert stream.getvalue().splitlines()[0].startswith("fit: 4/10 (40%)")
    assert stream.getvalue().splitlines()[-1].startswith("fit: 6/10 (60%)")
    stream = io.StringIO()
    with progress(desc="samples", unit="sample", stream=stream) as bar:
        bar.update(5)
    assert re.match(r"samples: 5 \[", stream.getvalue().splitlines()[-1])


def test_on_a_terminal_the_bar_redraws_in_place() -> None:
    stream = FakeTerminal()
    for _ in progress(range(2), desc="cells", stream=stream, mininterval=0):
        pass
    assert "\r" in stream.getvalue()
    assert "2/2" in stream.getvalue()


def test_line_writer_turns_redraws_into_lines_and_drops_repeats() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream)
    writer.write("\ra 1/3")
    writer.write("\ra 1/3")
    writer.write("\ra 2/3\n")
    assert stream.getvalue() == "a 1/3\na 2/3\n"


def test_bad_interval_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="CLOVER_PROGRESS_INTERVAL"):
        progress(range(1), stream=io.StringIO())


def test_sweep_eta_is_the_mean_cell_time_times_the_cells_left() -> None:
    assert "no time estimate" in remaining_time([], 4)
    assert remaining_time([60.0, 120.0], 4) == "about 06:00 left (2 cell(s) run, 01:30 each)"


def test_a_terminal_without_a_size_still_gets_a_bar() -> None:
    import os

    master, slave = os.openpty()  # a new pseudo-terminal reports 0 columns and 0 rows, like `docker -t` or `script`
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            assert os.get_terminal_size(slave).columns == 0
            for _ in progress(range(2), desc="cells", stream=stream, mininterval=0):
                pass
            stream.flush()
        written = os.read(master, 65536).decode(errors="replace")
    finally:
        os.close(slave)
        os.close(master)
    assert "cells: 100%" in written
    assert "2/2" in written
