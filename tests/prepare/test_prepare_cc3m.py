"""`clover-pl prepare cc3m`: TSV + images (three folder layouts) -> shards, verify, img2dataset shards as they are."""

import hashlib
import json
import os
import shutil
import tarfile
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from clover_pl.cli import main as cli_main
from clover_pl.data.shards import iter_shard
from clover_pl.prepare import cc3m
from clover_pl.prepare.manifest import read_manifest
from clover_pl.prepare.synthetic import encode_jpg

QUOTED = 'the "best" view, ever'
# (caption, image kind); kind: jpg, png, bmp, missing, empty, garbage; None caption: a malformed line
ROWS = [
    ("a red apple on a table", "jpg"),
    (QUOTED, "jpg"),
    ("lost to a dead url", "missing"),
    ("a zero-byte download", "empty"),
    ("an html error page", "garbage"),
    ("", "jpg"),
    ("a long caption " * 30, "jpg"),
    ("a png image", "png"),
    ("a bitmap", "bmp"),
    ("actor attends the premiere", "jpg"),
    (None, "missing"),
]
KEPT = [0, 1, 6, 7, 9]


def url(row: int) -> str:
    return f"http://example.com/img/{row}.jpg"


def image(row: int, kind: str) -> bytes:
    pixels = np.random.default_rng(row).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    if kind == "jpg":
        return encode_jpg(pixels)
    if kind == "empty":
        return b""
    if kind == "garbage":
        return b"<html>404</html>" * 20
    codec, pix_fmt = {"png": ("png", "rgb24"), "bmp": ("bmp", "bgr24")}[kind]
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt, context.time_base = 32, 24, pix_fmt, Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
    return b"".join(bytes(packet) for packet in [*context.encode(frame), *context.encode(None)])


def write_tsv(path: Path, header: bool) -> Path:
    lines = ["caption\turl"] if header else []
    lines += [
        f"{caption}\t{url(row)}" if caption is not None else "one field only" for row, (caption, _) in enumerate(ROWS)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_images(folder: Path, layout: str) -> Path:
    for row, (caption, kind) in enumerate(ROWS):
        if kind == "missing":
            continue
        data = image(row, kind)
        if layout == "row":
            name = f"{row:09d}.{'png' if kind == 'png' else 'jpg'}"
        elif layout == "crc32":
            name = str(zlib.crc32(url(row).encode()) & 0xFFFFFFFF)
        else:  # img2dataset output_format="files": 10,000 per shard, keys are row numbers
            name = f"00000/{row:09d}.{'png' if kind == 'png' else 'jpg'}"
            meta = {"caption": caption, "url": url(row), "key": f"{row:09d}", "status": "success"}
            (folder / "00000").mkdir(parents=True, exist_ok=True)
            (folder / name).with_suffix(".json").write_text(json.dumps(meta))
            (folder / name).with_suffix(".txt").write_text(caption)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def tar_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(folder.iterdir())
    }


def prepare(out: Path, *args: str) -> int:
    return cc3m.main([*args, "--out", str(out), "--samples-per-shard", "4", "--workers", "1"])


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cc3m_raw")
    write_tsv(root / "Train_GCC-training.tsv", header=False)
    write_tsv(root / "with_header.tsv", header=True)
    for layout in ("row", "crc32", "img2dataset"):
        write_images(root / layout, layout)
    return root


