"""``clover-pl embed``: see :mod:`clover_pl.inference.cli`."""

from clover_pl.inference.cli import run


def main(argv: list[str]) -> int:
    """Embed videos and texts into an index; returns the exit status."""
    return run("embed", argv)
