"""``clover-pl search``: see :mod:`clover_pl.inference.cli`."""

from clover_pl.inference.cli import run


def main(argv: list[str]) -> int:
    """Search an index by text; returns the exit status."""
    return run("search", argv)
