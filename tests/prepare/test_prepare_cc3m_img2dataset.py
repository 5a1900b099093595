"""`clover-pl prepare cc3m --tsv ... --images <img2dataset output>`: rows matched to images by url, from an output
of several input files (keys numbered per file and shard, failed downloads left out), as files or as tars.

The numbering is img2dataset 1.47's (read from its wheel: reader.py starts each input file at a new shard,
downloader.compute_key makes shard * 10**ceil(log10(per_shard)) + position, zero-padded to 5 + that many digits)."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from test_prepare_cc3m import ROWS, image, prepare, url, write_tsv

from clover_pl.prepare.manifest import read_manifest

PER_SHARD = 4  # img2dataset's number_sample_per_shard: keys have 5 + ceil(log10(4)) = 6 digits
FAILED = {"missing": "failed_to_download", "empty": "failed_to_resize", "garbage": "failed_to_resize"}


def write_img2dataset_output(folder: Path, input_files: list[list[int]], output_format: str) -> dict[int, str]:
    """What img2dataset writes for several input files: shards restart at each file, failures are left out.

    Returns:
        The key of each row that has an image.
    """
    folder.mkdir(parents=True)
    keys, shard_id = {}, 0
    for rows in input_files:
        for start in range(0, len(rows), PER_SHARD):
            members, status = [], {}
            for position, row in enumerate(rows[start : start + PER_SHARD]):
                caption, kind = ROWS[row]
                if kind in FAILED or caption is None:
                    status[FAILED.get(kind, "failed_to_download")] = status.get(FAILED.get(kind), 0) + 1
                    continue
                key = f"{shard_id * 10 + position:06d}"
                keys[row] = key
                extension = "png" if kind == "png" else "jpg"
                meta = {
                    "caption": caption,
                    "url": url(row),
                    "key": key,
                    "status": "success",
                    "error_message": None,
                    "width": 32,
                    "height": 24,
                    "original_width": 32,
                    "original_height": 24,
                    "exif": "{}",
                    "sha256": hashlib.sha256(image(row, kind)).hexdigest(),
                }
                members += [
                    (f"{key}.{extension}", image(row, kind)),
                    (f"{key}.json", json.dumps(meta, indent=4).encode()),
                    (f"{key}.txt", caption.encode()),
                ]
            write_shard(folder, shard_id, sorted(members), output_format)
            successes = len(members) // 3
            stats = {
                "count": len(rows[start : start + PER_SHARD]),
                "successes": successes,
                "failed_to_download": status.get("failed_to_download", 0),
                "failed_to_resize": status.get("failed_to_resize", 0),
                "duration": 0.1,
                "start_time": 0.0,
                "end_time": 0.1,
                "status_dict": {"success": successes, **status},
            }
            (folder / f"{shard_id:05d}_stats.json").write_text(json.dumps(stats, indent=4))
            shard_id += 1
    return keys


def write_shard(folder: Path, shard_id: int, members: list[tuple[str, bytes]], output_format: str) -> None:
    if output_format == "files":
        (folder / f"{shard_id:05d}").mkdir()
        for name, data in members:
            (folder / f"{shard_id:05d}" / name).write_bytes(data)
        return
    with tarfile.open(folder / f"{shard_id:05d}.tar", "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uname, info.gname = len(data), 0o444, "bigdata", "bigdata"
            tar.addfile(info, io.BytesIO(data))


def tar_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The TSV, and its conversion from images named by row number (keys are row numbers there)."""
    root = tmp_path_factory.mktemp("cc3m_i2d")
    tsv = write_tsv(root / "Train_GCC-training.tsv", header=False)
    rows_folder = root / "rows"
    rows_folder.mkdir()
    for row, (_, kind) in enumerate(ROWS):
        if kind not in FAILED and ROWS[row][0] is not None:
            (rows_folder / f"{row:09d}.{'png' if kind == 'png' else 'jpg'}").write_bytes(image(row, kind))
    assert prepare(root / "expected", "--tsv", str(tsv), "--images", str(rows_folder)) == 0
    return tsv, root / "expected"


@pytest.mark.parametrize("output_format", ["files", "webdataset"])
def test_a_multi_file_img2dataset_output_is_matched_by_url(
    reference: tuple[Path, Path], output_format: str, tmp_path: Path
) -> None:
    tsv, expected = reference
    keys = write_img2dataset_output(tmp_path / "i2d", [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], output_format)
    assert (keys[6], keys[7]) == ("000020", "000021")  # the second input file starts shard 2: keys != rows
    assert prepare(tmp_path / "out", "--tsv", str(tsv), "--images", str(tmp_path / "i2d")) == 0
    assert tar_hashes(tmp_path / "out") == tar_hashes(expected)  # same samples, same keys, same bytes
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest["samples"] == 5
    assert manifest["unmatched_images"] == 0
    assert manifest["dropped"]["missing_file"] == 3  # the three failed downloads (rows 2, 3, 4)


def test_a_url_listed_twice_takes_one_image_per_row(reference: tuple[Path, Path], tmp_path: Path) -> None:
    tsv, _ = reference
    doubled = tmp_path / "doubled.tsv"
    doubled.write_text(tsv.read_text() + f"a red apple again\t{url(0)}\n")
    write_img2dataset_output(tmp_path / "i2d", [list(range(len(ROWS))), [0]], "webdataset")
    assert prepare(tmp_path / "out", "--tsv", str(doubled), "--images", str(tmp_path / "i2d")) == 0
    manifest = read_manifest(str(tmp_path / "out"))
    assert (manifest["samples"], manifest["unmatched_images"]) == (6, 0)


def test_img2dataset_shards_without_a_tsv_point_at_shards(tmp_path: Path, capsys) -> None:
    write_img2dataset_output(tmp_path / "i2d", [[0, 1]], "webdataset")
    assert prepare(tmp_path / "out", "--images", str(tmp_path / "i2d")) == 2
    assert f"without --tsv: use --shards {tmp_path / 'i2d'} to accept them as they are" in capsys.readouterr().err
