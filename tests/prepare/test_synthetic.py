import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from clover_pl.data.pos_tagging import LexiconTagger
from clover_pl.data.shards import expand_urls, iter_shard, read_stats
from clover_pl.prepare.synthetic import (
    GROUNDS,
    MASK,
    MATERIALS,
    VOCABULARY,
    Entity,
    Scene,
    Track,
    caption,
    caption_words,
    encode_mp4,
    main,
    prepare_synthetic,
    render,
)
from clover_pl.prepare.synthetic.questions import consensus_choice, text_only_accuracy
from clover_pl.prepare.synthetic.scene import HOP, RADIUS, TRAVEL

TINY = {
    "train_videos": 8,
    "train_images": 4,
    "heldout_videos": 8,
    "validation_videos": 4,
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
    assert manifest["data_version"] == 2
    assert splits["train"]["urls"] == "webvid/{00000..00001}.tar"
    assert splits["images"]["urls"] == "cc3m/00000.tar"
    assert splits["validation"]["urls"] == "validation/00002.tar"
    assert splits["heldout"]["urls"] == "heldout/{00003..00004}.tar"
    assert splits["train"]["shards"] == {"00000.tar": 4, "00001.tar": 4}
    assert manifest["vocabulary"] == VOCABULARY
    assert read_stats(str(dataset / "webvid" / "00001.tar"))["successes"] == 4
    for name, count in (("train", 8), ("heldout", 8)):
        entry = manifest["qa"][name]["multiple_choice"]
        assert entry["count"] == count
        assert (dataset / entry["path"]).is_file()
    assert set(manifest["answer_vocabularies"]["open_ended"]) <= set(VOCABULARY)


def test_no_leakage_between_train_validation_and_heldout(dataset: Path) -> None:
    keys = {split: [s["__key__"] for s in _samples(dataset, split)] for split in ("train", "validation", "heldout")}
    assert [len(set(v)) for v in keys.values()] == [8, 4, 8]
    assert not set(keys["validation"]) & set(keys["heldout"])
    assert not set(keys["train"]) & (set(keys["validation"]) | set(keys["heldout"]))
    for split in ("validation", "heldout"):  # every caption names one clip of its set
        captions = [s["txt"].decode() for s in _samples(dataset, split)]
        assert len(set(captions)) == len(captions)
    retrieval = _jsonl(dataset / "heldout" / "retrieval.jsonl")
    assert [r["key"] for r in retrieval] == keys["heldout"]


def test_quickstart_validates_on_the_validation_split_not_the_test_clips() -> None:
    text = Path("conf/quickstart.yaml").read_text()
    # Default arguments: 2048 train videos / 256 per shard = 8 shards, then 256 validation clips / 128 = 2 shards.
    assert "validation_shards: ${oc.env:CLOVER_DATA,data/synthetic}/validation/{00008..00009}.tar" in text
    assert "/heldout/" not in text


def test_captions_state_every_fact_with_a_noun_or_verb(dataset: Path) -> None:
    tagger = LexiconTagger()
    for split in ("train", "heldout"):
        for sample in _samples(dataset, split):
            meta = json.loads(sample["json"])
            text = sample["txt"].decode()
            assert meta["caption"] == text
            words = text.split()
            units = tagger.candidate_units(words)
            candidates = {words[i] for i in [*units.nouns, *units.verbs]}
            for drawn in meta["scene"]["objects"]:
                assert drawn["material"] in candidates, text
                assert {drawn["object"], drawn["object"] + "s"} & candidates, text
                assert any(word.startswith(drawn["action"][:3]) for word in candidates), text


def test_caption_templates() -> None:
    scene = Scene("water", (Entity("ball", "jade", "roll", 1), Entity("cone", "amethyst", "spin", 3)))
    assert caption(scene, "plain") == "a jade ball rolls and a trio of amethyst cones spin on water"
    assert caption(scene, "made") == "a ball made of jade rolls and a trio of cones made of amethyst spin on water"
    assert caption(scene, "there") == "there is a jade ball rolling and a trio of amethyst cones spinning on water"
    assert caption(scene, "short") == "a jade ball rolls and a trio of amethyst cones spin"
    assert caption(Scene("dirt", (Entity("ring", "amethyst", None, 1),)), "plain") == "an amethyst ring on dirt"
    facts = [fact for _, fact in caption_words(scene, "plain") if fact]
    assert facts == ["material", "object", "action", "count", "material", "object", "action", "ground"]
    with pytest.raises(ValueError, match="valid templates"):
        caption(scene, "long")


def _centre_and_shade(frame: np.ndarray, ground: str) -> tuple[np.ndarray, np.ndarray]:
    drawn = np.abs(frame.astype(int) - GROUNDS[ground]).max(axis=-1) > 40
    dark = drawn & (np.abs(frame.astype(int) - MATERIALS["ruby"]).max(axis=-1) > 40)
    return np.argwhere(drawn).mean(axis=0)[::-1], np.argwhere(dark).mean(axis=0)[::-1]


@pytest.mark.parametrize("action", ["rest", "slide", "roll", "fall", "bounce", "spin"])
def test_actions_move_and_turn_as_named(action: str) -> None:
    size, frames = 64, 9
    entity = Entity("block", "ruby", action, 1, heading=1)
    scene = Scene("concrete", (entity,), (Track(0, (18, 16 if action == "fall" else 32)),))
    video = render(scene, size, frames, np.random.default_rng(0))
    (c0, d0), (cm, _), (c1, d1) = (_centre_and_shade(video[t], "concrete") for t in (0, frames // 2, frames - 1))
    shift = c1 - c0
    expected_shift = {"slide": (TRAVEL * size, 0), "roll": (TRAVEL * size, 0), "fall": (0, TRAVEL * size)}
    np.testing.assert_allclose(shift, expected_shift.get(action, (0, 0)), atol=1.0)
    if action == "bounce":
        assert cm[1] - c0[1] == pytest.approx(-HOP * size, abs=1.0)
    turned = np.linalg.norm((d1 - c1) - (d0 - c0)) > 0.3 * RADIUS * size  # the dark half swings round
    assert turned == (action in ("roll", "spin"))


def test_video_decodes_with_material_colours(dataset: Path) -> None:
    for sample in _samples(dataset, "train") + _samples(dataset, "heldout"):
        frames = _decode(sample["mp4"])
        assert len(frames) == 4
        assert frames[0].shape == (32, 32, 3)
        scene = json.loads(sample["json"])["scene"]
        for drawn in scene["objects"]:
            if drawn["action"] in ("rest", "slide", "fall", "bounce") and drawn["object"] in ("ball", "block"):
                x, y = drawn["start"]
                top = round(y - 0.6 * drawn["radius"])  # the upper, unshaded half (chroma is 2x2-subsampled)
                pixel = frames[0][top - 1 : top + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
                nearest = min([*MATERIALS, "ground"], key=lambda name: np.abs(pixel - _rgb(name, scene)).sum())
                assert nearest == drawn["material"]


def _rgb(name: str, scene: dict) -> np.ndarray:
    return np.asarray(GROUNDS[scene["ground"]] if name == "ground" else MATERIALS[name])


def test_images_decode(dataset: Path) -> None:
    samples = _samples(dataset, "images")
    assert [s["__key__"] for s in samples] == [f"00000{i}" for i in range(4)]
    for sample in samples:
        assert sorted(k for k in sample if k != "__key__") == ["jpg", "json", "txt"]
        (image,) = _decode(sample["jpg"])
        assert image.shape == (32, 32, 3)
        for drawn in json.loads(sample["json"])["scene"]["objects"]:
            assert drawn["action"] is None


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


def test_one_fact_multiple_choice(tmp_path: Path) -> None:
    prepare_synthetic(str(tmp_path), seed=2, **{**TINY, "heldout_videos": 32, "heldout_samples_per_shard": 32})
    records = _jsonl(tmp_path / "qa" / "heldout_multiple_choice.jsonl")
    scenes = {s["__key__"]: json.loads(s["json"])["scene"] for s in _samples(tmp_path, "heldout")}
    captions = {s["__key__"]: s["txt"].decode() for s in _samples(tmp_path, "heldout")}
    kinds = set()
    for record in records:
        options = [option.split() for option in record["options"]]
        truth = options[record["answer"]]
        assert len({len(words) for words in options}) == 1
        assert len(set(record["options"])) == 5
        differing = {i for words in options for i, (a, b) in enumerate(zip(words, truth, strict=True)) if a != b}
        articles = {i for i in differing if {words[i] for words in options} <= {"a", "an"}}  # "an amethyst"
        differing -= articles
        assert len(differing) == 1  # every distractor changes the same word, so exactly one fact
        (position,) = differing
        assert len({words[position] for words in options}) == 5  # five different values: no majority
        if not articles:
            assert consensus_choice(record["options"]) == [0, 1, 2, 3, 4]
        objects = scenes[record["key"]]["objects"]
        pair = len({o["group"] for o in objects}) == 2
        assert record["answer_type"] == record["fact"] + ("_pair" if pair else "")
        if pair:
            other = next(o for o in objects if o["group"] != record["entity"])
            mine = next(o for o in objects if o["group"] == record["entity"])
            if other[record["fact"]] != mine[record["fact"]]:  # the binding distractor is there
                assert any(other[record["fact"]] in words[position] for words in options)
        kinds.add(record["answer_type"])
        assert len(captions[record["key"]].split()) >= 4
    assert {"object", "material", "action"} <= {kind.removesuffix("_pair") for kind in kinds}
    baseline = text_only_accuracy([r for r in records if "an" not in " ".join(r["options"]).split()])
    assert baseline["consensus"] == pytest.approx(20.0)
    assert baseline["chance"] == pytest.approx(20.0)


def test_same_seed_same_bytes_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    prepare_synthetic(str(tmp_path / "again"), seed=0, **TINY)
    prepare_synthetic(str(tmp_path / "other"), seed=1, **TINY)
    files = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file())
    again = tmp_path / "again"
    assert files == sorted(str(p.relative_to(again)) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (dataset / name).read_bytes() == (again / name).read_bytes(), name
    assert (dataset / "webvid" / "00000.tar").read_bytes() != (tmp_path / "other" / "webvid" / "00000.tar").read_bytes()


def test_palette_is_separated_from_grounds() -> None:
    for color in MATERIALS.values():
        for ground in GROUNDS.values():
            assert np.linalg.norm(np.subtract(color, ground)) > 80


def test_encoded_clip_round_trips() -> None:
    scene = Scene("dirt", (Entity("ball", "gold", "slide", 1),), (Track(0, (16, 32)),))
    frames = _decode(encode_mp4(render(scene, 64, 4, np.random.default_rng(0)), fps=8))
    assert len(frames) == 4
    assert frames[0].shape == (64, 64, 3)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="samples_per_shard"):
        prepare_synthetic(str(tmp_path), **{**TINY, "train_videos": 6})
    with pytest.raises(ValueError, match="even"):
        prepare_synthetic(str(tmp_path), **{**TINY, "size": 33})
    with pytest.raises(ValueError, match="validation_videos"):
        prepare_synthetic(str(tmp_path), **{**TINY, "validation_videos": 0})


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(tmp_path), "--train-videos", "4", "--train-images", "4", "--heldout-videos", "2"]
    args += ["--validation-videos", "2", "--size", "32", "--frames", "2", "--samples-per-shard", "2", "--seed", "3"]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["arguments"]["seed"] == 3
    assert manifest["splits"]["train"]["urls"] == "webvid/{00000..00001}.tar"
    assert os.path.isfile(tmp_path / "heldout" / "retrieval.jsonl")
    assert "validation" in capsys.readouterr().out


def test_rendering_reports_progress_per_split_against_its_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOVER_PROGRESS_INTERVAL", "0")  # a plain line per update (stderr is not a terminal here)
    prepare_synthetic(str(tmp_path), seed=0, **TINY)
    err = capsys.readouterr().err
    for split, total in (("train", 8), ("images", 4), ("validation", 4), ("heldout", 8)):
        lines = [line for line in err.splitlines() if line.startswith(f"synthetic {split}: ")]
        assert lines, f"no progress for {split}"
        assert lines[-1].startswith(f"synthetic {split}: {total}/{total} (100%)")
