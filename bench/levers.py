"""One pretraining step, lever by lever: clips/s, MFU and peak memory against plain eager fp32, measured in one run.

The step is the real objective (``PretrainTask.compute_losses``: two video, two text and two fusion passes,
tri-modal alignment both ways, ranking, focal MLM), its backward, gradient clipping at 15 and an AdamW step, on a
pre-built batch (data loading is not measured). The levers are added one at a time, each row keeping the ones above:

    fp32 eager (baseline)     float32; plain attention: BERT/fusion ``eager``, Swin through SDPA's math backend
    + bf16 autocast           bfloat16 matmuls (``precision: bf16-mixed`` in a run)
    + SDPA kernels            fused attention kernels (BERT/fusion ``attn_implementation="sdpa"``, the default)
    + fused AdamW             one fused optimizer kernel (a run uses it on CUDA by itself)
    + torch.compile           the three encoders compiled (``clover_pl.callbacks.CompileEncoders``)
    + activation checkpointing  every Swin stage recomputed in backward (``SwinActivationCheckpointing``)

MFU = model FLOPs of the step (``clover_pl.flops``; recomputation not counted) / step time / peak. The peak is
``--peak-tflops`` on CUDA (790: H200, bf16 dense); on a CPU it is a matmul peak measured at the start of the run,
at the variant's precision. Each variant runs in its own process, so its peak memory is its own (peak RSS on a CPU,
``torch.cuda.max_memory_allocated`` on a GPU).

    python bench/levers.py                                                    # CPU: tiny, batch 32, 4 x 32 px
    python bench/levers.py --device cuda --preset base --frames 8 --size 224  # GPU (make bench-gpu)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LEVERS = ("bf16", "sdpa", "fused_adamw", "compile", "checkpointing")
VARIANTS = {
    "fp32 eager (baseline)": (),
    "+ bf16 autocast": LEVERS[:1],
    "+ SDPA kernels": LEVERS[:2],
    "+ fused AdamW": LEVERS[:3],
    "+ torch.compile": LEVERS[:4],
    "+ activation checkpointing": LEVERS[:5],
}
EMBED_DIM = {"tiny": 64}  # the quickstart's contrastive width; 768 (Clover's) otherwise


def make_batch(args: argparse.Namespace, vocab: int, mask_grid: tuple[int, int], device: object) -> dict:
    """A pretraining batch of random clips and captions, 30% of the text positions masked, 10 of 49 cells masked."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (args.batch, args.text_length), generator=generator)
    chosen = torch.rand(ids.shape, generator=generator) < 0.3
    cells = torch.rand(args.batch, *mask_grid, generator=generator) < 0.2
    batch = {
        "video": torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=generator),
        "video_mask": cells,
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "masked_input_ids": ids.masked_fill(chosen, 4),
        "mlm_labels": ids.masked_fill(~chosen, -100),
    }
    return {key: value.to(device) for key, value in batch.items()}


