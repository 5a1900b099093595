"""``python -m clover_pl`` runs the command line, under the name ``clover-pl`` (usage lines, errors)."""

import sys

from clover_pl.cli import main

sys.argv[0] = "clover-pl"
main()