@pytest.fixture(scope="module")
def prepared(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cc3m") / "out"
    assert prepare(out, "--tsv", str(raw / "Train_GCC-training.tsv"), "--images", str(raw / "row")) == 0
    return out


def test_shards_follow_the_img2dataset_layout(prepared: Path) -> None:
    assert sorted(os.listdir(prepared)) == [f"0000{i}{s}" for i in range(3) for s in (".tar", "_stats.json")] + [
        "manifest.json"
    ]
    with tarfile.open(prepared / "00001.tar") as tar:
        names = [m.name for m in tar.getmembers()]
    assert names == ["000012.jpg", "000012.json", "000012.txt", "000013.json", "000013.png", "000013.txt"]
    samples = [s for shard in sorted(prepared.glob("*.tar")) for s in iter_shard(str(shard))]
    metas = [json.loads(s["json"]) for s in samples]
    assert [m["url"] for m in metas] == [url(row) for row in KEPT]
    assert list(metas[1]) == [
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
    assert metas[1]["caption"] == samples[1]["txt"].decode() == QUOTED
    assert (metas[1]["width"], metas[1]["height"], metas[1]["key"]) == (32, 24, "000001")
    assert metas[0]["sha256"] == hashlib.sha256(samples[0]["jpg"]).hexdigest()
    assert samples[0]["jpg"] == image(0, "jpg")  # stored as downloaded
    assert len(metas[2]["caption"]) == 350


def test_manifest_counts_and_drop_reasons(prepared: Path) -> None:
    manifest = read_manifest(str(prepared))
    assert (manifest["dataset"], manifest["kind"], manifest["layout"]) == ("cc3m", "image", "img2dataset")
    assert (manifest["rows"], manifest["samples"], manifest["captions_truncated"]) == (11, 5, 1)
    assert manifest["dropped"] == {
        "bad_row": 1,
        "empty_caption": 1,
        "empty_file": 1,
        "missing_file": 1,
        "unreadable": 1,
        "unsupported_format": 1,
    }
    assert manifest["settings"]["image_layout"] == "row"
    assert manifest["duration_seconds"] is None
    assert manifest["urls"] == "{00000..00002}.tar"
    assert [s["samples"] for s in manifest["shards"]] == [2, 2, 1]
    assert cc3m.main(["--verify", "--out", str(prepared)]) == 0


def test_tsv_header_and_folder_layouts_give_the_same_shards(prepared: Path, raw: Path, tmp_path) -> None:
    expected = tar_hashes(prepared)
    tsv, header_tsv = str(raw / "Train_GCC-training.tsv"), str(raw / "with_header.tsv")
    runs = {
        "header": ["--tsv", header_tsv, "--images", str(raw / "row"), "--workers", "2"],
        "crc32": ["--tsv", tsv, "--images", str(raw / "crc32")],
        "img2dataset": ["--tsv", tsv, "--images", str(raw / "img2dataset")],
        "img2dataset_alone": ["--images", str(raw / "img2dataset")],
    }
    for name, args in runs.items():
        assert prepare(tmp_path / name, *args) == 0, name
        assert tar_hashes(tmp_path / name) == expected, name
    assert read_manifest(str(tmp_path / "crc32"))["settings"]["image_layout"] == "crc32"
    alone = read_manifest(str(tmp_path / "img2dataset_alone"))
    assert alone["source"]["tsv"] is None
    assert alone["rows"] == 9  # the images present: rows without a download are not rows of the folder


def test_img2dataset_images_are_matched_to_rows_by_url(raw: Path, tmp_path) -> None:
    images = tmp_path / "images"
    shutil.copytree(raw / "img2dataset", images)
    meta = json.loads((images / "00000/000000000.json").read_text())
    (images / "00000/000000000.json").write_text(json.dumps({**meta, "url": "http://elsewhere/0.jpg"}))
    assert prepare(tmp_path / "out", "--tsv", str(raw / "Train_GCC-training.tsv"), "--images", str(images)) == 0
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest["dropped"]["missing_file"] == 2  # row 2 (never downloaded) and row 0 (no image has its url)
    assert manifest["unmatched_images"] == 1


def test_a_tsv_is_needed_unless_the_folder_carries_captions(raw: Path, tmp_path, capsys) -> None:
    assert prepare(tmp_path / "out", "--images", str(raw / "row")) == 2
    assert "needs --tsv" in capsys.readouterr().err


def write_img2dataset_shards(folder: Path, bad_image: bool = False) -> None:
    """Two shards as img2dataset writes them: failed downloads left out (gaps in the keys), stats count them."""
    folder.mkdir(parents=True)
    for shard_id, rows in {0: [0, 1, 3], 1: [10000, 10002]}.items():
        with wds.TarWriter(str(folder / f"{shard_id:05d}.tar"), encoder=False) as tar:
            for row in rows:
                key = f"{row:09d}"
                data = b"not an image" if bad_image and row == 3 else image(row, "jpg")
                meta = {"caption": f"image {row}", "url": url(row), "key": key, "status": "success"}
                tar.write(
                    {"__key__": key, "jpg": data, "json": json.dumps(meta).encode(), "txt": f"image {row}".encode()}
                )
        stats = {"count": 4, "successes": len(rows), "failed_to_download": 4 - len(rows), "failed_to_resize": 0}
        (folder / f"{shard_id:05d}_stats.json").write_text(json.dumps(stats | {"status_dict": {"success": len(rows)}}))


def test_img2dataset_shards_are_accepted_as_they_are(tmp_path) -> None:
    shards, out = tmp_path / "i2d", tmp_path / "out"
    write_img2dataset_shards(shards)
    before = snapshot(shards)
    assert cc3m.main(["--shards", str(shards), "--out", str(out)]) == 0
    assert snapshot(shards) == before
    manifest = read_manifest(str(out))
    assert (manifest["origin"], manifest["samples"], manifest["failed"]) == ("existing", 5, 0)
    assert [s["samples"] for s in manifest["shards"]] == [3, 2]
    assert manifest["source_stats"] == {"count": 8, "successes": 5, "status_dict": {"success": 5}}
    assert cc3m.main(["--verify", "--out", str(out)]) == 0
    assert snapshot(shards) == before


def test_verify_decodes_every_image(tmp_path, capsys) -> None:
    shards = tmp_path / "i2d"
    write_img2dataset_shards(shards, bad_image=True)
    assert cc3m.main(["--shards", str(shards), "--out", str(shards), "--no-decode"]) == 0
    capsys.readouterr()
    assert cc3m.main(["--verify", "--out", str(shards)]) == 1
    assert "00000.tar: sample 000000003: the loader would skip it as bad_media_" in capsys.readouterr().out
    assert cc3m.main(["--shards", str(shards), "--out", str(shards)]) == 1  # indexing decodes too, by default
    assert "sample 000000003: the loader would skip it as bad_media_" in capsys.readouterr().out


def test_help_through_the_cli(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["prepare", "cc3m", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for option in ("--tsv", "--images", "--layout", "--shards", "--verify", "--samples-per-shard", "--workers"):
        assert option in printed
