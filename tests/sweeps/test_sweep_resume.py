"""The issue's check: two checkpoints x two synthetic benchmarks, the sweep killed after its first cell, re-run.

Nothing that finished runs again, the cell that was in progress is run once more, and the final table holds every
cell with the numbers a direct ``clover-pl test`` gives.
"""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import sweep_file

from clover_pl.cli import main, run_cli
from clover_pl.sweeps import ResultStore, expand, load_sweep
from clover_pl.sweeps.cli import main as sweep_main
from clover_pl.sweeps.runner import LAUNCH_MARK

ROOT = Path(__file__).parents[2]


def pretrain(data: Path, out: Path, steps: int) -> Path:
    """A tiny quickstart fit of ``steps`` steps; returns its last checkpoint."""
    main(
        [
            "fit",
            "--config=conf/quickstart.yaml",
            "--config=conf/debug/tiny.yaml",
            *shards(data),
            "--data.init_args.num_workers=0",
            f"--trainer.max_steps={steps}",
            f"--trainer.val_check_interval={steps}",
            f"--trainer.default_root_dir={out}",
        ]
    )
    return out / "checkpoints" / "last.ckpt"


def shards(data: Path) -> list[str]:
    return [
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/validation/{{00004..00005}}.tar",
        "--data.init_args.batch_size=4",
        "--data.init_args.validation_batch_size=4",
    ]


@pytest.fixture(scope="module")
def checkpoints(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with two checkpoints of a tiny pretraining: step1.ckpt and step2.ckpt."""
    root = tmp_path_factory.mktemp("sweep_checkpoints")
    run = root / "run"
    run.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for steps in (1, 2):
            patch.setenv("CLOVER_OUT", str(root / f"fit{steps}"))
            shutil.copy(pretrain(synthetic_data, root / f"fit{steps}", steps), run / f"step{steps}.ckpt")
    return run


def retrieval_overrides(root: Path) -> dict[str, object]:
    return {
        "data.init_args.root": str(root),
        "data.init_args.num_workers": 0,
        "trainer.logger": False,
        "trainer.enable_progress_bar": False,
    }


def launches(sweep_dir: Path) -> dict[str, int]:
    return {
        log.parent.name: sum(line.startswith(LAUNCH_MARK) for line in log.read_text().splitlines())
        for log in sweep_dir.glob("cells/*/log.txt")
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_sweep_resumes_without_running_anything_twice(
    checkpoints: Path, synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clover_pl.prepare.synthetic_retrieval import prepare_synthetic_retrieval

    retrieval = tmp_path / "retrieval"
    prepare_synthetic_retrieval(str(synthetic_data), str(retrieval), train_videos=8, val_videos=4)
    heldout = dict(arg.removeprefix("--").split("=", 1) for arg in shards(synthetic_data))
    path = sweep_file(
        tmp_path,
        {
            "name": "resume",
            "output_dir": str(tmp_path / "sweep"),
            "checkpoints": [str(checkpoints)],
            "env": {"CLOVER_DATA": str(synthetic_data)},
            "benchmarks": {
                "retrieval": {
                    "config": "conf/retrieval/synthetic.yaml",
                    "overrides": retrieval_overrides(retrieval),
                    "metrics": ["t2v_r@1", "t2v_r@5", "t2v_median_rank"],
                },
                "heldout": {
                    "config": ["conf/quickstart.yaml", "conf/debug/tiny.yaml"],
                    "stage": "validate",
                    "init_from_key": None,
                    "overrides": {**heldout, "data.init_args.num_workers": 0},
                    "metrics": ["t2v_r@1", "t2v_r@5"],
                },
            },
        },
    )
    monkeypatch.chdir(ROOT)
    cells = expand(load_sweep(str(path)))
    assert [(Path(cell.row).name, cell.benchmark) for cell in cells] == [
        ("step1.ckpt", "retrieval"),
        ("step1.ckpt", "heldout"),
        ("step2.ckpt", "retrieval"),
        ("step2.ckpt", "heldout"),
    ]
    store = ResultStore(str(tmp_path / "sweep"))

    # Run the sweep in its own process group and kill the group (sweep and running cell) once a cell is stored.
    process = subprocess.Popen(
        [sys.executable, "-m", "clover_pl", "sweep", "--config", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not store.records() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finished = {record["cell"] for record in store.records()}
    assert finished == {cells[0].id}, "exactly the first cell finished before the kill"
    assert store.latest()[cells[0].id]["status"] == "ok"
    before = launches(tmp_path / "sweep")

    assert sweep_main(["--config", str(path)]) == 0
    records = store.records()
    assert sorted(record["cell"] for record in records) == sorted(cell.id for cell in cells)  # one line each
    assert all(record["status"] == "ok" for record in records)
    after = launches(tmp_path / "sweep")
    assert after[cells[0].id] == before[cells[0].id] == 1  # the stored cell did not run again
    for cell in cells[1:]:
        assert after[cell.id] == before.get(cell.id, 0) + 1, cell.describe()  # the rest ran exactly once more

    # The table: every cell, the stored numbers, and those of a direct `clover-pl test` on the same checkpoint.
    latest = store.latest()
    rows = list(csv.DictReader((tmp_path / "sweep" / "results.csv").open()))
    assert [(Path(row["checkpoint"]).name, row["step"]) for row in rows] == [("step1.ckpt", "1"), ("step2.ckpt", "2")]
    for row, (retrieval_cell, heldout_cell) in zip(rows, (cells[0:2], cells[2:4]), strict=True):
        for metric in ("t2v_r@1", "t2v_r@5", "t2v_median_rank"):
            assert float(row[f"retrieval {metric}"]) == latest[retrieval_cell.id]["metrics"][metric]
        for metric in ("t2v_r@1", "t2v_r@5"):
            assert float(row[f"heldout {metric}"]) == latest[heldout_cell.id]["metrics"][metric]
    monkeypatch.setenv("CLOVER_DATA", str(synthetic_data))
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "direct"))
    overrides = [f"--{key}={value}" for key, value in retrieval_overrides(retrieval).items()]
    direct = run_cli(
        [
            "test",
            "--config=conf/retrieval/synthetic.yaml",
            *[override.replace("=False", "=false") for override in overrides],
            "--model.init_args.init_from=null",
            f"--ckpt_path={checkpoints / 'step2.ckpt'}",
        ]
    )
    expected = direct.model.results["test"]
    assert latest[cells[2].id]["metrics"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert (tmp_path / "sweep" / "results.md").read_text().count("| ") > 0
