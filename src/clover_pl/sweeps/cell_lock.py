"""A running cell owns its folder: an exclusive lock, and a child process that dies with the sweep.

``clover-pl sweep`` killed with SIGKILL used to leave its running cell's child going, and a re-run started the same
cell beside it (two TensorBoard versions and two result tables in one folder). Now:

- :func:`cell_lock` takes an exclusive ``flock`` on ``<cell folder>/.cell.lock`` before the cell starts. The child
  process inherits the locked file (``pass_fds``), so the lock lasts until the sweep *and* its child are gone; a
  second sweep finds it taken and reports the cell as running instead of starting it again. The kernel releases the
  lock when the last holder exits, however it ends (no stale lock to clean up). The file holds the holder's pid and
  host, for the message. Only rank zero of a multi-process sweep locks (every rank runs the same cells together).
- :func:`die_with_parent` (Linux) asks the kernel to send the child SIGTERM when the sweep process dies
  (``prctl(PR_SET_PDEATHSIG)``); ``clover-pl fit`` saves ``last.ckpt`` on SIGTERM, so the re-run resumes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator

LOCK_NAME = ".cell.lock"
_PR_SET_PDEATHSIG = 1


class CellLock:
    """A held lock on a cell folder: ``fd`` is the locked file, to hand to the child process."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd


def lock_holder(folder: str) -> str:
    """Who holds a cell folder's lock, as written in the lock file (``pid <n> on <host> ...``), or ``unknown``."""
    try:
        with open(os.path.join(folder, LOCK_NAME), encoding="utf-8") as stream:
            return stream.read().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def cell_lock(folder: str) -> Iterator[CellLock | None]:
    """Lock ``folder`` for the ``with`` block; yields None when another process holds it (nothing is waited for).

    Args:
        folder: the cell's folder (created if missing).
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                yield None
                return
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield CellLock(path, fd)
    finally:
        os.close(fd)  # the child's copy (if still running) keeps the lock


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child receive SIGTERM when this process dies (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange
