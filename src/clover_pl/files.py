"""Atomic, durable file writes: a temporary file of our own naming beside the target, flush, fsync, rename.

Writing beside the target keeps the rename on one filesystem, where ``os.replace`` is atomic: a reader (or a resumed
run) sees the old file or the new one, never half of one, and a failed write (a full disk, a crash) leaves the old
file as it was. Nothing is written to ``$TMPDIR``. With ``durable=True`` the data and the folder entry are also
synced to the disk before returning, so a power loss or node failure right after a save cannot lose it.

A temporary file is named ``.<name>.<pid>.clover-partial``; a crash can leave one behind, and
:func:`remove_stale_partials` deletes those of a folder (a run does so when it starts).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any

PARTIAL_SUFFIX = ".clover-partial"


def partial_path(path: str) -> str:
    """The temporary file for ``path``: hidden, in the same folder, named by the process that writes it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}{PARTIAL_SUFFIX}")


def fsync_folder(folder: str) -> None:
    """Sync a folder's entries (a rename in it) to the disk; a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb", durable: bool = True, **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a stream whose content replaces ``path`` atomically when the ``with`` block ends without an error.

    Args:
        path: the file to write.
        mode: ``"wb"`` or ``"w"``.
        durable: fsync the file and its folder before returning.
        **kwargs: passed to :func:`open` (``encoding=...``).

    If the block (or the write) raises, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    temporary = partial_path(path)
    try:
        with open(temporary, mode, **kwargs) as stream:
            yield stream
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    if durable:
        fsync_folder(os.path.dirname(os.path.abspath(path)))


def write_text_atomic(path: str, content: str, durable: bool = False) -> None:
    """Write ``content`` (UTF-8) to ``path`` atomically; ``durable`` also syncs it to the disk."""
    with atomic_open(path, "w", durable=durable, encoding="utf-8") as stream:
        stream.write(content)


def remove_stale_partials(folder: str) -> list[str]:
    """Delete the temporary files (``*.clover-partial``) a crashed writer left in ``folder``; return their paths.

    Call it when no other process writes into ``folder`` (at the start of a run, on the rank that saves).
    """
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed
