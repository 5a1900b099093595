"""`clover-pl prepare webvid`: CSV + videos -> shards, resume, verify, re-encode, video2dataset shards as they are."""

import csv
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from clover_pl.cli import main as cli_main
from clover_pl.data.shards import count_samples, expand_urls, iter_shard
from clover_pl.data.video import decode_video
from clover_pl.prepare import webvid
from clover_pl.prepare.manifest import read_manifest
from clover_pl.prepare.synthetic import encode_mp4
from clover_pl.prepare.workers import convert_rows

LONG_CAPTION = "a long caption " * 30  # 450 characters
QUOTED_CAPTION = 'Man says "hello, world", then leaves, smiling.'
# (videoid, page_dir, caption, file): file is "clip", "missing", "empty", "garbage" or "flat" (clip without page_dir)
ROWS = [
    ("1001", "000001_000050", "a dog runs on the beach", "clip"),
    ("1002", "000001_000050", QUOTED_CAPTION, "clip"),
    ("1003", "000001_000050", "its file was never downloaded", "missing"),
    ("1004", "000001_000050", "a zero-byte file", "empty"),
    ("1005", "000051_000100", "a garbage file", "garbage"),
    ("1006", "000051_000100", "   ", "clip"),
    ("1007", "000051_000100", LONG_CAPTION, "clip"),
    ("1008", "000051_000100", "waves at sunset", "clip"),
    ("1009", "000101_000150", "a red car drives by", "clip"),
    ("1010", "000101_000150", "city lights at night", "clip"),
    ("1011", "000101_000150", "a cat sleeps", "flat"),
    ("1012", "000101_000150", "snow falls slowly", "clip"),
]
KEPT = ["1001", "1002", "1007", "1008", "1009", "1010", "1011", "1012"]


def clip(seed: int, frames: int = 24, fps: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    video = np.repeat(rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8), frames, axis=0)
    video[np.arange(frames), :, np.arange(frames) * 2 % 64] = 255  # a moving bar
    return encode_mp4(video, fps)


def write_tree(root: Path, rows: list = ROWS) -> tuple[Path, Path]:
    videos = root / "videos"
    for videoid, page_dir, _, kind in rows:
        folder = videos if kind == "flat" else videos / page_dir
        folder.mkdir(parents=True, exist_ok=True)
        content = {"clip": clip(int(videoid)), "flat": clip(int(videoid)), "empty": b"", "garbage": os.urandom(3000)}
        if kind != "missing":
            (folder / f"{videoid}.mp4").write_bytes(content[kind])
    path = root / "results_2M_train.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"])
        for videoid, page_dir, caption, _ in rows:
            url = f"https://ak.picdn.net/shutterstock/videos/{videoid}/preview/stock-footage.mp4"
            writer.writerow([videoid, caption, int(page_dir[:6]) + 3, page_dir, "PT00H00M03S", url])
    return path, videos


def prepare(csv_path: Path, videos: Path, out: Path, *extra: str) -> int:
    argv = ["--csv", str(csv_path), "--videos", str(videos), "--out", str(out), "--samples-per-shard", "4"]
    return webvid.main([*argv, "--workers", "1", *extra])


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        path.name: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.iterdir())
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tree(tmp_path_factory.mktemp("webvid_raw"))


