import json
import os
import tarfile

import pytest
import webdataset as wds

from clover_pl.data.shards import count_samples, expand_urls, iter_shard, key_width, make_key, read_stats, write_shards


def _videos(n: int) -> list[dict]:
    return [
        {
            "mp4": bytes([i]) * (10 + i),
            "txt": f"caption {i}",
            "json": {"videoid": i, "duration": 2.0, "scene": {"n": i}},
        }
        for i in range(n)
    ]


def _images(n: int) -> list[dict]:
    return [
        {"jpg": b"\xff\xd8" + bytes([i]) * 5, "txt": f"image {i}", "json": {"width": 4, "height": 2}} for i in range(n)
    ]


def test_key_rule_follows_video2dataset() -> None:
    assert key_width(1000) == 8
    assert key_width(10000) == 9
    assert key_width(1) == 5
    assert make_key(1, 5, 10000) == "000010005"
    assert make_key(0, 999, 1000) == "00000999"
    assert make_key(3, 1, 2) == "000031"


def test_video_shards_layout(tmp_path) -> None:
    paths = write_shards(_videos(5), str(tmp_path), samples_per_shard=2, kind="video")
    assert [os.path.basename(p) for p in paths] == ["00000.tar", "00001.tar", "00002.tar"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"{i:05d}{suffix}" for i in range(3) for suffix in (".tar", "_stats.json")]
    )
    with tarfile.open(paths[1]) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        f"{key}.{ext}" for key in ("000010", "000011") for ext in ("json", "mp4", "txt")
    ]
    assert {(m.mode, m.uname, m.gname, m.mtime) for m in members} == {(0o444, "bigdata", "bigdata", 0)}

    samples = list(iter_shard(paths[0]))
    assert [s["__key__"] for s in samples] == ["000000", "000001"]
    meta = json.loads(samples[1]["json"])
    assert list(meta) == [
        "videoid",
        "duration",
        "scene",
        "caption",
        "url",
        "key",
        "status",
        "error_message",
        "yt_meta_dict",
    ]
    assert meta["caption"] == samples[1]["txt"].decode() == "caption 1"
    assert (meta["key"], meta["status"], meta["error_message"]) == ("000001", "success", None)
    assert samples[1]["mp4"] == bytes([1]) * 11

    stats = read_stats(paths[2])
    assert list(stats) == [
        "count",
        "successes",
        "failed_to_download",
        "failed_to_subsample",
        "duration",
        "bytes_downloaded",
        "start_time",
        "end_time",
        "status_dict",
    ]
    assert (stats["count"], stats["successes"], stats["bytes_downloaded"]) == (1, 1, 14)
    assert stats["status_dict"] == {"success": 1}
    assert count_samples(str(tmp_path / "{00000..00002}.tar")) == 5


def test_image_shards_layout(tmp_path) -> None:
    (path,) = write_shards(_images(3), str(tmp_path), samples_per_shard=1000, kind="image", start_shard=2)
    assert os.path.basename(path) == "00002.tar"
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[:3] == ["00002000.jpg", "00002000.json", "00002000.txt"]
    meta = json.loads(next(iter_shard(path))["json"])
    assert (meta["width"], meta["height"], meta["original_width"], meta["original_height"]) == (4, 2, 4, 2)
    assert len(meta["sha256"]) == 64
    assert list(meta) == [
        "caption",
        "url",
        "key",
        "status",
        "error_message",
        "width",
        "height",
        "original_width",
        "original_height",
        "exif",
        "sha256",
    ]
    stats = read_stats(path)
    assert "failed_to_resize" in stats
    assert "bytes_downloaded" not in stats
    assert stats["successes"] == 3


def test_webdataset_reads_the_shards(tmp_path) -> None:
    write_shards(_videos(4), str(tmp_path), samples_per_shard=2, kind="video")
    dataset = wds.WebDataset(expand_urls(str(tmp_path / "{00000..00001}.tar")), shardshuffle=False)
    samples = list(dataset)
    assert [s["__key__"] for s in samples] == ["000000", "000001", "000010", "000011"]
    assert samples[3]["txt"] == b"caption 3"


def test_writes_are_atomic_and_deterministic(tmp_path) -> None:
    first = write_shards(_videos(3), str(tmp_path / "a"), samples_per_shard=2, kind="video")
    second = write_shards(_videos(3), str(tmp_path / "b"), samples_per_shard=2, kind="video")
    assert not [name for name in os.listdir(tmp_path / "a") if name.endswith(".tmp")]
    for a, b in zip(first, second, strict=True):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()


def test_expand_urls() -> None:
    assert expand_urls("d/{00000..00003}.tar") == [f"d/{i:05d}.tar" for i in range(4)]
    assert expand_urls(["a/{0..1}.tar", "b.tar"]) == ["a/0.tar", "a/1.tar", "b.tar"]
    assert expand_urls("a.tar::b/{00008..00009}.tar") == ["a.tar", "b/00008.tar", "b/00009.tar"]


def test_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="kind"):
        write_shards(_videos(1), str(tmp_path), 1, kind="audio")
    with pytest.raises(ValueError, match="mp4"):
        write_shards(_images(1), str(tmp_path), 1, kind="video")
    with pytest.raises(ValueError, match="width"):
        write_shards([{"jpg": b"x", "txt": "", "json": {}}], str(tmp_path), 1, kind="image")
