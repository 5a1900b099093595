"""`clover-pl prepare <dataset> --help` answers at once: the prepare path imports neither torch nor Lightning."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCES = str(Path(__file__).resolve().parents[2] / "src")
HEAVY = ("torch", "lightning", "webdataset", "transformers")

PROBE = """
import sys
from clover_pl.prepare import DATASETS, main
from clover_pl.prepare import img2dataset, media_check, shard_check  # what --verify and --shards use, torch aside
for name in DATASETS:
    try:
        main([name, "--help"])
    except SystemExit as exit:
        assert exit.code == 0, (name, exit.code)
print("HEAVY", sorted(name for name in {heavy} if name in sys.modules), file=sys.stderr)
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": SOURCES + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


def test_every_converters_help_imports_neither_torch_nor_lightning() -> None:
    result = run(PROBE.format(heavy=HEAVY))
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
    for option in ("--csv", "--tsv", "--annotations", "--verify", "--no-decode"):
        assert option in result.stdout


def test_clover_pl_prepare_help_through_the_cli_is_fast() -> None:
    """The issue's check: `clover-pl prepare webvid --help` leaves torch and Lightning unimported."""
    if not (Path(SOURCES) / "clover_pl" / "lightning_cli.py").is_file():
        pytest.skip("clover_pl.cli imports Lightning at import time until the ux branch's lazy CLI is merged")
    code = (
        "import sys\n"
        "sys.argv = ['clover-pl', 'prepare', 'webvid', '--help']\n"
        "from clover_pl.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        f"print('HEAVY', sorted(name for name in {HEAVY} if name in sys.modules), file=sys.stderr)\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert "--shards" in result.stdout
    assert "HEAVY []" in result.stderr
