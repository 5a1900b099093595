"""The results store and resume semantics: ok cells are skipped, failed and missing ones re-run, nothing runs twice."""

import json
from pathlib import Path

import pytest
from sweep_helpers import FakeLaunch, fake_checkpoint, sweep

from clover_pl.sweeps import ResultStore, expand
from clover_pl.sweeps.runner import LAUNCH_MARK, cell_dir, run_cells


def test_append_read_latest_wins(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "sweep"))
    assert store.latest() == {}
    store.append({"cell": "a", "status": "failed", "error": "boom"})
    store.append({"cell": "b", "status": "ok", "metrics": {"x": 1.0}})
    store.append({"cell": "a", "status": "ok", "metrics": {"x": 2.0}})
    latest = store.latest()
    assert latest["a"]["metrics"] == {"x": 2.0}
    assert store.is_ok("a")
    assert store.is_ok("b")
    assert not store.is_ok("c")
    assert len(store.records()) == 3


def test_a_line_cut_short_is_skipped_and_the_next_starts_afresh(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    store.append({"cell": "a", "status": "ok"})
    with open(store.path, "a") as stream:
        stream.write('{"cell": "b", "sta')  # the writer was killed mid-line
    store.append({"cell": "c", "status": "ok"})
    assert sorted(store.latest()) == ["a", "c"]
    assert store.skipped_lines == 1
    assert len(Path(store.path).read_text().splitlines()) == 3


def test_records_need_a_cell_and_a_status(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path))
    with pytest.raises(ValueError, match="status ok or failed"):
        store.append({"cell": "a", "status": "running"})


def launches(sweep_dir: Path) -> dict[str, int]:
    counts = {}
    for log in sweep_dir.glob("cells/*/log.txt"):
        counts[log.parent.name] = sum(line.startswith(LAUNCH_MARK) for line in log.read_text().splitlines())
    return counts


def test_resume_skips_ok_cells_and_reruns_failed_and_missing(tmp_path: Path) -> None:
    for step in (1, 2):
        fake_checkpoint(tmp_path / "run" / f"step{step}.ckpt", step)
    config = sweep(
        tmp_path,
        {"checkpoints": [str(tmp_path / "run")], "benchmarks": {"a": "a.yaml", "b": "b.yaml"}},
    )
    cells = expand(config)
    store = ResultStore(config.output_dir)
    # First run: the cells of step2.ckpt on benchmark b fail.
    first = FakeLaunch(fail=("b.yaml --model.init_args.init_from=null --ckpt_path=" + str(tmp_path / "run/step2"),))
    records = run_cells(cells, config, store, problems={}, launch=first, echo=lambda line: None)
    assert [records[cell.id]["status"] for cell in cells] == ["ok", "ok", "ok", "failed"]
    assert "exited with status 1" in records[cells[3].id]["error"]
    assert "RuntimeError: boom" in records[cells[3].id]["error"]  # the log's tail is kept
    # A cell appended by hand as missing: delete the store line of cell 1 by rewriting the store without it.
    lines = [line for line in Path(store.path).read_text().splitlines() if json.loads(line)["cell"] != cells[1].id]
    Path(store.path).write_text("\n".join(lines) + "\n")
    second = FakeLaunch()
    records = run_cells(cells, config, store, problems={}, launch=second, echo=lambda line: None)
    assert [records[cell.id]["status"] for cell in cells] == ["ok"] * 4
    rerun = {Path(command.env["CLOVER_OUT"]).name for command in second.commands}
    assert rerun == {cells[1].id, cells[3].id}
    assert launches(Path(config.output_dir)) == {cells[0].id: 1, cells[1].id: 2, cells[2].id: 1, cells[3].id: 2}
    # A third run launches nothing.
    third = FakeLaunch()
    run_cells(cells, config, store, problems={}, launch=third, echo=lambda line: None)
    assert third.commands == []


def test_problems_are_recorded_without_launching(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 1)
    config = sweep(
        tmp_path,
        {"checkpoints": [str(tmp_path / "a.ckpt"), str(tmp_path / "gone.ckpt")], "benchmarks": {"a": "a.yaml"}},
    )
    cells = expand(config)
    launch = FakeLaunch()
    store = ResultStore(config.output_dir)
    records = run_cells(cells, config, store, {cells[0].id: "does not parse"}, launch=launch, echo=lambda line: None)
    assert launch.commands == []
    assert records[cells[0].id]["error"] == "does not parse"
    assert records[cells[1].id]["error"].startswith("checkpoint not found")
    assert not Path(cell_dir(config, cells[0])).exists()