@pytest.fixture(scope="module")
def prepared(tree: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("webvid") / "out"
    assert prepare(*tree, out) == 0
    return out


def test_shards_follow_the_video2dataset_layout(prepared: Path) -> None:
    names = sorted(os.listdir(prepared))
    assert names == [f"0000{i}{suffix}" for i in range(3) for suffix in (".tar", "_stats.json")] + ["manifest.json"]
    with tarfile.open(prepared / "00001.tar") as tar:
        members = tar.getmembers()
    # rows 4..7: garbage and empty caption dropped, rows 6 and 7 keep their row-derived keys
    assert [m.name for m in members] == [
        f"{key}.{ext}" for key in ("000012", "000013") for ext in ("json", "mp4", "txt")
    ]
    assert {(m.mode, m.uname, m.mtime) for m in members} == {(0o444, "bigdata", 0)}
    samples = [sample for shard in sorted(prepared.glob("*.tar")) for sample in iter_shard(str(shard))]
    assert [json.loads(s["json"])["videoid"] for s in samples] == [int(v) for v in KEPT]
    meta = json.loads(samples[1]["json"])
    assert list(meta) == [
        "videoid",
        "page_idx",
        "page_dir",
        "duration",
        "duration_seconds",
        "reencode",
        "caption",
        "url",
        "key",
        "status",
        "error_message",
        "yt_meta_dict",
    ]
    assert meta["caption"] == samples[1]["txt"].decode() == QUOTED_CAPTION
    assert (meta["key"], meta["status"], meta["duration"], meta["reencode"]) == (
        "000001",
        "success",
        "PT00H00M03S",
        None,
    )
    assert meta["duration_seconds"] == pytest.approx(3.0)
    assert samples[0]["mp4"] == clip(1001)  # copied byte for byte
    assert len(samples[2]["txt"].decode()) == 350
    assert decode_video(samples[6]["mp4"], 4, mode="middle").shape == (4, 3, 48, 64)  # the flat-folder fallback


def test_manifest_counts_and_drop_reasons(prepared: Path, tree: tuple[Path, Path]) -> None:
    manifest = read_manifest(str(prepared))
    assert manifest["dataset"] == "webvid"
    assert (manifest["kind"], manifest["layout"], manifest["origin"]) == ("video", "video2dataset", "converted")
    assert manifest["source"] == {"csv": str(tree[0]), "videos": str(tree[1])}
    assert manifest["settings"] == {"samples_per_shard": 4, "max_caption_chars": 350, "reencode": None}
    assert (manifest["rows"], manifest["samples"], manifest["failed"]) == (12, 8, 0)
    assert manifest["dropped"] == {"empty_caption": 1, "empty_file": 1, "missing_file": 1, "unreadable": 1}
    assert manifest["captions_truncated"] == 1
    assert manifest["duration_seconds"] == pytest.approx(24.0)
    assert manifest["urls"] == "{00000..00002}.tar"
    assert [(s["url"], s["samples"]) for s in manifest["shards"]] == [
        ("00000.tar", 2),
        ("00001.tar", 2),
        ("00002.tar", 4),
    ]
    assert [s["bytes"] for s in manifest["shards"]] == [
        (prepared / s["url"]).stat().st_size for s in manifest["shards"]
    ]
    assert count_samples(str(prepared / manifest["urls"])) == 8
    stats = json.loads((prepared / "00000_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_subsample"]) == (
        4,
        2,
        1,
        1,
    )
    assert stats["status_dict"] == {"success": 2, "empty_file": 1, "missing_file": 1}


def test_output_is_deterministic_whatever_the_worker_count(prepared: Path, tree: tuple[Path, Path], tmp_path) -> None:
    out = tmp_path / "again"
    assert webvid.main([*_args(tree, out), "--workers", "2"]) == 0
    assert {n: h for n, (_, h) in snapshot(out).items()} == {n: h for n, (_, h) in snapshot(prepared).items()}


def _args(tree: tuple[Path, Path], out: Path) -> list[str]:
    return ["--csv", str(tree[0]), "--videos", str(tree[1]), "--out", str(out), "--samples-per-shard", "4"]


def test_rerun_redoes_only_unfinished_shards(prepared: Path, tree: tuple[Path, Path], tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    before = snapshot(out)
    (out / "00001.tar").unlink()
    (out / "00001_stats.json").unlink()
    (out / "00002.tar.tmp").write_bytes((out / "00002.tar").read_bytes()[:5000])  # an interrupted rewrite
    assert prepare(*tree, out) == 0
    after = snapshot(out)
    assert sorted(after) == sorted(before)  # no temporary file left
    for name in ("00000.tar", "00000_stats.json", "00002.tar", "00002_stats.json"):
        assert after[name] == before[name], name  # untouched: same mtime and bytes
    for name in ("00001.tar", "00001_stats.json"):
        assert after[name][1] == before[name][1]
        assert after[name][0] > before[name][0]
    assert after["manifest.json"][1] == before["manifest.json"][1]


def test_changed_settings_redo_every_shard(prepared: Path, tree: tuple[Path, Path], tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    assert prepare(*tree, out, "--max-caption-chars", "20") == 0
    assert read_manifest(str(out))["captions_truncated"] == 3
    assert all(json.loads(s["json"])["caption"] == s["txt"].decode() for s in iter_shard(str(out / "00001.tar")))


def test_verify_passes_then_reports_tampering_without_writing(prepared: Path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    assert webvid.main(["--verify", "--out", str(out)]) == 0
    stats = json.loads((out / "00000_stats.json").read_text())
    stats["successes"] = 3
    (out / "00000_stats.json").write_text(json.dumps(stats))
    with open(out / "00002.tar", "r+b") as stream:
        stream.truncate(stream.seek(0, os.SEEK_END) // 2)
    before = snapshot(out)
    capsys.readouterr()
    assert webvid.main(["--verify", "--out", str(out), "--workers", "2"]) == 1
    printed = capsys.readouterr().out
    assert "00000.tar: _stats.json says 3 successes, the tar holds 2" in printed
    assert "00002.tar" in printed
    assert "truncated" in printed
    assert "00001.tar" not in printed
    assert snapshot(out) == before


def test_reencode_changes_rate_size_and_length_and_is_recorded(tree: tuple[Path, Path], tmp_path) -> None:
    out = tmp_path / "out"
    assert prepare(*tree, out, "--fps", "4", "--short-side", "32", "--max-duration", "2") == 0
    settings = {"fps": 4.0, "short_side": 32, "max_duration": 2.0}
    manifest = read_manifest(str(out))
    assert manifest["settings"]["reencode"] == settings
    assert manifest["duration_seconds"] == pytest.approx(8 * 2.0)
    sample = next(iter_shard(str(out / "00000.tar")))
    meta = json.loads(sample["json"])
    assert meta["reencode"] == settings
    assert meta["duration_seconds"] == pytest.approx(2.0)
    with av.open(io.BytesIO(sample["mp4"])) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert container.duration / av.time_base == pytest.approx(2.0)
    assert (frames[0].width, frames[0].height) == (42, 32)  # 64x48 scaled to a short side of 32, even sizes
    assert len(frames) == 8  # 2 s at 4 fps
    assert [i for i, frame in enumerate(frames) if frame.key_frame] == [0, 4]  # a keyframe every second
    assert decode_video(sample["mp4"], 4, mode="middle").shape == (4, 3, 32, 42)
    assert webvid.main(["--verify", "--out", str(out)]) == 0


def write_video2dataset_shards(folder: Path) -> None:
    """Two shards as video2dataset writes them: 1,000 samples per shard (8-digit keys), a failed download kept."""
    folder.mkdir(parents=True)
    shards = {0: [("00000000", True), ("00000001", False), ("00000002", True)], 1: [("00001000", True)]}
    for shard_id, samples in shards.items():
        with wds.TarWriter(str(folder / f"{shard_id:05d}.tar"), encoder=False) as tar:
            for key, ok in samples:
                meta = {"videoid": int(key), "duration": "PT00H00M03S", "caption": f"clip {key}", "key": key}
                meta |= {"status": "success" if ok else "failed_to_download", "error_message": None if ok else "404"}
                sample = {"__key__": key, "json": json.dumps(meta, indent=4).encode(), "txt": f"clip {key}".encode()}
                if ok:
                    sample["mp4"] = clip(int(key))
                tar.write(sample)
        successes = sum(ok for _, ok in samples)
        stats = {"count": len(samples), "successes": successes, "failed_to_download": len(samples) - successes}
        (folder / f"{shard_id:05d}_stats.json").write_text(json.dumps(stats))
        (folder / f"{shard_id:05d}.parquet").write_bytes(b"PAR1")


def test_video2dataset_shards_are_accepted_as_they_are(tmp_path) -> None:
    shards, out = tmp_path / "v2d", tmp_path / "out"
    write_video2dataset_shards(shards)
    before = snapshot(shards)
    assert webvid.main(["--shards", str(shards), "--out", str(out)]) == 0
    assert snapshot(shards) == before
    manifest = read_manifest(str(out))
    assert (manifest["origin"], manifest["samples"], manifest["failed"]) == ("existing", 3, 1)
    assert [(s["samples"], s["failed"]) for s in manifest["shards"]] == [(2, 1), (1, 0)]
    assert manifest["urls"] == f"{shards}/{{00000..00001}}.tar"
    assert expand_urls(manifest["urls"]) == [str(shards / "00000.tar"), str(shards / "00001.tar")]
    assert manifest["duration_seconds"] == pytest.approx(9.0)
    assert manifest["source_stats"]["count"] == 4
    assert webvid.main(["--verify", "--out", str(out)]) == 0
    assert webvid.main(["--shards", str(shards), "--out", str(shards)]) == 0  # the manifest beside the shards
    assert read_manifest(str(shards))["urls"] == "{00000..00001}.tar"


def test_existing_shards_whose_stats_disagree_are_reported(tmp_path, capsys) -> None:
    shards = tmp_path / "v2d"
    write_video2dataset_shards(shards)
    (shards / "00001_stats.json").write_text(json.dumps({"count": 1, "successes": 0}))
    assert webvid.main(["--shards", str(shards), "--out", str(tmp_path / "out")]) == 1
    assert "00001.tar: _stats.json says 0 successes, the tar holds 1" in capsys.readouterr().out


def test_help_through_the_cli(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["prepare", "webvid", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for option in ("--csv", "--videos", "--shards", "--verify", "--fps", "--short-side", "--max-duration"):
        assert option in printed


def test_csv_without_required_columns_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "bad.csv").write_text("id,caption\n1,a\n")
    assert webvid.main(["--csv", str(tmp_path / "bad.csv"), "--videos", str(tmp_path), "--out", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()  # one line: no progress bar before the input is read
    assert line.startswith(f"clover-pl prepare webvid: {tmp_path / 'bad.csv'}: the header lacks videoid")


def test_reencode_applies_the_display_rotation() -> None:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)  # a phone video: stored landscape, shown portrait
        for index in range(8):
            array = np.zeros((48, 64, 3), dtype=np.uint8)
            array[:, :16] = 255
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data, seconds = webvid.reencode_video(buffer.getvalue(), webvid.Reencode(short_side=32))
    assert seconds == pytest.approx(1.0)
    shown = decode_video(buffer.getvalue(), 1, mode="middle", short_side=32)[..., :42, :].float()
    stored = decode_video(data, 1, mode="middle")
    assert stored.shape == (1, 3, 42, 32)  # upright, and no rotation left to apply
    assert (stored.float() - shown).abs().mean() < 8


class FailingConverter:
    kind = "video"

    def __call__(self, index, row, key, tally):
        if index == 5:
            raise RuntimeError("disk full")
        return {"txt": row, "mp4": b"x"}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_shard_leaves_nothing_half_written(tmp_path, workers: int) -> None:
    rows = [(index, f"row {index}") for index in range(8)]
    with pytest.raises(RuntimeError, match="disk full"):
        convert_rows(rows, FailingConverter(), str(tmp_path), 4, {}, workers=workers, label="test")
    names = sorted(os.listdir(tmp_path))
    # the good shard may or may not have finished when the pool was stopped; either way nothing is half there
    allowed = [["00000.tar", "00000_stats.json"]] + ([[], ["00000.tar"]] if workers > 1 else [])
    assert names in allowed


def test_conversion_refuses_to_overwrite_shards_it_did_not_write(tree: tuple[Path, Path], tmp_path, capsys) -> None:
    write_video2dataset_shards(tmp_path / "v2d")
    before = snapshot(tmp_path / "v2d")
    assert prepare(*tree, tmp_path / "v2d") == 2
    assert "did not convert" in capsys.readouterr().err
    assert snapshot(tmp_path / "v2d") == before
