"""Cell commands and runs (with a stand-in for the child process), the MetricsFile callback, and real timeouts."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from sweep_helpers import FakeLaunch, fake_checkpoint, sweep

from clover_pl.callbacks import MetricsFile
from clover_pl.sweeps import ResultStore, expand
from clover_pl.sweeps.commands import Command, evaluate_command
from clover_pl.sweeps.runner import CellFailure, cell_dir, launch_subprocess, run_cells
from clover_pl.tasks.base import CloverTask
from clover_pl.tasks.optimization import Optimization

QUIET = {"echo": lambda line: None}


def test_zero_shot_command_is_the_clover_pl_test_a_user_types(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 5)
    config = sweep(
        tmp_path,
        {
            "checkpoints": [str(tmp_path / "a.ckpt")],
            "benchmarks": {"r": {"config": "conf/retrieval/synthetic.yaml", "overrides": {"data.init_args.x": [1, 2]}}},
            "settings": {"frames": {"overrides": {"data.init_args.test_frames": 2, "trainer.logger": False}}},
            "env": {"CLOVER_DATA": "/data"},
        },
    )
    (cell,) = expand(config)
    folder = cell_dir(config, cell)
    command = evaluate_command(cell.definition, str(tmp_path / "a.ckpt"), folder, None)
    assert command.argv[:4] == [sys.executable, "-m", "clover_pl", "test"]
    assert command.argv[4:-1] == [
        "--config=conf/retrieval/synthetic.yaml",
        "--data.init_args.x=[1, 2]",
        "--data.init_args.test_frames=2",
        "--trainer.logger=false",
        "--model.init_args.init_from=null",
        f"--ckpt_path={tmp_path / 'a.ckpt'}",
    ]
    callback = json.loads(command.argv[-1].removeprefix("--trainer.callbacks+="))
    assert callback["class_path"] == "clover_pl.callbacks.MetricsFile"
    assert callback["init_args"] == {"path": f"{folder}/metrics.json"}
    assert command.env == {"CLOVER_DATA": "/data", "CLOVER_OUT": folder}
    assert command.stage == "test"


def test_fine_tuning_fits_from_the_checkpoint_then_tests_the_selected_one(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 5)
    config = sweep(
        tmp_path,
        {
            "checkpoints": [str(tmp_path / "a.ckpt")],
            "benchmarks": {"qa": "conf/qa/x.yaml"},
            "settings": {"tuned": {"mode": "fine_tune", "select": "best"}},
            "seeds": [3],
        },
    )
    (cell,) = expand(config)
    launch = FakeLaunch(metrics=lambda command: {"accuracy": 50.0})
    records = run_cells([cell], config, ResultStore(config.output_dir), {}, launch=launch, **QUIET)
    fit, test = launch.commands
    assert fit.subcommand == "fit"
    assert f"--model.init_args.init_from={tmp_path / 'a.ckpt'}" in fit.argv
    assert "--seed_everything=3" in fit.argv
    best = Path(cell_dir(config, cell)) / "checkpoints" / "best.ckpt"
    assert test.subcommand == "test"
    assert f"--ckpt_path={best}" in test.argv
    assert "--model.init_args.init_from=null" in test.argv
    record = records[cell.id]
    assert record["status"] == "ok"
    assert record["metrics"] == {"accuracy": 50.0}
    assert record["step"] == 5  # the pretraining step, not the fine-tuning one
    assert record["artifacts"] == {"checkpoint": str(tmp_path / "a.ckpt"), "fine_tuned": str(best)}


def test_trained_runs_hand_their_checkpoints_to_their_evaluations(tmp_path: Path) -> None:
    config = sweep(
        tmp_path,
        {
            "training": {"config": "conf/quickstart.yaml", "variants": {"clover": [], "broken": ["broken.yaml"]}},
            "benchmarks": {"retrieval": {"config": "conf/retrieval/synthetic.yaml", "stage": "validate"}},
        },
    )
    cells = expand(config)
    launch = FakeLaunch(fail=("broken.yaml",))
    records = run_cells(cells, config, ResultStore(config.output_dir), {}, launch=launch, **QUIET)
    train, evaluate, broken, blocked = (records[cell.id] for cell in cells)
    last = str(Path(cell_dir(config, cells[0])) / "checkpoints" / "last.ckpt")
    assert train["status"] == "ok"
    assert train["artifacts"]["last"] == last
    assert train["step"] == 11
    assert evaluate["status"] == "ok"
    assert evaluate["artifacts"]["checkpoint"] == last
    assert evaluate["step"] == 11  # read from the evaluated checkpoint
    assert launch.commands[1].subcommand == "validate"
    assert launch.commands[1].stage == "val"
    assert broken["status"] == "failed"
    assert blocked["status"] == "failed"
    assert blocked["error"] == f"blocked: training cell {cells[2].id} has not finished ok"
    assert len(launch.commands) == 3


def test_only_rank_zero_writes_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under `srun` with one task per GPU every task runs the sweep; each reads the metrics file of its own rank.
    fake_checkpoint(tmp_path / "a.ckpt", 5)
    config = sweep(tmp_path, {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": {"a": "a.yaml"}})
    (cell,) = expand(config)
    store = ResultStore(config.output_dir)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    records = run_cells([cell], config, store, {}, launch=FakeLaunch(), **QUIET)
    assert records[cell.id]["status"] == "ok"
    assert store.records() == []
    folder = Path(cell_dir(config, cell))
    assert sorted(path.name for path in folder.iterdir()) == ["log.rank1.txt", "metrics.json.rank1"]
    monkeypatch.setenv("SLURM_PROCID", "0")
    records = run_cells([cell], config, store, {}, launch=FakeLaunch(), **QUIET)
    assert [record["cell"] for record in store.records()] == [cell.id]


def test_a_run_that_reports_nothing_fails(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 5)
    config = sweep(tmp_path, {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": {"a": "a.yaml"}})
    launch = FakeLaunch(metrics=lambda command: {})
    records = run_cells(expand(config), config, ResultStore(config.output_dir), {}, launch=launch, **QUIET)
    (record,) = records.values()
    assert record["status"] == "failed"
    assert "reported no test metrics" in record["error"]


def test_launch_subprocess_stops_a_cell_past_its_timeout(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    # argv[3] is the subcommand, as in `python -m clover_pl test`.
    done = Command([sys.executable, "-c", "print('hello')", "test"], {}, str(tmp_path / "m.json"), "test", None)
    assert launch_subprocess(done, str(log)) == 0
    assert "hello" in log.read_text()
    hung = Command([sys.executable, "-c", "import time; time.sleep(60)", "test"], {}, "", "test", 0.5)
    with pytest.raises(CellFailure, match=r"cell_timeout_s=0\.5"):
        launch_subprocess(hung, str(log))


def test_metrics_file_writes_task_results_or_logged_scalars(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    callback = MetricsFile(str(path))
    trainer = SimpleNamespace(
        global_rank=0,
        global_step=7,
        sanity_checking=False,
        callback_metrics={"val/t2v_r@1": torch.tensor(12.5), "train/loss": torch.tensor(1.0)},
        checkpoint_callback=SimpleNamespace(best_model_path="", last_model_path="/run/last.ckpt"),
    )
    task = CloverTask(torch.nn.Identity(), Optimization(), seed=0)
    task.results["test"] = {"accuracy": 40.0, "count": 3, "note": "text"}
    callback.on_validation_end(trainer, SimpleNamespace())  # not a clover-pl task: the logged val/ scalars
    callback.on_test_end(trainer, task)
    callback.on_fit_end(trainer, task)
    assert json.loads(path.read_text()) == {
        "global_step": 7,
        "stages": {"val": {"t2v_r@1": 12.5}, "test": {"accuracy": 40.0, "count": 3.0}},
        "best_model_path": None,
        "last_model_path": "/run/last.ckpt",
    }
    trainer.sanity_checking = True
    trainer.callback_metrics = {"val/t2v_r@1": torch.tensor(0.0)}
    callback.on_validation_end(trainer, SimpleNamespace())
    assert json.loads(path.read_text())["stages"]["val"] == {"t2v_r@1": 12.5}
