"""The shared manifest module: brace patterns, durations, write/read, and what verify_dataset catches."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from clover_pl.data.shards import expand_urls, write_shards
from clover_pl.prepare.manifest import (
    brace_pattern,
    duration_seconds,
    read_manifest,
    resolve_urls,
    shard_url,
    write_manifest,
)
from clover_pl.prepare.shard_check import index_shards, verify_dataset
from clover_pl.prepare.synthetic import encode_jpg


@pytest.mark.parametrize(
    ("urls", "pattern"),
    [
        ([], ""),
        (["00000.tar"], "00000.tar"),
        (["00000.tar", "00001.tar", "00002.tar"], "{00000..00002}.tar"),
        (["/d/00000.tar", "/d/00001.tar", "/d/00003.tar"], "/d/{{00000..00001},00003}.tar"),
        (["a.tar", "b.tar"], "a.tar::b.tar"),
        (["x/00000.tar", "y/00001.tar"], "x/00000.tar::y/00001.tar"),
    ],
)
def test_brace_pattern_expands_back_to_the_urls(urls: list[str], pattern: str) -> None:
    assert brace_pattern(urls) == pattern
    assert expand_urls(pattern) == urls


def test_durations() -> None:
    assert duration_seconds("PT00H00M17S") == 17.0
    assert duration_seconds("PT01H02M03.5S") == 3723.5
    assert duration_seconds(12) == 12.0
    assert duration_seconds("17 seconds") is None
    assert duration_seconds(None) is None
    assert duration_seconds("") is None


def test_urls_are_relative_inside_the_folder_and_absolute_outside(tmp_path: Path) -> None:
    assert shard_url(str(tmp_path / "out" / "00000.tar"), str(tmp_path / "out")) == "00000.tar"
    assert shard_url(str(tmp_path / "v2d" / "00000.tar"), str(tmp_path / "out")) == str(tmp_path / "v2d/00000.tar")
    assert resolve_urls("/data/out", "{00000..00001}.tar") == "/data/out/{00000..00001}.tar"
    assert resolve_urls("/data/out", "/abs/0.tar::1.tar") == "/abs/0.tar::/data/out/1.tar"


def images(count: int) -> list[dict]:
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    return [
        {"jpg": encode_jpg(pixels + i), "txt": f"image {i}", "json": {"width": 8, "height": 8}} for i in range(count)
    ]


def dataset(tmp_path: Path) -> Path:
    """Three image shards written by shards.write_shards, plus their manifest."""
    paths = write_shards(images(5), str(tmp_path), samples_per_shard=2, kind="image")
    shards = [
        {"url": shard_url(p, str(tmp_path)), "samples": n, "failed": 0, "bytes": Path(p).stat().st_size}
        for p, n in zip(paths, (2, 2, 1), strict=True)
    ]
    manifest = write_manifest(str(tmp_path), "toy", "image", "img2dataset", "converted", {}, {}, shards, {"rows": 5})
    assert manifest["urls"] == "{00000..00002}.tar"
    assert manifest["samples"] == 5
    return tmp_path


def test_write_then_read_manifest(tmp_path: Path) -> None:
    manifest = read_manifest(str(dataset(tmp_path)))
    assert list(manifest)[:9] == [
        "dataset",
        "kind",
        "layout",
        "origin",
        "version",
        "software",
        "source",
        "settings",
        "urls",
    ]
    assert manifest["rows"] == 5
    assert list(manifest)[-1] == "shards"
    assert not list(tmp_path.glob("*.tmp"))
    assert verify_dataset(str(tmp_path)) == []


def test_verify_without_a_manifest(tmp_path: Path) -> None:
    [problem] = verify_dataset(str(tmp_path))
    assert "unusable manifest" in problem


def test_verify_reports_missing_shards_and_wrong_totals(tmp_path: Path) -> None:
    out = dataset(tmp_path)
    manifest = read_manifest(str(out))
    manifest["samples"] = 6
    manifest["shards"][1]["samples"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "00002.tar").unlink()
    problems = "\n".join(verify_dataset(str(out)))
    assert "00002.tar: missing" in problems
    assert "00001.tar: 2 samples in the tar, the manifest says 3" in problems
    assert "'urls' does not expand" not in problems


def write_tar(path: Path, names: list[str]) -> None:
    with tarfile.open(path, "w") as tar:
        for name in names:
            data = b"{}" if name.endswith(".json") else b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_index_and_verify_catch_ill_formed_members(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "00001.tar", ["00001000.json", "00001000.txt", "notakey.txt", "00001001.txt", "00001000.json"])
    write_tar(shards / "00002.tar", ["00001005.json", "0002006.json"])
    (shards / "00001_stats.json").write_text(json.dumps({"count": 3, "successes": 0}))
    manifest, problems = index_shards(str(shards), str(shards), "toy", "video", "video2dataset")
    text = "\n".join(problems)
    assert "ill-formed member name 'notakey.txt'" in text
    assert "key 00001000 appears in two places" in text
    assert "00002.tar: key 00001005 does not belong to shard 2" in text
    assert "00002.tar: key 0002006 has 7 digits, others 8" in text
    assert "00002.tar: no usable _stats.json" in text
    # no media and no failure status in the json: not a failed download, a sample the loader would skip
    assert "sample 00001001: the loader would skip it as no_media" in text
    assert "sample 00001000: the loader would skip it as no_caption" in text
    assert manifest["problems"] == problems
    assert (manifest["samples"], manifest["failed"]) == (0, 0)
    assert verify_dataset(str(shards), decode=False) == problems


def test_index_of_a_folder_without_shards(tmp_path: Path) -> None:
    assert index_shards(str(tmp_path), str(tmp_path), "toy", "image", "img2dataset") == (
        {},
        [f"{tmp_path}: no .tar shards"],
    )
