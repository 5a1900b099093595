"""The command flow that ``prepare webvid`` and ``prepare cc3m`` share: ``--verify``, ``--shards``, or a conversion."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from clover_pl.prepare.errors import InputError
from clover_pl.prepare.workers import print_summary, report_problems


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
        return report_problems(verify_dataset(args.out, args.workers, decode), f"verify {args.out}")
    if args.shards:
        if given:
            parser.error(f"--shards takes no {', '.join(given)}: the shards stay as they are")
        manifest, problems = index_shards(args.shards, args.out, dataset, kind, layout, args.workers, decode)
        if manifest:
            print_summary(manifest, args.out, variable)
        return report_problems(problems, f"index {args.shards}")
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
