"""`clover-pl prepare <dataset> --help` answers at once: the prepare path imports neither torch nor Lightning."""

import os
import subprocess
import sys
from pathlib import Path

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
