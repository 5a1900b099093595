"""`clover-pl prepare webvid --preset train`: the training re-encode, its record in the manifest, its storage report."""

import csv
import io
import json
from pathlib import Path

import av
import numpy as np
import pytest

from clover_pl.data.shards import iter_shard
from clover_pl.data.video import count_frames
from clover_pl.prepare import webvid
from clover_pl.prepare.manifest import read_manifest
from clover_pl.prepare.presets import PRESETS, EncodeSettings
from clover_pl.prepare.synthetic import encode_mp4


def source_clip(frames: int = 40, fps: int = 25) -> bytes:
    """A textured, moving 96x64 clip with x264's default keyframe interval (as WebVid serves them)."""
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)
    video = np.stack([np.roll(texture, 2 * index, axis=1)[:, :96] for index in range(frames)])
    return encode_mp4(video, fps, gop=250)


def write_tree(root: Path, data: bytes) -> tuple[Path, Path]:
    videos = root / "videos" / "000001_000050"
    videos.mkdir(parents=True)
    for videoid in ("1", "2"):
        (videos / f"{videoid}.mp4").write_bytes(data)
    path = root / "results_2M_train.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"])
        for videoid in ("1", "2"):
            writer.writerow([videoid, "a dog runs on the beach", 1, "000001_000050", "PT00H00M02S", "u"])
    return path, root / "videos"


def keyframes(data: bytes) -> list[int]:
    with av.open(io.BytesIO(data)) as container:
        return [index for index, frame in enumerate(container.decode(video=0)) if frame.key_frame]


def test_encode_settings_become_libx264_options() -> None:
    assert EncodeSettings().options() == {"preset": "veryfast", "crf": "23"}  # the re-encode without a preset
    assert EncodeSettings(bitrate=900_000, tune="fastdecode").options() == {"preset": "veryfast", "tune": "fastdecode"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_reencodes_records_and_reports_storage(name: str, tmp_path: Path, capsys) -> None:
    data = source_clip()
    csv_path, videos = write_tree(tmp_path, data)
    out = tmp_path / "out"
    assert webvid.main(["--csv", str(csv_path), "--videos", str(videos), "--out", str(out), "--preset", name]) == 0
    manifest = read_manifest(str(out))
    train = PRESETS[name]
    recorded = manifest["settings"]["reencode"]
    assert recorded["short_side"] == train.short_side
    assert recorded["encode"]["name"] == name
    assert recorded["encode"]["bitrate"] == train.encode.bitrate
    assert recorded["encode"]["keyframe_interval"] == train.encode.keyframe_interval
    assert recorded["encode"]["tune"] == train.encode.tune
    sample = next(iter_shard(str(out / "00000.tar")))
    assert json.loads(sample["json"])["reencode"] == recorded
    encoded = sample["mp4"]
    # Same frame rate and frame count (so TSN sampling draws the same indices), short keyframe interval.
    assert count_frames(encoded) == count_frames(data) == 40
    found = keyframes(encoded)
    assert found[0] == 0
    assert max(np.diff([*found, 40])) <= train.encode.keyframe_interval
    assert keyframes(data) == [0]
    storage = manifest["storage"]
    assert storage["clips"] == 2
    assert storage["source_bytes_per_clip"] == len(data)
    # The mean over the shard's clips (the two clips share a source, but x264's threads need not give equal bytes).
    sizes = [len(item["mp4"]) for item in iter_shard(str(out / "00000.tar"))]
    assert len(sizes) == 2
    assert storage["bytes_per_clip"] == round(sum(sizes) / len(sizes))
    assert storage["ratio_to_source"] == pytest.approx(sum(sizes) / len(sizes) / len(data), abs=1e-3)
    assert f"({storage['ratio_to_source']:.2f}x)" in capsys.readouterr().out


def test_preset_is_refused_with_shards_as_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        webvid.main(["--shards", str(tmp_path), "--out", str(tmp_path / "out"), "--preset", "train"])
    assert exit_info.value.code == 2
    assert "--shards takes no" in capsys.readouterr().err


def test_unknown_preset_names_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        webvid.main(["--csv", "x.csv", "--videos", "v", "--out", "o", "--preset", "fast"])
    assert "--preset: invalid choice: 'fast'" in capsys.readouterr().err
