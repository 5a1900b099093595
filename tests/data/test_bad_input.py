"""The bad-input zoo: each case decodes correctly or is skipped with its reason, and end to end every skip is counted.

The cases are rendered in memory by `zoo.py` (issue: zero-byte, truncated or non-video files, audio-only files,
one-frame videos, odd sizes, extreme aspect ratios, rotation metadata, variable frame rate, unreadable images, a
corrupt member inside an otherwise good tar).
"""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from zoo import (
    BLUE,
    CASES,
    GREEN,
    case,
    corrupt_header,
    cut_before,
    cut_inside,
    frame_ids,
    good_video,
    white_corner,
    write_tar,
)

from clover_pl.data import PretrainDataModule
from clover_pl.data.transforms import normalize, normalize_video
from clover_pl.data.video import DecodeError, decode_image, decode_video, sample_frame_indices

VOCAB = Path(__file__).parents[1] / "assets" / "vocab.txt"
NUM_SAMPLES = 4


def decode(
    name: str, short_side: int | None = None, mode: str = "middle", seed: int = 0, seek_gap: int | None = 8
) -> torch.Tensor:
    """The case's clip: `NUM_SAMPLES` frames of a video, or an image as a one-frame clip."""
    zoo_case = case(name)
    if zoo_case.member == "mp4":
        generator = torch.Generator().manual_seed(seed)
        return decode_video(zoo_case.data, NUM_SAMPLES, mode, short_side, generator, seek_gap=seek_gap)
    return decode_image(zoo_case.data, short_side=short_side)


def assert_real_frames(clip: torch.Tensor) -> None:
    """Every frame shows the rendered picture: the constant channels, not a blank or green concealment fill."""
    for frame in clip:
        green, blue = (frame[channel].float().median().item() for channel in (1, 2))
        assert abs(green - GREEN) < 8
        assert abs(blue - BLUE) < 8


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_decodes_correctly_or_raises_its_reason(name: str) -> None:
    zoo_case = case(name)
    if zoo_case.reason is not None:
        for seek_gap in (None, 1):
            with pytest.raises(DecodeError) as caught:
                decode(name, seek_gap=seek_gap)
            assert caught.value.reason == zoo_case.reason, caught.value
        return

    video = zoo_case.member == "mp4"
    clip = decode(name)
    height, width = zoo_case.size
    assert clip.shape == (NUM_SAMPLES if video else 1, 3, height, width)
    assert clip.dtype == torch.uint8
    assert_real_frames(clip)
    assert {white_corner(frame) for frame in clip} == {zoo_case.corner}
    if not video:
        assert frame_ids(clip) == [5]
    else:
        assert frame_ids(clip) == sample_frame_indices(zoo_case.frames, NUM_SAMPLES, "middle")
        # Random sampling, sequential and seeking: the drawn frames, in temporal order (VFR: by frame, not time).
        expected = sample_frame_indices(zoo_case.frames, NUM_SAMPLES, "random", torch.Generator().manual_seed(3))
        for seek_gap in (None, 1):
            assert frame_ids(decode(name, mode="random", seed=3, seek_gap=seek_gap)) == expected
    # Short-side resizing keeps the displayed orientation and the aspect ratio (to a pixel).
    resized = decode(name, short_side=24)
    short, long = sorted(resized.shape[-2:])
    assert short == 24
    assert abs(long - 24 * max(height, width) / min(height, width)) <= 1
    assert (resized.shape[-2] > resized.shape[-1]) == (height > width)
    assert {white_corner(frame) for frame in resized} == {zoo_case.corner}


# --- end to end through PretrainDataModule ----------------------------------------------------------------------


def sample(key: int, member: str, media: bytes | None, kind: str = "video") -> dict:
    """A sample in the video2dataset (json, mp4, txt) or img2dataset (jpg, json, txt) layout."""
    meta = {"key": f"{key:08d}", "status": "success", "caption": "a red square moving left"}
    if kind == "image":
        meta.update(width=64, height=48)
    members = {"__key__": f"{key:08d}", "json": json.dumps(meta), "txt": meta["caption"]}
    if media is not None:
        members[member] = media
    return members


