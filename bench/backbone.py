"""Backbone forward+backward speed and peak memory, with ratios against fp32 eager measured in the same run.

One step = encode_video + encode_text + fuse, as a training step would run them once, then backward of a scalar.
Each variant runs in its own process so that its peak RSS (CPU) is its own.

    python bench/backbone.py                      # base, batch 2, 8 frames, 224 px, text 30 (issue 2's setting)
    python bench/backbone.py --preset tiny --size 32 --frames 4 --batch 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def variants(device: str) -> dict[str, dict[str, str]]:
    """Name -> settings; the first is the baseline."""
    if device == "cuda":
        return {
            "fp32": {"precision": "fp32", "attention": "sdpa"},
            "bf16-autocast": {"precision": "bf16", "attention": "sdpa"},
            "bf16 + BERT eager attention": {"precision": "bf16", "attention": "eager"},
        }
    return {
        "fp32": {"precision": "fp32", "attention": "sdpa"},
        "bf16-autocast": {"precision": "bf16", "attention": "sdpa"},
        "fp32 + BERT eager attention": {"precision": "fp32", "attention": "eager"},
    }


def run_one(args: argparse.Namespace) -> dict[str, float]:
    """Measure one variant in this process."""
    import torch

    from clover_pl.models import clover_backbone

    torch.manual_seed(0)
    device = torch.device(args.device)
    backbone = clover_backbone(args.preset).to(device).train()
    if args.attention != "sdpa":
        for encoder in (backbone.text.bert, backbone.fusion.encoder):
            encoder.config._attn_implementation = args.attention
    video = torch.randn(args.batch, args.frames, 3, args.size, args.size, device=device)
    vocab = backbone.text.vocab_size
    ids = torch.randint(1000 % vocab, vocab, (args.batch, args.text_length), device=device)
    mask = torch.ones_like(ids)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            tokens = backbone.encode_video(video)
            states = backbone.encode_text(ids, mask)
            fused = backbone.fuse(tokens, states, mask)
            loss = tokens.float().mean() + states.float().mean() + fused.cls.float().mean()
        loss.backward()
        backbone.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    patch_tokens = (args.frames + 1) // 2 * (args.size // 4) ** 2
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "step_s": seconds,
        "clips_per_s": args.batch / seconds,
        "tokens_per_s": args.batch * (patch_tokens + args.text_length) / seconds,
        "peak_mib": peak_mib,
    }


def main() -> None:
    """Run every variant in a subprocess and print a table with ratios against the first."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--text-length", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--attention", default="sdpa", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(run_one(args)))
        return

    common = [
        f"--preset={args.preset}",
        f"--batch={args.batch}",
        f"--frames={args.frames}",
        f"--size={args.size}",
        f"--text-length={args.text_length}",
        f"--warmup={args.warmup}",
        f"--steps={args.steps}",
        f"--device={args.device}",
    ]
    print(
        f"backbone={args.preset} batch={args.batch} frames={args.frames} size={args.size} text={args.text_length} "
        f"device={args.device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores) "
        f"steps={args.steps} after {args.warmup} warm-up"
    )
    print(f"{'variant':32} {'step s':>8} {'clips/s':>8} {'tokens/s':>10} {'peak MiB':>9} {'speed-up':>9}")
    baseline = None
    for name, settings in variants(args.device).items():
        extra = [f"--precision={settings['precision']}", f"--attention={settings['attention']}", "--one=1"]
        out = subprocess.run([sys.executable, __file__, *common, *extra], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{name:32} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        baseline = baseline or result
        speed_up = baseline["step_s"] / result["step_s"]
        print(
            f"{name:32} {result['step_s']:8.3f} {result['clips_per_s']:8.2f} {result['tokens_per_s']:10.0f} "
            f"{result['peak_mib']:9.0f} {speed_up:8.2f}x"
        )


if __name__ == "__main__":
    main()
