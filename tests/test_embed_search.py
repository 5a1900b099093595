"""`clover-pl embed` and `clover-pl search` on the synthetic clips: an index with ids, top-k hits, a contact sheet."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from clover_pl.cli import main, run_cli
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import decode_video
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask

ASSETS = Path(__file__).parent / "assets"


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


@pytest.fixture(scope="module")
def clips(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic test clips as plain files (+ one broken file and a non-video), their captions, a checkpoint,
    and the index `clover-pl embed` wrote of them (its printed output under ``printed``)."""
    from clover_pl.prepare.synthetic_retrieval import prepare_synthetic_retrieval

    tmp_path = tmp_path_factory.mktemp("embed")
    root = tmp_path / "retrieval"
    prepare_synthetic_retrieval(str(synthetic_data), str(root), train_videos=4, val_videos=2)
    records = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    videos = tmp_path / "my_videos"
    videos.mkdir()
    for record in records:
        (videos / f"{record['video_id']}.mp4").write_bytes((root / record["video"]).read_bytes())
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(40))  # a download cut short
    (videos / "notes.txt").write_text("not a video")
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{r['video_id']}\t{r['captions'][0]}\n" for r in records))
    torch.manual_seed(0)
    task = PretrainTask(clover_tiny(), embed_dim=16)
    checkpoint = tmp_path / "model.ckpt"
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(checkpoint)
    clips = {"records": records, "videos": videos, "texts": texts, "checkpoint": checkpoint, "task": task.eval()}
    clips["index"] = tmp_path / "index.pt"
    with pytest.MonkeyPatch.context() as patch:
        printed: list[str] = []
        patch.setattr("builtins.print", lambda *args, **kwargs: printed.append(" ".join(map(str, args))))
        clips["code"] = run(embed_args(clips, clips["index"]))
    clips["printed"] = "\n".join(printed)
    return clips


def embed_args(clips: dict, out: Path) -> list[str]:
    # A checkpoint saved outside a fit records no data settings: they are given.
    return [
        "embed",
        f"--ckpt={clips['checkpoint']}",
        f"--videos={clips['videos']}",
        f"--texts={clips['texts']}",
        f"--out={out}",
        f"--tokenizer={ASSETS / 'vocab.txt'}",
        "--frames=4",
        "--image-size=32",
        "--max-text-length=32",
        "--batch-size=3",
        "--workers=1",
    ]


def test_embed_writes_an_index_with_ids_and_reports_unreadable_videos(clips: dict) -> None:
    index_path, printed = clips["index"], clips["printed"]
    assert clips["code"] == 0
    assert f"skipped {clips['videos'] / 'broken.mp4'}: bad video" in printed
    assert (
        f"indexed {len(clips['records'])} videos (1 skipped as unreadable) and {len(clips['records'])} texts" in printed
    )
    index = torch.load(index_path, weights_only=True)
    ids = sorted(r["video_id"] for r in clips["records"])
    assert index["video_ids"] == ids
    assert [Path(p).name for p in index["video_paths"]] == [f"{i}.mp4" for i in ids]
    assert [entry["path"] for entry in index["skipped"]] == [str(clips["videos"] / "broken.mp4")]
    assert index["video"].shape == (len(ids), 16)
    assert index["text"].shape == (len(ids), 16)
    # Independently: decode the middle frames, centre-crop, run the pretraining task's dual encoder.
    task = clips["task"]
    clip = decode_video((clips["videos"] / f"{ids[1]}.mp4").read_bytes(), 4, mode="middle")
    with torch.no_grad():
        expected = task.heads.project_video(task.backbone.encode_video(ClipTransform(32, train=False)(clip)[None]))
    torch.testing.assert_close(index["video"][1], F.normalize(expected, dim=-1)[0], rtol=1e-4, atol=1e-5)


def test_search_returns_the_top_k_by_cosine_and_draws_them(clips: dict, tmp_path: Path, capsys) -> None:
    index_path = clips["index"]
    index = torch.load(index_path, weights_only=True)
    query_id = index["text_ids"][2]
    capsys.readouterr()
    sheet = tmp_path / "hits.png"
    assert run(["search", f"--index={index_path}", f"--query-id={query_id}", "-k", "3", f"--sheet={sheet}"]) == 0
    printed = capsys.readouterr().out.splitlines()
    # Naive reference: every video's dot product with the query, best first.
    query = index["text"][2]
    scores = [
        (float(sum(v * q for v, q in zip(row.tolist(), query.tolist(), strict=False))), i)
        for i, row in enumerate(index["video"])
    ]
    expected = [index["video_ids"][i] for _, i in sorted(scores, key=lambda pair: -pair[0])[:3]]
    assert [line.split()[2] for line in printed[1:4]] == expected
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed[-1] == f"contact sheet: {sheet}"