def run_epoch(**settings) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Sorted ids per source (videos, images) of one training epoch, and the skips counted over its batches."""
    module = PretrainDataModule(
        tokenizer=str(VOCAB),
        batch_size=1,
        image_size=32,
        max_text_length=16,
        video_mask_grid=(4, 4),
        video_mask_cells=5,
        **settings,
    )
    module.setup("fit")
    ids: dict[str, list[int]] = {"video": [], "image": []}
    skipped: Counter[str] = Counter()
    blank = normalize(torch.zeros(1, 3, 1, 1))  # what an all-zero clip becomes
    mixer = module.train_dataloader()
    for batch in mixer:
        ids["video" if batch["video"].shape[1] > 1 else "image"] += batch["id"].tolist()
        for clip in normalize_video(batch["video"]):  # uint8 from the lean path
            assert not torch.allclose(clip, blank.expand_as(clip), atol=1e-3), "a blank clip stands in for a sample"
    skipped.update(mixer.ledger.epoch)
    return {source: sorted(keys) for source, keys in ids.items()}, {reason: n for reason, n in skipped.items() if n}


@pytest.mark.slow
def test_an_epoch_over_the_zoo_keeps_every_good_sample_and_counts_every_bad_one(tmp_path: Path) -> None:
    videos = [name for name in CASES if case(name).member == "mp4"]
    images = [name for name in CASES if case(name).member != "mp4"]
    (tmp_path / "video").mkdir()
    (tmp_path / "image").mkdir()
    video_samples = [sample(key, "mp4", case(name).data) for key, name in enumerate(videos)]
    write_tar(str(tmp_path / "video" / "00000.tar"), video_samples[0::2])
    failed_download = sample(100, "mp4", None)  # video2dataset keeps the json and txt of a failed download
    write_tar(str(tmp_path / "video" / "00001.tar"), [*video_samples[1::2], failed_download])
    # Shard 2: the third sample's mp4 header is damaged; shard 3 is cut off inside the third sample's mp4.
    damaged = [sample(200 + index, "mp4", good_video()) for index in range(8)]
    write_tar(str(tmp_path / "video" / "00002.tar"), damaged[:4])
    corrupt_header(str(tmp_path / "video" / "00002.tar"), "00000202.mp4", block="last")
    write_tar(str(tmp_path / "video" / "00003.tar"), damaged[4:])
    cut_inside(str(tmp_path / "video" / "00003.tar"), "00000206.mp4")
    image_samples = [sample(key, case(name).member, case(name).data, "image") for key, name in enumerate(images)]
    write_tar(str(tmp_path / "image" / "00000.tar"), image_samples)

    ids, skipped = run_epoch(
        video_shards=str(tmp_path / "video" / "{00000..00003}.tar"),
        image_shards=str(tmp_path / "image" / "00000.tar"),
        num_frames=NUM_SAMPLES,
        num_workers=2,
        shuffle_buffer=4,
    )
    good_videos = [key for key, name in enumerate(videos) if case(name).reason is None]
    assert ids["video"] == [*good_videos, 200, 201, 203, 204, 205]  # 202 lost its mp4; 206 and 207 were cut off
    assert ids["image"] == [key for key, name in enumerate(images) if case(name).reason is None]
    expected = Counter(f"bad_media_{case(name).reason}" for name in CASES if case(name).reason is not None)
    expected.update({"no_media": 2, "corrupt_tar": 2})  # the failed download and 202; the two damaged shards
    assert skipped == dict(expected)


TAR_DAMAGE = {
    # name: (pax headers, damage, ids that arrive, skips counted)
    "intact": (True, None, [0, 1, 2, 3], {}),
    # webdataset's TarWriter gives each member a pax header, then its ustar header: damage to either is skipped over.
    "pax_header": (True, ("header", "00000001.txt", "first"), [0, 1, 2, 3], {"corrupt_tar": 1}),
    "ustar_header": (True, ("header", "00000001.mp4", "last"), [0, 2, 3], {"corrupt_tar": 1, "no_media": 1}),
    "gnu_header": (False, ("header", "00000001.txt", "first"), [0, 2, 3], {"corrupt_tar": 1, "no_caption": 1}),
    # The last member's header: nothing follows to show a gap, so only its sample's loss is counted.
    "last_header": (False, ("header", "00000003.txt", "first"), [0, 1, 2], {"no_caption": 1}),
    "cut_inside_member": (True, ("inside", "00000002.mp4"), [0, 1], {"corrupt_tar": 1}),
    "cut_between_samples": (True, ("before", "00000002.json"), [0, 1], {"corrupt_tar": 1}),
}


@pytest.mark.parametrize("damage", list(TAR_DAMAGE))
def test_tar_damage_is_counted_once_and_the_rest_of_the_shard_survives(tmp_path: Path, damage: str) -> None:
    pax, how, ids, skipped = TAR_DAMAGE[damage]
    path = str(tmp_path / "00000.tar")
    write_tar(path, [sample(index, "mp4", good_video()) for index in range(4)], pax=pax)
    if how is not None:
        kind, member, *block = how
        {"header": corrupt_header, "inside": cut_inside, "before": cut_before}[kind](path, member, *block)
    assert run_epoch(video_shards=path, num_frames=2, num_workers=0) == ({"video": ids, "image": []}, skipped)
