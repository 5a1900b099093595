"""Opening shard URLs safely, and the known size of each shard.

A webdataset ``pipe:`` URL is a shell command: whoever writes the data config runs code on every data worker. Object
stores need it (``pipe:aws s3 cp s3://bucket/00000.tar -``), so it is allowed, but only when the data config says so
(``allow_pipe_urls: true``). Other schemes (``http://``, ``gs://``, ...) are read by webdataset's fixed clients;
a plain path is opened as a file, never through a shell.

The known size of a shard (samples with media) comes from the ``manifest.json`` that ``clover-pl prepare`` writes
in the shards' folder, else from the ``_stats.json`` that video2dataset and img2dataset write beside each shard
(``successes``). With it, the samples a truncated or unreadable shard loses are counted, not only the damage.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import webdataset as wds

PIPE_OPT_IN = "allow_pipe_urls"
"""The data-config key that allows ``pipe:`` shard URLs."""


def is_pipe(url: str) -> bool:
    """True for a webdataset ``pipe:`` URL (a shell command)."""
    return url.startswith("pipe:")


def has_scheme(url: str) -> bool:
    """True for ``pipe:`` and ``scheme://`` URLs, False for a local path."""
    return is_pipe(url) or "://" in url


def check_pipe_urls(urls: list[str], *, allowed: bool) -> None:
    """Refuse ``pipe:`` URLs unless the data config allows them.

    Args:
        urls: expanded shard URLs.
        allowed: the data config's ``allow_pipe_urls``.

    Raises:
        ValueError: naming the first ``pipe:`` URL and the key that allows it.
    """
    pipes = [url for url in urls if is_pipe(url)]
    if pipes and not allowed:
        raise ValueError(
            f"shard URL {pipes[0]!r} ({len(pipes)} of {len(urls)}) is a shell command; it runs only when the data "
            f"config sets {PIPE_OPT_IN}: true (data.init_args.{PIPE_OPT_IN}), which trusts whoever wrote the config"
        )


def open_shard(url: str, *, allow_pipe_urls: bool) -> IO[bytes]:
    """Open a shard for reading: a local path as a file, a ``pipe:`` URL only when allowed, other URLs by webdataset.

    Raises:
        ValueError: for a ``pipe:`` URL when ``allow_pipe_urls`` is False.
    """
    if is_pipe(url):
        check_pipe_urls([url], allowed=allow_pipe_urls)
        return wds.gopen(url, "rb")
    if "://" in url:
        return wds.gopen(url, "rb")
    return open(url, "rb")  # noqa: SIM115 (the caller closes it)


def known_sizes(urls: list[str]) -> dict[str, int]:
    """Samples with media per local shard, from the folder's ``manifest.json`` or the shard's ``_stats.json``.

    Args:
        urls: expanded shard URLs; remote and ``pipe:`` URLs, and shards without either file, are left out.

    Returns:
        ``{url: samples}`` for every shard whose size is known.
    """
    sizes: dict[str, int] = {}
    manifests: dict[str, dict[str, int]] = {}
    for url in urls:
        if has_scheme(url):
            continue
        folder = os.path.dirname(os.path.abspath(url))
        if folder not in manifests:
            manifests[folder] = _manifest_sizes(folder)
        size = manifests[folder].get(os.path.abspath(url))
        if size is None:
            size = _stats_size(url)
        if size is not None:
            sizes[url] = size
    return sizes


def _manifest_sizes(folder: str) -> dict[str, int]:
    manifest = _read_json(os.path.join(folder, "manifest.json"))
    sizes: dict[str, int] = {}
    for entry in manifest.get("shards", []) if isinstance(manifest, dict) else []:
        try:
            sizes[os.path.abspath(os.path.join(folder, entry["url"]))] = int(entry["samples"])
        except (KeyError, TypeError, ValueError):
            continue
    return sizes


def _stats_size(url: str) -> int | None:
    stats = _read_json(os.path.splitext(url)[0] + "_stats.json")
    try:
        return int(stats["successes"])
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None
