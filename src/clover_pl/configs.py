"""The configs shipped with the package: ``--config quickstart`` works from any folder, after ``pip install``.

The wheel carries the repository's ``conf/`` as ``clover_pl/conf`` and the dataset cards (``data_modules/``, their
``data:`` blocks and READMEs) as ``clover_pl/data_modules``. A ``--config`` value that is not a file in the
current folder is looked up there: ``quickstart``, ``quickstart.yaml``, ``conf/quickstart.yaml``,
``retrieval/msrvtt``, ``data_modules/msrvtt/retrieval.yaml`` all resolve. A local file always wins, so a copy
you edit is the one used. ``clover-pl configs`` lists what is shipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
SHIPPED = ("conf", "data_modules")


def shipped_root(kind: str) -> Path | None:
    """The folder holding the shipped ``conf`` or ``data_modules``: in the installed package, else the checkout's."""
    for root in (_PACKAGE / kind, _PACKAGE.parents[1] / kind):  # wheel; source checkout (src layout)
        if root.is_dir():
            return root
    return None


def find_config(name: str) -> str | None:
    """The shipped file a config name means, or None.

    Args:
        name: ``quickstart``, ``retrieval/msrvtt.yaml``, ``conf/qa/msrvtt_qa.yaml``, ``data_modules/msrvtt/x.yaml``.

    Returns:
        The absolute path of the shipped YAML file, or None when nothing matches.
    """
    relative = name.replace("\\", "/").lstrip("./") if not os.path.isabs(name) else ""
    if not relative:
        return None
    kind, _, rest = relative.partition("/")
    searches = [(kind, rest)] if kind in SHIPPED and rest else [("conf", relative)]
    for folder, path in searches:
        root = shipped_root(folder)
        if root is None:
            continue
        for candidate in (root / path, root / f"{path}.yaml"):
            if candidate.is_file():
                return str(candidate)
    return None


def resolve_config_arguments(args: list[str]) -> list[str]:
    """Replace every ``--config X`` / ``--config=X`` whose X is no local file by the shipped config it names.

    Args:
        args: a ``clover-pl`` command line (after the program name).

    Returns:
        The same arguments, with shipped configs as absolute paths (unknown names are left for the parser to report).
    """
    resolved = list(args)
    for index, arg in enumerate(resolved):
        if arg.startswith("--config="):
            value, prefix = arg[len("--config=") :], "--config="
        elif arg in ("--config", "-c") and index + 1 < len(resolved):
            continue
        elif index > 0 and resolved[index - 1] in ("--config", "-c"):
            value, prefix = arg, ""
        else:
            continue
        if value and not os.path.exists(value) and not value.lstrip().startswith(("{", "[")):
            shipped = find_config(value)
            if shipped is not None:
                resolved[index] = prefix + shipped
    return resolved


def list_configs() -> list[str]:
    """Every shipped YAML file, as ``conf/...`` or ``data_modules/...`` names."""
    names = []
    for kind in SHIPPED:
        root = shipped_root(kind)
        if root is not None:
            names += sorted(f"{kind}/{path.relative_to(root).as_posix()}" for path in root.rglob("*.yaml"))
    return names


def main(argv: list[str]) -> int:
    """``clover-pl configs``: print every shipped config's name, one a line."""
    if argv:
        print(f"clover-pl configs takes no arguments, got {' '.join(argv)}", file=sys.stderr)
        return 2
    print("\n".join(list_configs()))
    return 0
