"""Largest pretraining batch per GPU that fits, with and without activation checkpointing of the Video Swin stages.

One trial = two full training steps (the real objective, its backward and an AdamW step, so that the optimizer's
state exists) at a batch size; an out-of-memory error means it does not fit. The batch doubles until a trial fails,
then a binary search finds the largest that fits. Settings as in a bf16-mixed run: bf16 autocast, SDPA attention,
fused AdamW, no compilation. GPU only: a CPU has no device memory to fill (and swaps long before it fails).

    python bench/max_batch.py                          # base, 8 frames at 224 px, text 30 (make bench-gpu)
    python bench/max_batch.py --stages 2               # checkpoint only stage 3 (0-based index 2)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # less fragmentation between trials


def trial(rig: dict, args: argparse.Namespace, batch_size: int, steps: int = 2) -> tuple[float, float] | None:
    """(peak GiB, seconds per step) of ``steps`` training steps at a batch size, or None when memory runs out."""
    import torch

    from levers import make_batch

    task, optimizer = rig["task"], rig["optimizer"]
    settings = argparse.Namespace(batch=batch_size, frames=args.frames, size=args.size, text_length=args.text_length)
    batch = None
    try:
        batch = make_batch(settings, task.backbone.text.vocab_size, rig["grid"], torch.device("cuda"))
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = task.compute_losses(batch)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rig["parameters"], 15.0, foreach=True)
            optimizer.step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30, (time.perf_counter() - start) / steps
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        del batch
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()


def build(args: argparse.Namespace, checkpointing: bool) -> dict:
    """The task on the GPU with the stages' checkpointing set, its fused AdamW and the video mask grid."""
    import torch

    from clover_pl.flops import BackboneSizes, video_token_grid
    from clover_pl.models import clover_backbone
    from clover_pl.tasks import PretrainTask
    from clover_pl.tasks.optimization import decay_groups

    torch.manual_seed(0)
    task = PretrainTask(clover_backbone(args.preset), embed_dim=64 if args.preset == "tiny" else 768)
    task = task.to("cuda").train()
    for index, layer in enumerate(task.backbone.video.layers):
        layer.activation_checkpointing = checkpointing and (args.stages is None or index in args.stages)
    _, grid_h, grid_w = video_token_grid(
        BackboneSizes.from_backbone(task.backbone).video, args.frames, args.size, args.size
    )
    return {
        "task": task,
        "optimizer": torch.optim.AdamW(decay_groups(task.named_parameters(), 0.005), lr=5e-5, fused=True),
        "parameters": [p for p in task.parameters() if p.requires_grad],
        "grid": (grid_h, grid_w),
    }


def search(rig: dict, args: argparse.Namespace) -> tuple[int, bool, int]:
    """(largest batch that fits, whether the limit was reached, trials run)."""
    results: dict[int, tuple[float, float] | None] = {}
    fits, fails, size = 0, args.limit + 1, args.start
    while size <= args.limit:  # double until a trial fails
        results[size] = trial(rig, args, size)
        if results[size] is None:
            fails = size
            break
        fits, size = size, size * 2
    while fits and fails - fits > 1:  # binary search between the last fit and the first failure
        middle = (fits + fails) // 2
        results[middle] = trial(rig, args, middle)
        fits, fails = (middle, fails) if results[middle] is not None else (fits, middle)
    return fits, fails > args.limit, len(results)


def main() -> None:
    """Search the largest batch for each checkpointing setting and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--text-length", type=int, default=30)
    parser.add_argument("--start", type=int, default=16, help="first batch size tried")
    parser.add_argument("--limit", type=int, default=1024, help="largest batch size tried")
    parser.add_argument("--stages", type=int, nargs="*", default=None, help="stages to checkpoint (default: all)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("max_batch.py measures GPU memory and needs a CUDA device; none is visible here")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for levers.make_batch
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    print(
        f"preset={args.preset} frames={args.frames} size={args.size} text={args.text_length} "
        f"device={torch.cuda.get_device_name()} ({memory:.0f} GiB), torch {torch.__version__}, "
        "bf16 autocast, SDPA, fused AdamW"
    )
    print("| activation checkpointing | largest batch | peak GiB at that batch | clips/s at that batch | trials |")
    print("|---|---|---|---|---|")
    for checkpointing in (False, True):
        rig = build(args, checkpointing)
        fits, at_limit, trials = search(rig, args)
        label = "none" if not checkpointing else ("all stages" if args.stages is None else f"stages {args.stages}")
        if not fits:
            print(f"| {label} | below {args.start}: try --start 1 | | | {trials} |", flush=True)
        else:
            measured = trial(rig, args, fits, steps=3)
            peak, clips = (f"{measured[0]:.1f}", f"{fits / measured[1]:.1f}") if measured else ("?", "?")
            note = " (the --limit)" if at_limit else ""
            print(f"| {label} | {fits}{note} | {peak} | {clips} | {trials + 1} |", flush=True)
        del rig
        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
