"""The report from a hand-made store: Markdown and CSV values, paper row, failures, mean ± std over seeds, figures."""

import csv
from pathlib import Path

from sweep_helpers import fake_checkpoint, sweep

from clover_pl.sweeps import ResultStore, expand, write_report
from clover_pl.sweeps.report import PAPER_ROW


def ok(cell_id: str, metrics: dict[str, float], step: int | None = None) -> dict:
    return {"cell": cell_id, "status": "ok", "metrics": metrics, "step": step}


def test_checkpoint_rows_benchmark_columns_paper_row_and_failures(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_checkpoint(run / "step10.ckpt", 10)
    fake_checkpoint(run / "step20.ckpt", 20)
    config = sweep(
        tmp_path,
        {
            "checkpoints": [str(run)],
            "benchmarks": {
                "didemo": {"config": "d.yaml", "metrics": ["t2v_r@1", "t2v_r@5"], "paper": "didemo"},
                "qa": {"config": "q.yaml"},  # every scalar the runs reported
            },
        },
    )
    cells = expand(config)
    store = ResultStore(config.output_dir)
    store.append(ok(cells[0].id, {"t2v_r@1": 10.0, "t2v_r@5": 30.0, "gallery": 100.0}, 10))
    store.append(ok(cells[1].id, {"accuracy": 40.0, "accuracy_what": 35.5}, 10))
    store.append(ok(cells[2].id, {"t2v_r@1": 20.0, "t2v_r@5": 45.25}, 20))
    store.append({"cell": cells[3].id, "status": "failed", "error": "`clover-pl test` exited with status 1\nTraceback"})
    table, markdown = write_report(config, cells, store.latest())
    step10, step20 = run / "step10.ckpt", run / "step20.ckpt"
    assert markdown == (
        "## Sweep `sweep`\n\n"
        "3 of 4 cells ok, 1 failed, 0 not run yet.\n\n"
        "| checkpoint | step | didemo t2v_r@1 | didemo t2v_r@5 | qa accuracy | qa accuracy_what |\n"
        "|---|---|---|---|---|---|\n"
        f"| {step10} | 10 | 10.00 | 30.00 | 40.00 | 35.50 |\n"
        f"| {step20} | 20 | 20.00 | 45.25 | failed | failed |\n"
        f"| {PAPER_ROW} |  | 29.50 | 55.20 |  |  |\n\n"
        "Failed cells (re-run the sweep to retry them):\n\n"
        f"- `{cells[3].id}` qa/zero_shot on {step20}: `clover-pl test` exited with status 1\n"
    )
    out = Path(config.output_dir)
    assert (out / "results.md").read_text() == markdown
    rows = list(csv.reader((out / "results.csv").open()))
    assert rows == [
        ["checkpoint", "step", "didemo t2v_r@1", "didemo t2v_r@5", "qa accuracy", "qa accuracy_what"],
        [str(step10), "10", "10.0", "30.0", "40.0", "35.5"],
        [str(step20), "20", "20.0", "45.25", "", ""],
        [PAPER_ROW, "", "29.5", "55.2", "", ""],
    ]
    plots = sorted(path.name for path in (out / "plots").glob("*.png"))
    assert plots == ["00_didemo_t2v_r_1.png", "01_didemo_t2v_r_5.png", "02_qa_accuracy.png", "03_qa_accuracy_what.png"]
    assert list((out / "tensorboard" / "hparams").rglob("events.out.tfevents.*"))
    assert list((out / "tensorboard" / "scalars").rglob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard" / "plots"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == [f"sweep/plots/{name[:-4]}" for name in plots]


def test_seeds_give_mean_and_std_and_pending_cells_are_counted(tmp_path: Path) -> None:
    config = sweep(
        tmp_path,
        {
            "training": {"config": "conf/quickstart.yaml", "variants": {"clover": [], "baseline": ["b.yaml"]}},
            "seeds": [0, 1],
            "benchmarks": {"retrieval": {"config": "r.yaml", "metrics": ["t2v_r@1"], "paper": "msrvtt"}},
        },
    )
    cells = expand(config)  # per variant and seed: train, evaluate
    kinds = [(cell.kind, cell.row, cell.seed) for cell in cells]
    assert kinds[:4] == [("train", "clover", 0), ("evaluate", "clover (last)", 0), ("train", "clover", 1)] + [
        ("evaluate", "clover (last)", 1)
    ]
    store = ResultStore(config.output_dir)
    for cell in cells[::2]:
        store.append(ok(cell.id, {}, 11))
    store.append(ok(cells[1].id, {"t2v_r@1": 10.0}, 11))
    store.append(ok(cells[3].id, {"t2v_r@1": 14.0}, 13))
    store.append(ok(cells[5].id, {"t2v_r@1": 8.0}, 11))
    # cells[7] (baseline, seed 1) has not run.
    _, markdown = write_report(config, cells, store.latest(), figures=False)
    lines = markdown.splitlines()
    assert lines[2] == "7 of 8 cells ok, 0 failed, 1 not run yet. Values are mean ± std over seeds."
    assert lines[4:8] == [
        "| checkpoint | step | seeds | retrieval t2v_r@1 |",
        "|---|---|---|---|",
        "| clover (last) | 12 | 2 | 12.00 ± 2.83 |",
        "| baseline (last) | 11 | 1 | 8.00 |",
    ]
    assert lines[8] == f"| {PAPER_ROW} |  |  | 26.40 |"
    rows = list(csv.reader((Path(config.output_dir) / "results.csv").open()))
    assert rows[0] == ["checkpoint", "step", "seeds", "retrieval t2v_r@1", "retrieval t2v_r@1 std"]
    assert rows[1][:4] == ["clover (last)", "12", "2", "12.0"]
    assert abs(float(rows[1][4]) - 2.8284271247) < 1e-9
    assert rows[2] == ["baseline (last)", "11", "1", "8.0", ""]
