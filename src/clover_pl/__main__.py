"""``python -m clover_pl`` runs the command line."""

from clover_pl.cli import main

main()
