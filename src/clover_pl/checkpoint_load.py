"""Reading a checkpoint or weight file: a local file only, with ``torch.load(weights_only=True)``, errors on one line.

Every file of weights clover-pl reads (``--ckpt_path``, ``init_from``, Video Swin and BERT weights) goes through
:func:`load_checkpoint_file`: a URL is refused (nothing is downloaded), and a file holding Python objects other than
tensors and plain containers is refused rather than unpickled (it could run code). The errors are
:class:`clover_pl.errors.UserError` naming the file, never torch's advice to retry with ``weights_only=False``.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch

from clover_pl.errors import UserError

# Values of ``--ckpt_path`` that Lightning resolves to a local file of the run itself.
SPECIAL_CKPT_PATHS = ("last", "best", "hpc")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote or fsspec location (``http://``, ``s3://``, ``file://``, ...) or a registry."""
    return bool(_URL.match(path)) or path.startswith("registry")


def check_local_checkpoint(path: str, what: str = "--ckpt_path") -> str:
    """Refuse a checkpoint that is not a local file (a URL would be downloaded, and Lightning unpickles it).

    Args:
        path: the checkpoint path as given.
        what: the option that named it, for the message.

    Returns:
        ``path`` unchanged.

    Raises:
        UserError: a URL or registry name, or no such file.
    """
    path = os.fspath(path)
    if is_url(path):
        raise UserError(
            f"{what} {path}: checkpoints must be local files (nothing is downloaded); copy it to a local path first"
        )
    if not os.path.exists(path):
        raise UserError(f"{what} {path}: no such file")
    if not os.path.isfile(path):
        raise UserError(f"{what} {path}: not a file")
    return path


def load_checkpoint_file(
    path: str, what: str = "--ckpt_path", map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Read a local checkpoint with ``torch.load(weights_only=True)``: tensors and plain containers only.

    Args:
        path: a local file.
        what: the option or key that named it, for the message.
        map_location: as in :func:`torch.load`.
        mmap: memory-map the file (tensors are read only when used), as in :func:`torch.load`.

    Returns:
        The checkpoint's content.

    Raises:
        UserError: not a local file, not a PyTorch checkpoint (random bytes, truncated, text), or one holding Python
            objects that ``weights_only`` loading refuses (which could run code); one line naming the file.
    """
    check_local_checkpoint(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found:
            raise UserError(
                f"{what} {path}: refused, it holds the Python object {found.group(1)}, and checkpoints are loaded "
                "with weights_only=True (tensors and plain containers only; nothing in a file is run)"
            ) from None
        raise UserError(f"{what} {path}: not a PyTorch checkpoint (unreadable or damaged)") from None
    except OSError as error:
        raise UserError(f"{what} {path}: cannot be read ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - a damaged file makes the reader fail in many ways (EOF, zip, index)
        reason = "empty file" if isinstance(error, EOFError) else "unreadable, truncated or damaged"
        raise UserError(f"{what} {path}: not a PyTorch checkpoint ({reason})") from None
