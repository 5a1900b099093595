"""`prepare` conversions, `--shards` and `--verify` show progress on stderr with a total (plain lines in a log)."""

import csv
import re
from pathlib import Path

import pytest
from test_prepare_loader_agreement import encode

from clover_pl.prepare import webvid


def lines_with(pattern: str, text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(pattern, line)]


def test_conversion_index_and_verify_report_progress_against_a_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "0")  # a line per update (the default is one per 30 s)
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = encode(frames=8)
    for videoid in range(5):
        (videos / f"{videoid}.mp4").write_bytes(clip)
    with open(tmp_path / "results.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"])
        writer.writerows([videoid, f"clip {videoid}", 1, "p", "PT1S", "u"] for videoid in range(5))
    out = tmp_path / "out"
    argv = ["--csv", str(tmp_path / "results.csv"), "--videos", str(videos), "--out", str(out)]
    assert webvid.main([*argv, "--samples-per-shard", "2", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "webvid: 5 samples" in captured.out  # the result on stdout, the progress on stderr
    progress = lines_with(r"^webvid: \d+/5 ", captured.err)
    assert progress[0].startswith("webvid: 0/5 (0%)")
    assert progress[-1].startswith("webvid: 5/5 (100%)")
    assert "3 shards, 5 written, 0 dropped" in progress[-1]
    assert all("\r" not in line for line in captured.err.splitlines())  # plain lines, not a redrawn bar

    assert webvid.main(["--verify", "--out", str(out)]) == 0
    assert lines_with(r"^verify webvid: 5/5 \(100%\).*0 problem\(s\)", capsys.readouterr().err)

    assert webvid.main(["--shards", str(out), "--out", str(tmp_path / "index")]) == 0
    assert lines_with(r"^index webvid: 3/3 \(100%\).*5 samples, 0 failed downloads", capsys.readouterr().err)
