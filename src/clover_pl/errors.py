"""The error a user's input causes (a file, a config value, a folder): the CLI prints it on one line and exits 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable


class UserError(ValueError):
    """A problem with what the user gave (a file, a path, a config value), not a bug of clover-pl.

    The message names the file or key and the reason, on one line. ``clover-pl`` prints ``error: <message>`` and
    exits with status 2, without a traceback (``--debug`` or ``CLOVER_DEBUG=1`` shows it). It subclasses
    ``ValueError`` so that library callers that catch bad values keep working.
    """


# Errors of the environment a user controls: a missing file or folder, no permission, a read-only or full disk.
_USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_USER_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.ENOENT)

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "CLOVER_DEBUG"


def find_user_error(error: BaseException) -> BaseException | None:
    """The first :class:`UserError` or user-caused ``OSError`` in ``error``'s chain (causes and contexts), or None.

    The chain matters because LightningCLI (jsonargparse) re-raises an error of a model's or data module's
    constructor inside its own parser error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        if isinstance(current, _USER_OS_ERRORS) or (isinstance(current, OSError) and current.errno in _USER_ERRNOS):
            return current
        current = current.__cause__ or current.__context__
    return None


def one_line(error: BaseException) -> str:
    """The message of a user error on one line, naming the file for an ``OSError``."""
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or type(error).__name__}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def debug_requested(argv: list[str]) -> bool:
    """Whether full tracebacks were asked for (``--debug`` on the command line or ``CLOVER_DEBUG=1``)."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def run_reporting_user_errors(run: Callable[[], None], debug: bool) -> None:
    """Run ``run``; a user error ends the process with ``error: <one line>`` on stderr and status 2.

    Any other exception (a bug of clover-pl) propagates with its full traceback, and so does a user error when
    ``debug`` is set.
    """
    try:
        run()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as error:
        found = None if debug else find_user_error(error)
        if found is None:
            raise
        sys.stderr.write(f"error: {one_line(found)}\n")
        raise SystemExit(2) from None
