"""Text-to-video ranking for huge galleries: streamed `ranks_from_embeddings` vs a naive full-matrix argsort.

The naive ranking builds the (Q, G) score matrix, argsorts every row and finds the target's position; at 10,000
queries x 1,000,000 videos that is 40 GB of scores plus 80 GB of int64 indices, so it is measured only at the sizes
in `--naive-sizes`, and the streamed ranking is measured at those same sizes for like-for-like ratios, then at the
full size. Nothing is extrapolated: a row shows what was run.

Embeddings are synthetic, seeded and L2-normalised: videos are random directions, each query is its target video
plus Gaussian noise. Each measurement runs in its own process; peak memory is that process's `ru_maxrss`,
reported in total and above its resident size once the embeddings existed ("ranking" memory; the embeddings are
made in small blocks, so the generation's own peak stays within a few MiB of that size).

    python bench/retrieval_ranking.py                               # 10,000 x 1,000,000, E = 256 (~3 min, 2 cores)
    python bench/retrieval_ranking.py --queries 2000 --gallery 200000 --naive-sizes 2000x20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

GENERATION_ROWS = 4096  # embeddings are drawn in small blocks: same numbers for a size, few temporaries


def peak_mib() -> float:
    """This process's peak resident set size so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mib() -> float:
    """This process's resident set size now, MiB."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def embeddings(queries: int, gallery: int, dim: int, seed: int, noise: float) -> tuple:
    """Normalised (Q, E) queries, (G, E) gallery and (Q,) targets, generated in blocks to bound extra memory."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    videos = torch.empty(gallery, dim)
    for start in range(0, gallery, GENERATION_ROWS):
        block = torch.randn(min(GENERATION_ROWS, gallery - start), dim, generator=generator)
        videos[start : start + block.shape[0]] = F.normalize(block, dim=-1)
    targets = torch.randint(gallery, (queries,), generator=generator)
    texts = torch.empty(queries, dim)
    for start in range(0, queries, GENERATION_ROWS):
        rows = targets[start : start + GENERATION_ROWS]
        noisy = videos[rows] + noise * torch.randn(rows.shape[0], dim, generator=generator)
        texts[start : start + rows.shape[0]] = F.normalize(noisy, dim=-1)
    return texts, videos, targets


def naive_ranks(texts, videos, targets):  # noqa: ANN001, ANN201 (torch is imported in the worker only)
    """The full-matrix ranking found in many retrieval codebases: argsort every row, find the target."""
    scores = texts @ videos.T
    order = scores.argsort(dim=1, descending=True)
    return (order == targets[:, None]).int().argmax(dim=1) + 1


def run_one(args: argparse.Namespace) -> dict[str, float]:
    """Measure one variant at one size in this process."""
    import torch

    from clover_pl.metrics import ranks_from_embeddings

    texts, videos, targets = embeddings(args.queries, args.gallery, args.dim, args.seed, args.noise)
    data_mib = current_mib()
    start = time.perf_counter()
    if args.variant == "naive":
        ranks = naive_ranks(texts, videos, targets)
    else:
        ranks = ranks_from_embeddings(texts, videos, targets, args.query_chunk, args.gallery_chunk)
    seconds = time.perf_counter() - start
    torch.save(ranks, args.ranks_out)
    return {
        "seconds": seconds,
        "peak_mib": peak_mib(),
        "data_mib": data_mib,
        "r@1": 100.0 * (ranks == 1).double().mean().item(),
        "median_rank": ranks.double().median().item(),
    }


def measure(args: argparse.Namespace, variant: str, queries: int, gallery: int, ranks_out: str) -> dict[str, float]:
    """Run one variant in a fresh process and return its measurements."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        f"--queries={queries}",
        f"--gallery={gallery}",
        f"--dim={args.dim}",
        f"--seed={args.seed}",
        f"--noise={args.noise}",
        f"--query-chunk={args.query_chunk}",
        f"--gallery-chunk={args.gallery_chunk}",
        f"--ranks-out={ranks_out}",
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    queries, gallery = text.lower().split("x")
    return int(queries), int(gallery)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--naive-sizes", default="10000x20000,200x1000000", help="QxG sizes for the naive ranking")
    parser.add_argument("--query-chunk", type=int, default=1024)
    parser.add_argument("--gallery-chunk", type=int, default=65536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.2, help="per-dimension noise added to a query's target")
    parser.add_argument("--worker", choices=["naive", "streamed"], help=argparse.SUPPRESS)
    parser.add_argument("--ranks-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.variant = args.worker
        print(json.dumps(run_one(args)))
        return

    import torch

    sizes = [parse_size(size) for size in args.naive_sizes.split(",") if size]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for queries, gallery in sizes:
            naive_path, streamed_path = os.path.join(folder, "naive.pt"), os.path.join(folder, "streamed.pt")
            naive = measure(args, "naive", queries, gallery, naive_path)
            streamed = measure(args, "streamed", queries, gallery, streamed_path)
            same = int((torch.load(naive_path) == torch.load(streamed_path)).sum())
            rows.append(("naive argsort (baseline)", queries, gallery, naive, naive, "-"))
            rows.append(("streamed", queries, gallery, streamed, naive, f"{same}/{queries}"))
        full = measure(args, "streamed", args.queries, args.gallery, os.path.join(folder, "full.pt"))
        naive_full = (args.queries, args.gallery) in sizes
        rows.append(("streamed", args.queries, args.gallery, full, None, "-" if not naive_full else "see above"))

    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"E={args.dim}, chunks {args.query_chunk} x {args.gallery_chunk}; seconds = ranking only (embeddings made "
        "beforehand); peak = process ru_maxrss, 'ranking' = peak above the resident size once the embeddings existed"
    )
    print()
    print(
        "| variant | queries x gallery | seconds | scores/s | peak MiB | ranking MiB | time vs naive "
        "| ranking memory vs naive | ranks equal naive | R@1 | median rank |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, queries, gallery, result, baseline, same in rows:
        extra = result["peak_mib"] - result["data_mib"]
        if baseline is None:
            time_ratio = memory_ratio = "naive not run at this size"
        else:
            time_ratio = f"{result['seconds'] / baseline['seconds']:.3f}x"
            memory_ratio = f"{extra / max(baseline['peak_mib'] - baseline['data_mib'], 1e-9):.3f}x"
        print(
            f"| {name} | {queries:,} x {gallery:,} | {result['seconds']:.2f} | "
            f"{queries * gallery / result['seconds']:.3g} | {result['peak_mib']:.0f} | {extra:.0f} | {time_ratio} | "
            f"{memory_ratio} | {same} | {result['r@1']:.1f} | {result['median_rank']:.0f} |"
        )


if __name__ == "__main__":
    main()
