"""The command line that ``prepare webvid`` and ``prepare cc3m`` share: options, --verify, --shards, conversion."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from clover_pl.prepare.errors import InputError
from clover_pl.prepare.workers import default_workers


def shard_parser(dataset: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """The parser of a shard converter, its usage examples (``examples``: arguments after the dataset) below."""
    return argparse.ArgumentParser(
        prog=f"clover-pl prepare {dataset}",
        description=description,
        epilog="examples:\n" + "\n".join(f"  clover-pl prepare {dataset} {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """``parser.error`` (exit 2, one line) for the first of ``names`` that is given and not positive."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")


def run_shard_command(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    spec: tuple[str, str, str, str],
    inputs: dict[str, Any],
    convert: Callable[[], dict[str, Any]],
) -> int:
    """Run ``--verify``, ``--shards DIR`` or the conversion, as the options ask; print the result.

    Args:
        parser: the converter's parser (for its one-line usage errors).
        args: the parsed options (``out``, ``verify``, ``shards``, ``workers``, ``no_decode``).
        spec: ``(dataset, kind, layout, variable)``: the dataset name, ``"video"`` or ``"image"``, the shard
            layout, and the environment variable that the printed ``export`` line sets.
        inputs: the conversion's input options by flag (``{"--csv": args.csv, ...}``): refused with ``--shards``.
        convert: runs the conversion and returns its manifest.

    Returns:
        The exit status: 0; 1 when ``--verify`` or ``--shards`` found problems; 2 for unusable input; 130 when
        interrupted.
    """
    from clover_pl.prepare.shard_check import index_shards, verify_dataset

    dataset, kind, layout, variable = spec
    given = [flag for flag, value in inputs.items() if value not in (None, False)]
    decode = not args.no_decode
    if args.verify:
        if given or args.shards:
            print("--verify re-reads OUT as it is: the input options are not used", file=sys.stderr)
        return report_problems(verify_dataset(args.out, args.workers, decode=decode), f"verify {args.out}")
    if args.shards:
        if given:
            parser.error(f"--shards takes no {', '.join(given)}: the shards stay as they are")
        manifest, problems = index_shards(args.shards, args.out, dataset, kind, layout, args.workers, decode)
        if manifest:
            print_summary(manifest, args.out, variable)
        return report_problems(problems, f"index {args.shards}")
    if args.no_decode:
        parser.error("--no-decode goes with --verify or --shards: a conversion always decodes every clip it keeps")
    try:
        manifest = convert()
    except (InputError, OSError) as error:  # the message names the file or option; anything else is a bug
        print(f"clover-pl prepare {dataset}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clover-pl prepare {dataset}: interrupted; finished shards are kept: run the same command to go on")
        return 130
    print_summary(manifest, args.out, variable)
    return 0


def add_shared_arguments(parser: argparse.ArgumentParser, samples_per_shard: int, layout: str) -> None:
    """The options that every real-dataset converter takes (output, existing shards, verification, pool)."""
    parser.add_argument("--out", required=True, help="output folder: shards, _stats.json and manifest.json")
    parser.add_argument(
        "--shards",
        metavar="DIR",
        help=f"accept the {layout} shards in DIR as they are: only OUT/manifest.json is written",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-read OUT (manifest and every shard, each sample decoded as the training loader decodes it: every "
        "frame of a video) and print the problems, among them every sample the loader would skip, with its reason; "
        "writes nothing; exit status 1 if there are any",
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="with --verify or --shards: check structure, captions and counts only, without decoding media "
        "(much faster; clips that the loader would skip as bad media go unnoticed)",
    )
    parser.add_argument("--samples-per-shard", type=int, default=samples_per_shard, help="rows per shard")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default min(4, cpus))")
    parser.add_argument(
        "--max-caption-chars", type=int, default=350, help="longer captions are cut (frozen-in-time keeps 350)"
    )


def report_problems(problems: list[str], what: str) -> int:
    """Print problems on stdout, then a total with the samples the loader would skip by reason; 1 if any."""
    for problem in problems:
        print(problem)
    marker = "the loader would skip it as "
    skips = Counter(line.split(marker, 1)[1].split(" ", 1)[0] for line in problems if marker in line)
    by_reason = f" ({', '.join(f'{reason} {count}' for reason, count in sorted(skips.items()))})" if skips else ""
    print(f"{what}: {len(problems)} problem(s){by_reason}" if problems else f"{what}: no problems")
    return 1 if problems else 0


def print_summary(manifest: dict[str, Any], out: str, variable: str) -> None:
    """The result of a preparation on stdout, with the ``export`` line that configs read."""
    dropped = ", ".join(f"{reason} {count}" for reason, count in manifest.get("dropped", {}).items()) or "none"
    urls = "::".join(os.path.join(os.path.abspath(out), part) for part in manifest["urls"].split("::"))
    failed = f"{manifest['failed']} failed downloads ({100 * float(manifest.get('failed_share', 0.0)):.1f}%"
    status = manifest.get("failed_status") or {}
    failed += (": " + ", ".join(f"{name} {count}" for name, count in status.items()) + ")") if status else ")"
    print(
        f"{manifest['dataset']}: {manifest['samples']} samples, {failed} in {len(manifest['shards'])} shards; "
        f"dropped: {dropped}; manifest {os.path.join(out, 'manifest.json')}"
    )
    print(f"export {variable}='{urls}'")
