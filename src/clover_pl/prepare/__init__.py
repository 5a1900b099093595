"""``clover-pl prepare <dataset>``: raw public formats and the synthetic default, to shards and JSONL manifests."""

from __future__ import annotations

import importlib
import sys

from clover_pl.prepare.errors import InputError

# dataset name -> module under clover_pl.prepare with a ``main(argv) -> int``
DATASETS = {
    "synthetic": "synthetic",
    "webvid": "webvid",
    "cc3m": "cc3m",
    "msrvtt": "msrvtt",
    "didemo": "didemo",
    "lsmdc": "lsmdc",
    "synthetic_retrieval": "synthetic_retrieval",
    "msrvtt_qa": "msrvtt_qa",
    "msvd_qa": "msvd_qa",
    "tgif_qa": "tgif_qa",
    "msrvtt_mc": "msrvtt_mc",
    "lsmdc_mc": "lsmdc_mc",
    "lsmdc_fib": "lsmdc_fib",
    "synthetic_qa": "synthetic_qa",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``clover-pl prepare <dataset> ...`` to the dataset's converter.

    Args:
        argv: the arguments after ``prepare``.

    Returns:
        The exit status.
    """
    argv = list(sys.argv[2:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: clover-pl prepare {{{','.join(DATASETS)}}} [--help] ...")
        print("Convert a dataset (or render the synthetic default) into webdataset shards and manifests.")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in DATASETS:
        print(f"clover-pl prepare: unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"clover_pl.prepare.{DATASETS[name]}")
    try:
        return int(module.main(rest))
    except (InputError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as error:
        # Input the user must fix, not a bug: one line naming the file or option, without a traceback.
        print(f"clover-pl prepare {name}: {error}", file=sys.stderr)
        return 2