def run_one(args: argparse.Namespace, levers: tuple[str, ...]) -> dict[str, float]:
    """Measure one variant in this process."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from clover_pl.callbacks.performance import compile_encoders
    from clover_pl.flops import BackboneSizes, task_step_flops, video_token_grid
    from clover_pl.models import clover_backbone
    from clover_pl.tasks import PretrainTask
    from clover_pl.tasks.optimization import decay_groups

    torch.manual_seed(0)
    device = torch.device(args.device)
    task = PretrainTask(clover_backbone(args.preset), embed_dim=EMBED_DIM.get(args.preset, 768)).to(device).train()
    backbone = task.backbone
    if "sdpa" not in levers:
        for encoder in (backbone.text.bert, backbone.fusion.encoder):
            encoder.config._attn_implementation = "eager"
    if "checkpointing" in levers:
        for layer in backbone.video.layers:
            layer.activation_checkpointing = True
    if "compile" in levers:
        compile_encoders(backbone, ("video", "text", "fusion"), mode=None, dynamic=False)
    fused = "fused_adamw" in levers
    optimizer = torch.optim.AdamW(
        decay_groups(task.named_parameters(), 0.005), lr=5e-5, betas=(0.9, 0.98), fused=fused, foreach=not fused
    )
    sizes = BackboneSizes.from_backbone(backbone)
    _, grid_h, grid_w = video_token_grid(sizes.video, args.frames, args.size, args.size)
    batch = make_batch(args, backbone.text.vocab_size, (grid_h, grid_w), device)
    dtype = torch.bfloat16 if "bf16" in levers else torch.float32
    parameters = [p for p in task.parameters() if p.requires_grad]

    def step() -> None:
        attention = contextlib.nullcontext() if "sdpa" in levers else sdpa_kernel(SDPBackend.MATH)
        optimizer.zero_grad(set_to_none=True)
        with attention, torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = task.compute_losses(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 15.0, foreach=True)
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    compile_start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - compile_start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if device.type == "cuda":  # one synchronisation for all steps, so the host runs ahead as in training
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        seconds = (time.perf_counter() - start) / args.steps
    else:  # the median step, robust to other processes taking the cores for a while
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
        # Host synchronisations inside one step: each one stalls the host until the GPU catches up.
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
        torch.cuda.set_sync_debug_mode(0)
        host_syncs = float(sum("synchroniz" in str(w.message) for w in caught))
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        host_syncs = float("nan")
    graph_breaks = float("nan")
    if "compile" in levers:
        from torch._dynamo.utils import counters

        graph_breaks = float(sum(counters["graph_break"].values()))
    return {
        "step_s": seconds,
        "warmup_s": warmup_s,
        "flops": float(task_step_flops(task, batch).total),
        "peak_mib": peak_mib,
        "host_syncs": host_syncs,
        "graph_breaks": graph_breaks,
    }


def cpu_matmul_tflops(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    """Best TFLOP/s of a square matmul on this CPU with torch's current threads."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def main() -> None:
    """Run every variant in a subprocess and print a markdown table with ratios against the first."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--preset", default=None, help="backbone preset (default: base on cuda, tiny on cpu)")
    parser.add_argument("--batch", type=int, default=32, help="clips per step")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: 8 on cuda, 4 on cpu)")
    parser.add_argument("--size", type=int, default=None, help="pixels (default: 224 base, 32 tiny)")
    parser.add_argument("--text-length", type=int, default=None, help="tokens (default: 30 base, 32 tiny)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="device peak for MFU on cuda (H200 bf16)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (cpu)")
    parser.add_argument("--variants", nargs="+", default=None, help="row names to run (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per variant, interleaved, best kept")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.preset = args.preset or ("base" if args.device == "cuda" else "tiny")
    args.frames = args.frames or (8 if args.preset != "tiny" else 4)
    args.size = args.size or (32 if args.preset == "tiny" else 224)
    args.text_length = args.text_length or (32 if args.preset == "tiny" else 30)
    if args.one:
        print(json.dumps(run_one(args, tuple(json.loads(args.one)))))
        return

    common = [
        f"--device={args.device}",
        f"--preset={args.preset}",
        f"--batch={args.batch}",
        f"--frames={args.frames}",
        f"--size={args.size}",
        f"--text-length={args.text_length}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
    ] + ([f"--threads={args.threads}"] if args.threads else [])
    if args.device == "cuda":
        peaks = {"float32": args.peak_tflops, "bfloat16": args.peak_tflops}
        hardware = f"{torch.cuda.get_device_name()}, peak {args.peak_tflops:g} TFLOP/s (given)"
    else:  # the best of a measurement before every round and one after the last, as the variants' best of rounds
        peaks = {name: cpu_matmul_tflops(name) for name in ("float32", "bfloat16")}
    chosen = {name: levers for name, levers in VARIANTS.items() if not args.variants or name in args.variants}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    failures: dict[str, str] = {}
    for _ in range(args.rounds):  # interleaved, so that a busy spell of the machine hits every variant alike
        for name, levers in chosen.items():
            if name in failures:
                continue
            command = [sys.executable, __file__, *common, f"--one={json.dumps(list(levers))}"]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                lines = out.stderr.strip().splitlines()
                oom = "OutOfMemoryError" in out.stderr
                failures[name] = "out of memory" if oom else (lines[-1] if lines else str(out.returncode))
                continue
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        if args.device != "cuda":
            peaks = {name: max(peak, cpu_matmul_tflops(name)) for name, peak in peaks.items()}
    if args.device != "cuda":
        hardware = (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
            f"measured matmul peak {peaks['float32']:.3f} TFLOP/s fp32, {peaks['bfloat16']:.3f} bf16"
        )
    print(
        f"preset={args.preset} batch={args.batch} frames={args.frames} size={args.size} text={args.text_length} "
        f"device={args.device} ({hardware}); torch {torch.__version__}; {args.steps} timed steps after "
        f"{args.warmup} warm-up, best of {args.rounds} interleaved rounds"
    )
    print(
        "| variant | step s | clips/s | model TFLOP/s | MFU | peak MiB | vs baseline | vs previous row | "
        "host syncs/step | graph breaks | warm-up s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    baseline = previous = None
    for name, levers in chosen.items():
        if name in failures:
            print(f"| {name} | failed: {failures[name]} |")
            continue
        result = min(results[name], key=lambda r: r["step_s"])
        baseline = baseline or result
        previous = previous or result
        tflops = result["flops"] / result["step_s"] / 1e12
        peak = peaks["bfloat16" if "bf16" in levers else "float32"]
        print(
            f"| {name} | {result['step_s']:.4g} | {args.batch / result['step_s']:.3g} | {tflops:.3g} | "
            f"{100 * tflops / peak:.1f}% | {result['peak_mib']:.0f} | {baseline['step_s'] / result['step_s']:.2f}x | "
            f"{previous['step_s'] / result['step_s']:.2f}x | {result['host_syncs']:.0f} | "
            f"{result['graph_breaks']:.0f} | {result['warmup_s']:.1f} |",
            flush=True,
        )
        previous = result
    if baseline is not None:
        print(
            f"model FLOPs per step: {baseline['flops'] / 1e9:.2f} GFLOP "
            f"({baseline['flops'] / args.batch / 1e9:.3f} per clip, forward + backward)"
        )


if __name__ == "__main__":
    main()
