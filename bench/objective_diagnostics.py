"""What does the alignment loss see? Similarities of the pretraining candidates in held-out-free train batches.

For a pretraining checkpoint of the tiny backbone on the synthetic data, encodes ``--batches`` video batches of the
train shards (semantic masking, as in pretraining) and reports, in cosine units of the dual-encoder embeddings:

- ``pos complete`` / ``pos masked``: cos(video_i, caption_i) and cos(video_i, masked caption_i);
- ``neg complete`` / ``neg masked``: the same against the other clips of the batch;
- ``rank margin``: pos complete - pos masked, what the ranking term pushes to 0.25 (5 logits at tau 0.05);
- ``text-only shift``: mean over captions of [cos(every video, caption) - cos(every video, masked caption)], the part
  of that margin a caption gets from its [MASK] tokens alone, whatever the video;
- ``complete beats masked``: share of clips whose own caption outscores their own masked caption;
- ``top-1 complete``: share of clips whose own complete caption is the best of all complete and masked captions of
  the batch (the exclusive NCE's video-anchored target), ``top-1 masked own``: share where the own masked caption is.

    PYTHONPATH=src python bench/objective_diagnostics.py CKPT [CKPT ...] --data data/synthetic
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

from clover_pl.data import PretrainDataModule
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask


def diagnose(checkpoint: str, data: str, batches: int, seed: int = 0) -> dict[str, float]:
    """The statistics of the module docstring for one checkpoint (averaged over batches)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hyper = {k: v for k, v in state.get("hyper_parameters", {}).items() if k in ("embed_dim", "use_tma", "use_fused")}
    task = PretrainTask(clover_tiny(), embed_dim=hyper.get("embed_dim", 64), use_tma=hyper.get("use_tma", True))
    task.load_state_dict(state["state_dict"], strict=False)
    task.eval()
    module = PretrainDataModule(
        tokenizer=os.path.join(data, "vocab.txt"),
        video_shards=os.path.join(data, "webvid", "{00000..00007}.tar"),
        batch_size=32,
        num_frames=4,
        image_size=32,
        crop_scale=(0.5, 1.0),
        max_text_length=32,
        video_mask_grid=(4, 4),
        video_mask_cells=5,
        num_workers=0,
        shuffle_buffer=64,
        seed=seed,
    )
    module.setup("fit")
    totals: dict[str, float] = {}
    seen = 0
    with torch.no_grad():
        for batch in module.train_dataloader():
            backbone, heads = task.backbone, task.heads
            mask = batch["attention_mask"]
            video = F.normalize(heads.project_video(backbone.encode_video(batch["video"])), dim=-1)
            text = F.normalize(heads.project_text(backbone.encode_text(batch["input_ids"], mask)), dim=-1)
            masked = F.normalize(heads.project_text(backbone.encode_text(batch["masked_input_ids"], mask)), dim=-1)
            complete_scores, masked_scores = video @ text.t(), video @ masked.t()  # (B, B)
            eye = torch.eye(len(video), dtype=torch.bool)
            both = torch.cat([complete_scores, masked_scores], dim=1)  # (B, 2B)
            best = both.argmax(dim=1)
            rows = torch.arange(len(video))
            values = {
                "pos complete": complete_scores.diagonal().mean(),
                "pos masked": masked_scores.diagonal().mean(),
                "neg complete": complete_scores[~eye].mean(),
                "neg masked": masked_scores[~eye].mean(),
                "rank margin": (complete_scores.diagonal() - masked_scores.diagonal()).mean(),
                "text-only shift": (complete_scores - masked_scores).mean(),
                "complete beats masked": (complete_scores.diagonal() > masked_scores.diagonal()).float().mean(),
                "top-1 complete": (best == rows).float().mean(),
                "top-1 masked own": (best == rows + len(video)).float().mean(),
            }
            for name, value in values.items():
                totals[name] = totals.get(name, 0.0) + float(value)
            seen += 1
            if seen == batches:
                break
    return {name: value / seen for name, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    results = {path: diagnose(path, args.data, args.batches) for path in args.checkpoints}
    names = list(next(iter(results.values())))
    print("| checkpoint | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for path, values in results.items():
        print(f"| {path} | " + " | ".join(f"{values[name]:.3f}" for name in names) + " |")


if __name__ == "__main__":
    main()