def test_a_text_query_is_embedded_with_the_index_model(clips: dict, capsys) -> None:
    index_path = clips["index"]
    caption = clips["records"][0]["captions"][0]
    code = run(
        ["search", f"--index={index_path}", "--query", caption, "-k", "2", f"--tokenizer={ASSETS / 'vocab.txt'}"]
    )
    assert code == 0
    by_text = capsys.readouterr().out.splitlines()[1:3]
    row = torch.load(index_path, weights_only=True)["text_ids"].index(clips["records"][0]["video_id"])
    run(["search", f"--index={index_path}", f"--query-id={clips['records'][0]['video_id']}", "-k", "2"])
    by_id = capsys.readouterr().out.splitlines()[1:3]
    assert row >= 0
    assert by_text == by_id
    assert index_path.with_suffix(".search.png").is_file()


def test_user_errors_are_one_line(clips: dict, tmp_path: Path, capsys) -> None:
    assert run(["embed", f"--ckpt={clips['checkpoint']}", f"--videos={tmp_path / 'nowhere'}", "--out=x.pt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nowhere" in err
    missing_settings = [f"--ckpt={clips['checkpoint']}", f"--texts={clips['texts']}", "--out=x.pt"]
    assert run(["embed", *missing_settings, f"--tokenizer={ASSETS / 'vocab.txt'}"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert run(["search", f"--index={clips['index']}", "--query-id=nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert run(["search", f"--index={clips['texts']}", "--query-id=1"]) == 2
    assert "not a readable index" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1800)  # may run the session quickstart first
def test_search_finds_captions_clips_at_the_rate_the_retrieval_metrics_predict(
    quickstart: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Embed the synthetic retrieval test clips with the quickstart checkpoint, search every caption: the share of
    captions whose own clip is in the top 1 / 5 / 10 equals RetrievalTask's text-to-video R@1 / R@5 / R@10."""
    data, pretrained = quickstart
    root = tmp_path / "retrieval"
    assert run(["prepare", "synthetic_retrieval", "--synthetic", str(data), "--out", str(root)]) == 0
    checkpoint = pretrained / "checkpoints" / "last.ckpt"
    monkeypatch.setenv("CLOVER_DATA", str(data))
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "run"))
    config = ["--config=conf/retrieval/synthetic.yaml", "--trainer.enable_progress_bar=false"]
    metrics = run_cli(
        [
            "test",
            *config,
            "--model.init_args.init_from=null",
            f"--data.init_args.root={root}",
            f"--ckpt_path={checkpoint}",
        ]
    ).model.results["test"]
    records = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{r['video_id']}\t{root / r['video']}\n" for r in records))
    texts = tmp_path / "captions.txt"
    texts.write_text("".join(f"{r['video_id']}\t{r['captions'][0]}\n" for r in records))
    index_path = tmp_path / "index.pt"
    # The checkpoint records its vocabulary and evaluation settings: nothing else is needed.
    assert run(["embed", f"--ckpt={checkpoint}", f"--videos={listing}", f"--texts={texts}", f"--out={index_path}"]) == 0
    index = torch.load(index_path, weights_only=True)
    assert len(index["video_ids"]) == len(records) == metrics["gallery"]
    ranks = []
    for row, video_id in enumerate(index["text_ids"]):
        scores = index["video"] @ index["text"][row]
        own = scores[index["video_ids"].index(video_id)]
        ranks.append(int((scores > own).sum()) + 1)  # ties in favour of the caption (measure zero in float)
    for k in (1, 5, 10):
        found = 100.0 * sum(rank <= k for rank in ranks) / len(ranks)
        assert found == pytest.approx(metrics[f"t2v_r@{k}"], abs=100.0 / len(ranks) + 1e-6), (k, found, metrics)
    assert found > 3 * 10 * metrics["chance_r@1"]  # R@10 well above chance: the search finds real matches
    capsys.readouterr()
    best = next(r for r, rank in zip(records, ranks, strict=True) if rank == 1)
    assert run(["search", f"--index={index_path}", "--query", best["captions"][0], "-k", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[2] == best["video_id"]
