import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from clover_pl.data.shards import expand_urls, iter_shard, read_stats
from clover_pl.prepare.synthetic import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    MASK,
    SIZES,
    VOCABULARY,
    Entity,
    Scene,
    Track,
    caption,
    encode_mp4,
    main,
    prepare_synthetic,
    render,
)

TINY = {
    "train_videos": 8,
    "train_images": 4,
    "heldout_videos": 8,
    "size": 32,
    "frames": 4,
    "samples_per_shard": 4,
    "heldout_samples_per_shard": 4,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    prepare_synthetic(str(out), seed=0, **TINY)
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _samples(out: Path, split: str) -> list[dict]:
    urls = expand_urls(str(out / _manifest(out)["splits"][split]["urls"]))
    return [sample for url in urls for sample in iter_shard(url)]


def _decode(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _words(text: str) -> list[str]:
    return text.replace("?", "").replace(MASK, "").split()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_layout_and_manifest(dataset: Path) -> None:
    manifest = _manifest(dataset)
    splits = manifest["splits"]
    assert splits["train"]["urls"] == "webvid/{00000..00001}.tar"
    assert splits["images"]["urls"] == "cc3m/00000.tar"
    assert splits["heldout"]["urls"] == "heldout/{00002..00003}.tar"
    assert splits["train"]["shards"] == {"00000.tar": 4, "00001.tar": 4}
    assert manifest["vocabulary"] == VOCABULARY
    assert manifest["arguments"]["seed"] == 0
    assert read_stats(str(dataset / "webvid" / "00001.tar"))["successes"] == 4
    for name, count in (("train", 8), ("heldout", 8)):
        entry = manifest["qa"][name]["multiple_choice"]
        assert entry["count"] == count
        assert (dataset / entry["path"]).is_file()
    assert set(manifest["answer_vocabularies"]["open_ended"]) <= set(VOCABULARY)


def test_video_members_keys_and_metadata(dataset: Path) -> None:
    samples = _samples(dataset, "train")
    assert [s["__key__"] for s in samples] == [f"0000{shard}{i}" for shard in range(2) for i in range(4)]
    for sample in samples:
        assert sorted(k for k in sample if k != "__key__") == ["json", "mp4", "txt"]
        meta = json.loads(sample["json"])
        assert meta["caption"] == sample["txt"].decode()
        assert (meta["key"], meta["status"], meta["width"], meta["frames"]) == (sample["__key__"], "success", 32, 4)
        for entity_object in meta["scene"]["objects"]:
            for word in (entity_object["color"], entity_object["size"]):
                assert word in meta["caption"].split()


def test_video_decodes_with_drawn_colours_and_motion(dataset: Path) -> None:
    moving = 0
    for sample in _samples(dataset, "train") + _samples(dataset, "heldout"):
        frames = _decode(sample["mp4"])
        assert len(frames) == 4
        assert frames[0].shape == (32, 32, 3)
        for drawn in json.loads(sample["json"])["scene"]["objects"]:
            for frame, (x, y) in ((frames[0], drawn["start"]), (frames[-1], drawn["end"])):
                mean = frame[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
                nearest = min(COLORS, key=lambda name: np.abs(mean - COLORS[name]).sum())
                assert nearest == drawn["color"]
                assert np.abs(mean - COLORS[drawn["color"]]).max() < 60
            shift = np.subtract(drawn["end"], drawn["start"])
            assert np.array_equal(np.sign(shift), DIRECTIONS[drawn["direction"]])
            moving += drawn["direction"] != "still"
    assert moving > 0


@pytest.mark.parametrize("direction", ["left", "right", "up", "down", "still"])
def test_centroid_moves_the_named_way(direction: str) -> None:
    speed = None if direction == "still" else "fast"
    start = {"left": (44, 32), "right": (20, 32), "up": (32, 44), "down": (32, 20), "still": (32, 32)}[direction]
    step = np.multiply(DIRECTIONS[direction], 24)
    scene = Scene(
        "gray",
        (Entity("square", "red", "small", direction, speed, 1),),
        (Track(0, start, (start[0] + int(step[0]), start[1] + int(step[1]))),),
    )
    frames = _decode(encode_mp4(render(scene, 64, 8, np.random.default_rng(0)), fps=8))
    centroids = []
    for frame in (frames[0], frames[-1]):
        mask = np.abs(frame.astype(int) - COLORS["red"]).max(axis=-1) < 60
        centroids.append(np.argwhere(mask).mean(axis=0)[::-1])  # (x, y)
    np.testing.assert_allclose(centroids[1] - centroids[0], step, atol=1.5)
    assert np.allclose(centroids[0], start, atol=1.5)


def test_images_decode(dataset: Path) -> None:
    samples = _samples(dataset, "images")
    assert [s["__key__"] for s in samples] == [f"00000{i}" for i in range(4)]
    for sample in samples:
        assert sorted(k for k in sample if k != "__key__") == ["jpg", "json", "txt"]
        assert sample["jpg"][:2] == b"\xff\xd8"
        assert sample["jpg"][-2:] == b"\xff\xd9"
        (image,) = _decode(sample["jpg"])
        assert image.shape == (32, 32, 3)
        meta = json.loads(sample["json"])
        assert (meta["width"], meta["height"]) == (32, 32)
        for drawn in meta["scene"]["objects"]:
            assert drawn["direction"] is None
            x, y = drawn["start"]
            assert np.abs(image[y, x].astype(int) - COLORS[drawn["color"]]).max() < 60


def test_all_text_uses_the_vocabulary(dataset: Path) -> None:
    assert sorted(set(VOCABULARY)) == VOCABULARY
    assert all(word.isalpha() and word.islower() for word in VOCABULARY)
    texts = [s["txt"].decode() for split in ("train", "images", "heldout") for s in _samples(dataset, split)]
    for split in ("train", "heldout"):
        for record in _jsonl(dataset / "qa" / f"{split}_open_ended.jsonl"):
            texts += [record["question"], record["answer"]]
        for record in _jsonl(dataset / "qa" / f"{split}_multiple_choice.jsonl"):
            texts += [record["question"], *record["options"]]
        for record in _jsonl(dataset / "qa" / f"{split}_fill_in_blank.jsonl"):
            texts += [record["text"], record["answer"]]
    assert set(VOCABULARY) >= {word for text in texts for word in _words(text)}


def test_heldout_is_disjoint_and_unique(dataset: Path) -> None:
    train_keys = {s["__key__"] for s in _samples(dataset, "train")}
    heldout = _samples(dataset, "heldout")
    retrieval = _jsonl(dataset / "heldout" / "retrieval.jsonl")
    assert [r["key"] for r in retrieval] == [s["__key__"] for s in heldout]
    assert [r["caption"] for r in retrieval] == [s["txt"].decode() for s in heldout]
    assert not train_keys & {r["key"] for r in retrieval}
    assert len({r["caption"] for r in retrieval}) == len(retrieval)
    assert len({r["video_id"] for r in retrieval}) == len(retrieval)


def test_question_answer_files(dataset: Path) -> None:
    for split in ("train", "heldout"):
        keys = {s["__key__"]: json.loads(s["json"])["scene"] for s in _samples(dataset, split)}
        for record in _jsonl(dataset / "qa" / f"{split}_open_ended.jsonl"):
            scene = keys[record["key"]]
            words = {scene["background"]} | {str(v) for o in scene["objects"] for v in o.values()}
            assert record["answer"] in words | {"one", "two", "three"}
            assert record["answer_type"] in {"color", "shape", "size", "direction", "speed", "count", "background"}
        for record in _jsonl(dataset / "qa" / f"{split}_multiple_choice.jsonl"):
            assert record["key"] in keys
            assert len(record["options"]) == 5
            assert len(set(record["options"])) == 5
            assert 0 <= record["answer"] < 5
        for record in _jsonl(dataset / "qa" / f"{split}_fill_in_blank.jsonl"):
            assert record["key"] in keys
            assert record["text"].split().count(MASK) == 1
            assert record["answer"] in VOCABULARY


def test_same_seed_same_bytes_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    prepare_synthetic(str(tmp_path / "again"), seed=0, **TINY)
    prepare_synthetic(str(tmp_path / "other"), seed=1, **TINY)
    files = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(
        str(p.relative_to(tmp_path / "again")) for p in (tmp_path / "again").rglob("*") if p.is_file()
    )
    for name in files:
        assert (dataset / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (dataset / "webvid" / "00000.tar").read_bytes() != (tmp_path / "other" / "webvid" / "00000.tar").read_bytes()


def test_palette_is_separated_from_backgrounds() -> None:
    for color in COLORS.values():
        for background in BACKGROUNDS.values():
            assert np.linalg.norm(np.subtract(color, background)) > 80
    assert set(SIZES) == {"small", "large"}
    assert caption(Scene("gray", (Entity("star", "red", "large", "left", "fast", 2),), ()), "plain") == (
        "two large red stars move left quickly on a gray background"
    )


def test_rejects_unequal_train_shards(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="samples_per_shard"):
        prepare_synthetic(str(tmp_path), **{**TINY, "train_videos": 6})
    with pytest.raises(ValueError, match="even"):
        prepare_synthetic(str(tmp_path), **{**TINY, "size": 33})


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(tmp_path), "--train-videos", "4", "--train-images", "4", "--heldout-videos", "2"]
    args += ["--size", "32", "--frames", "2", "--samples-per-shard", "2", "--seed", "3"]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["arguments"]["seed"] == 3
    assert manifest["splits"]["train"]["urls"] == "webvid/{00000..00001}.tar"
    assert os.path.isfile(tmp_path / "heldout" / "retrieval.jsonl")
    assert "webvid" in capsys.readouterr().out
