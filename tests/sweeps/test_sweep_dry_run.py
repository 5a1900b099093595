"""Bad input is reported per cell before anything runs: a missing checkpoint, a benchmark config that does not parse."""

from pathlib import Path

import pytest
from sweep_helpers import fake_checkpoint, sweep_file

from clover_pl.sweeps.cli import main as sweep_main


def test_dry_run_lists_cells_with_their_problems_and_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_checkpoint(tmp_path / "good.ckpt", 4)
    (tmp_path / "unknown_key.yaml").write_text("model:\n  init_args:\n    no_such_argument: 1\n")
    path = sweep_file(
        tmp_path,
        {
            "checkpoints": [str(tmp_path / "good.ckpt"), str(tmp_path / "gone.ckpt")],
            "benchmarks": {
                "retrieval": "conf/retrieval/synthetic.yaml",
                "typo": "conf/retrieval/synthetc.yaml",
                "bad_key": ["conf/retrieval/synthetic.yaml", str(tmp_path / "unknown_key.yaml")],
            },
        },
    )
    assert sweep_main(["--config", str(path), "--dry-run"]) == 1
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == f"sweep sweep: 6 cells, results in {tmp_path / 'out'}"
    statuses = [line.split()[1] for line in lines if not line.startswith((" ", "sweep "))]
    assert statuses == ["pending", "invalid", "invalid", "invalid", "invalid", "invalid"]
    assert "clover-pl test --config=conf/retrieval/synthetic.yaml --model.init_args.init_from=null" in printed
    assert f"--ckpt_path={tmp_path / 'good.ckpt'}" in printed
    assert "File does not exist" in printed
    assert "synthetc.yaml" in printed
    assert "no_such_argument" in printed
    assert printed.count(f"problem: checkpoint not found: {tmp_path / 'gone.ckpt'}") == 3
    assert not (tmp_path / "out" / "results.jsonl").exists()  # nothing ran, nothing was recorded


def test_only_needs_a_unique_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 4)
    path = sweep_file(tmp_path, {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": {"a": "a.yaml"}})
    assert sweep_main(["--config", str(path), "--only", "zzzz"]) == 2
    assert "--only zzzz matches 0 cells" in capsys.readouterr().err
