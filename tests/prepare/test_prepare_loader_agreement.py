"""Preparation and training agree: `prepare webvid --shards`, `--verify` and the conversion report exactly the
samples that the loader's own decode skips, with the loader's reasons; failed downloads are counted, not reported.

The shards are written as video2dataset writes them: 8-digit keys, members in sorted order, a failed download kept
as `.json` (status, error_message) + `.txt` without `.mp4`, `_stats.json` counting it."""

import csv
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clover_pl.data.video import DecodeError, decode_video
from clover_pl.prepare import webvid
from clover_pl.prepare.manifest import read_manifest
from clover_pl.prepare.media_check import check_video


def encode(frames: int = 40, gop: int = 8, faststart: bool = False) -> bytes:
    """A 64x48 H.264 mp4 with grain (every P-frame carries data); ``faststart`` puts the index first."""
    rng = np.random.default_rng(frames + gop)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.mp4")
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(path, mode="w", format="mp4", options=options) as container:
            stream = container.add_stream("libx264", rate=8, options={"crf": "23", "preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.gop_size = gop
            stream.codec_context.thread_count = 1
            for index in range(frames):
                frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                frame[:, (index * 3) % 64] = 255
                picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
                picture.pts = index
                container.mux(stream.encode(picture))
            container.mux(stream.encode(None))
        return Path(path).read_bytes()


def half_downloaded() -> bytes:
    """A faststart mp4 cut at 60%: its index is whole, its first frames decode, the rest is missing."""
    data = encode(faststart=True)
    assert data.find(b"moov") < data.find(b"mdat")
    return data[: int(len(data) * 0.6)]


def corrupt_after_first_gop() -> bytes:
    """An mp4 whose bitstream is overwritten with noise after its first GOP (container and index intact)."""
    data = bytearray(encode())
    start, end = data.find(b"mdat") + 8, data.find(b"moov") - 8
    cut = start + (end - start) // 5
    data[cut:end] = np.random.default_rng(1).integers(0, 256, end - cut, dtype=np.uint8).tobytes()
    return bytes(data)


# key -> (caption, mp4 bytes or None, json status)
SAMPLES = {
    "00000000": ("a dog runs", "good", "success"),
    "00000001": ("a failed download", None, "failed_to_download"),
    "00000002": ("a half download", "half", "success"),
    "00000003": ("noise after the first gop", "corrupt", "success"),
    "00001000": ("", "good", "success"),
    "00001001": ("another failed download", None, "failed_to_download"),
    "00001002": ("waves", "good", "success"),
    "00001003": ("a third failed download", None, "failed_to_subsample"),
}
EXPECTED_SKIPS = {
    "00000002": "bad_media_truncated",
    "00000003": "bad_media_corrupt",
    "00001000": "caption_empty",
}


@pytest.fixture(scope="module")
def media() -> dict[str, bytes]:
    return {"good": encode(), "half": half_downloaded(), "corrupt": corrupt_after_first_gop()}


def write_shards(folder: Path, media: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for shard_id in (0, 1):
        keys = [key for key in SAMPLES if int(key) // 1000 == shard_id]
        with tarfile.open(folder / f"{shard_id:05d}.tar", "w") as tar:
            for key in keys:
                caption, clip, status = SAMPLES[key]
                meta = {"videoid": int(key), "page_idx": 1, "page_dir": "000001_000050", "duration": "PT00H00M05S"}
                meta |= {"caption": caption, "url": f"https://example.com/{key}.mp4", "key": key, "status": status}
                meta |= {"error_message": None if clip else "HTTP Error 404: Not Found", "yt_meta_dict": None}
                members = {"json": json.dumps(meta, indent=4).encode(), "txt": caption.encode()}
                if clip:
                    members["mp4"] = media[clip]
                for extension in sorted(members):
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size, info.mode, info.uname, info.gname = len(members[extension]), 0o444, "bigdata", "bigdata"
                    tar.addfile(info, io.BytesIO(members[extension]))
        failed = [SAMPLES[key][2] for key in keys if SAMPLES[key][1] is None]
        stats = {
            "count": len(keys),
            "successes": len(keys) - len(failed),
            "failed_to_download": failed.count("failed_to_download"),
            "failed_to_subsample": failed.count("failed_to_subsample"),
            "duration": 1.0,
            "bytes_downloaded": 1000,
            "start_time": 0.0,
            "end_time": 1.0,
            "status_dict": {"success": len(keys) - len(failed), **{s: failed.count(s) for s in set(failed)}},
        }
        (folder / f"{shard_id:05d}_stats.json").write_text(json.dumps(stats, indent=4))


def loader_skips(data: bytes, seeds: int = 6) -> set[str]:
    """The reasons for which the loader's decode (8 random frames, as in training) fails, over a few epochs."""
    reasons = set()
    for seed in range(seeds):
        try:
            decode_video(data, 8, "random", short_side=32, generator=torch.Generator().manual_seed(seed))
        except DecodeError as error:
            reasons.add(f"bad_media_{error.reason}")
    return reasons


def test_the_damaged_clips_pass_a_first_frame_check_but_the_loader_skips_them(media: dict[str, bytes]) -> None:
    for name in ("half", "corrupt"):
        with av.open(io.BytesIO(media[name])) as container:  # the old check: the first frame decodes
            assert next(container.decode(video=0)) is not None
    assert loader_skips(media["good"]) == set()
    assert loader_skips(media["half"]) == {"bad_media_truncated"}
    assert loader_skips(media["corrupt"]) == {"bad_media_corrupt"}
    assert check_video(media["good"]) == pytest.approx(5.0)
    for name, reason in (("half", "truncated"), ("corrupt", "corrupt")):
        with pytest.raises(DecodeError) as error:
            check_video(media[name])
        assert error.value.reason == reason


def test_shards_report_every_skip_with_the_loaders_reason_and_count_failed_downloads(
    media: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards, out = tmp_path / "v2d", tmp_path / "out"
    write_shards(shards, media)
    assert webvid.main(["--shards", str(shards), "--out", str(out), "--workers", "1"]) == 1
    printed = capsys.readouterr().out
    reported = {
        line.split("sample ")[1].split(":")[0]: line.split("would skip it as ")[1].split(" ")[0]
        for line in printed.splitlines()
        if "would skip it as" in line
    }
    assert reported == EXPECTED_SKIPS
    assert "3 problem(s) (bad_media_corrupt 1, bad_media_truncated 1, caption_empty 1)" in printed
    assert "3 failed downloads (37.5%: failed_to_download 2, failed_to_subsample 1)" in printed
    manifest = read_manifest(str(out))
    assert (manifest["samples"], manifest["failed"], manifest["failed_share"]) == (5, 3, 0.375)
    assert manifest["failed_status"] == {"failed_to_download": 2, "failed_to_subsample": 1}
    assert [(s["samples"], s["failed"], s["failed_share"]) for s in manifest["shards"]] == [(3, 1, 0.25), (2, 2, 0.5)]
    assert manifest["would_skip"] == {"bad_media_corrupt": 1, "bad_media_truncated": 1, "caption_empty": 1}
    # --verify agrees with the index, line for line
    assert webvid.main(["--verify", "--out", str(out), "--workers", "2"]) == 1
    assert [line for line in capsys.readouterr().out.splitlines() if "would skip" in line] == [
        line for line in printed.splitlines() if "would skip" in line
    ]
    # structure only: no media decoded, so only the caption is caught
    assert webvid.main(["--shards", str(shards), "--out", str(out), "--no-decode"]) == 1
    assert "1 problem(s) (caption_empty 1)" in capsys.readouterr().out


def test_failed_downloads_alone_are_not_problems(media: dict[str, bytes], tmp_path: Path, capsys) -> None:
    shards = tmp_path / "v2d"
    write_shards(shards, {"good": media["good"], "half": media["good"], "corrupt": media["good"]})
    json_path = shards / "00001.tar"
    with tarfile.open(json_path) as tar:  # give the empty caption a text: only failed downloads remain
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(json_path, "w") as tar:
        for member, data in members:
            data = b"a caption" if member.name == "00001000.txt" else data
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    assert webvid.main(["--shards", str(shards), "--out", str(shards)]) == 0
    assert "no problems" in capsys.readouterr().out
    assert webvid.main(["--verify", "--out", str(shards)]) == 0


def test_conversion_drops_the_clips_the_loader_would_skip(media: dict[str, bytes], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = [("1", "good"), ("2", "half"), ("3", "corrupt"), ("4", "good")]
    for videoid, name in rows:
        (videos / f"{videoid}.mp4").write_bytes(media[name])
    with open(tmp_path / "results.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"])
        writer.writerows([videoid, f"clip {videoid}", 1, "p", "PT5S", "u"] for videoid, _ in rows)
    argv = ["--csv", str(tmp_path / "results.csv"), "--videos", str(videos), "--out", str(tmp_path / "out")]
    assert webvid.main([*argv, "--workers", "1"]) == 0
    manifest = read_manifest(str(tmp_path / "out"))
    assert (manifest["samples"], manifest["dropped"]) == (2, {"unreadable": 2})
    assert webvid.main(["--verify", "--out", str(tmp_path / "out")]) == 0
