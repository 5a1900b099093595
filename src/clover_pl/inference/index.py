"""An embedding index of your own videos and texts, and text-to-video search over it.

The index is one ``torch.save`` file, readable with ``torch.load(path, weights_only=True)``:

- ``format`` (1), ``checkpoint`` (the model's path), ``settings`` (frames, image_size, max_text_length, short_side);
- ``video_ids``, ``video_paths`` (absolute) and ``video``: (Nv, E) float32 unit-norm embeddings, row i = id i;
- ``text_ids``, ``texts`` and ``text``: (Nt, E) likewise (empty when no texts were given);
- ``skipped``: ``[{"path", "reason"}]`` for every video that could not be read (left out of the index).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from clover_pl.files import atomic_open
from clover_pl.inference.loading import ClipReader, Embedder

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")
INDEX_FORMAT = 1


@dataclass
class Hit:
    """One search result: its rank (1 = best), the video's id and path, and the cosine similarity."""

    rank: int
    id: str
    path: str
    score: float


def list_videos(source: str) -> list[tuple[str, str]]:
    """``(id, path)`` of the videos to index.

    Args:
        source: a folder (every file with a video suffix, recursively; id = relative path without the suffix) or a
            text file with one video per line, either ``path`` (id = file name without suffix) or
            ``id<TAB>path``; relative paths are relative to the list file.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: the list names no video, or two videos share an id (the message names the file and id).
    """
    if os.path.isdir(source):
        root = Path(source)
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        entries = [(p.relative_to(root).with_suffix("").as_posix(), str(p.resolve())) for p in paths]
    elif os.path.isfile(source):
        base = Path(source).resolve().parent
        entries = []
        with open(source, encoding="utf-8") as stream:
            for line in stream:
                line = line.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                video_id, _, path = line.rpartition("\t")
                resolved = Path(path.strip()) if os.path.isabs(path.strip()) else base / path.strip()
                entries.append((video_id or Path(path.strip()).stem, str(resolved)))
    else:
        raise FileNotFoundError(f"--videos {source}: no such folder or list file")
    if not entries:
        raise ValueError(f"--videos {source}: no video found (suffixes {', '.join(VIDEO_SUFFIXES)})")
    seen: set[str] = set()
    for video_id, _ in entries:
        if video_id in seen:
            raise ValueError(f"--videos {source}: the id {video_id!r} is used twice (give ids as id<TAB>path)")
        seen.add(video_id)
    return entries


def read_texts(path: str) -> list[tuple[str, str]]:
    """``(id, text)`` from a file with one text per line: ``text`` (id = its line number) or ``id<TAB>text``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an id is used twice.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--texts {path}: no such file")
    entries = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            text_id, _, text = line.rpartition("\t") if "\t" in line else ("", "", line)
            entries.append((text_id or str(number), text.strip()))
    ids = [text_id for text_id, _ in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--texts {path}: an id is used twice")
    return entries


def build_index(
    embedder: Embedder,
    videos: list[tuple[str, str]],
    texts: Sequence[tuple[str, str]] = (),
    batch_size: int = 16,
    progress: Any = None,
    workers: int = 0,
) -> dict[str, Any]:
    """Embed videos and texts into an index (see the module docstring); unreadable videos are skipped and listed.

    Args:
        embedder: the model.
        videos: ``(id, path)`` pairs.
        texts: ``(id, text)`` pairs.
        batch_size: clips per forward pass.
        progress: called as ``progress(done, total)`` after every batch of videos, if given.
        workers: DataLoader worker processes that decode the videos (0: in this process).
    """
    kept: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    parts: list[torch.Tensor] = [torch.zeros(0, embedder.embed_dim)]
    reader = ClipReader(embedder.settings)
    loader = DataLoader(
        _VideoFiles(videos, reader), batch_size=batch_size, num_workers=workers, collate_fn=list, shuffle=False
    )
    done = 0
    for batch in loader:
        readable = [(video_id, path, clip) for video_id, path, clip in batch if not isinstance(clip, str)]
        skipped.extend({"path": path, "reason": clip} for _, path, clip in batch if isinstance(clip, str))
        if readable:
            parts.append(embedder.embed_clips(torch.stack([clip for _, _, clip in readable])))
            kept.extend((video_id, path) for video_id, path, _ in readable)
        done += len(batch)
        if progress is not None:
            progress(done, len(videos))
    return {
        "format": INDEX_FORMAT,
        "settings": asdict(embedder.settings),
        "video_ids": [video_id for video_id, _ in kept],
        "video_paths": [path for _, path in kept],
        "video": torch.cat(parts),
        "text_ids": [text_id for text_id, _ in texts],
        "texts": [text for _, text in texts],
        "text": embedder.embed_texts([text for _, text in texts]),
        "skipped": skipped,
    }


class _VideoFiles(Dataset):
    """Item i: (id, path, clip or the reason it cannot be read) of the i-th video."""

    def __init__(self, videos: list[tuple[str, str]], reader: ClipReader) -> None:
        self.videos = videos
        self.reader = reader

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[str, str, torch.Tensor | str]:
        video_id, path = self.videos[index]
        return video_id, path, self.reader(path)


def save_index(index: dict[str, Any], path: str) -> None:
    """Write an index atomically (a reader never sees half a file)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_open(path, "wb") as stream:
        torch.save(index, stream)


def load_index(path: str) -> dict[str, Any]:
    """Read an index written by :func:`save_index` (``weights_only``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a clover-pl index.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--index {path}: no such file")
    try:
        index = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise ValueError(f"--index {path} is not a readable index: {error}") from error
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or "video" not in index:
        raise ValueError(f"--index {path} is not a clover-pl index (write one with clover-pl embed)")
    return index


def search(index: dict[str, Any], query: torch.Tensor, k: int = 5) -> list[Hit]:
    """The ``k`` videos most similar to a query embedding, best first (ties: the earlier video first).

    Args:
        index: an index.
        query: (E,) embedding of the query (normalised or not).
        k: how many hits (fewer when the index is smaller).
    """
    if index["video"].shape[0] == 0:
        return []
    scores = index["video"] @ torch.nn.functional.normalize(query.float(), dim=-1)
    top = torch.topk(scores, min(k, scores.shape[0]), sorted=True)
    return [
        Hit(rank, index["video_ids"][i], index["video_paths"][i], float(score))
        for rank, (score, i) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), start=1)
    ]
