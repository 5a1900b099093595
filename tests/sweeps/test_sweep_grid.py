"""Grid expansion: run directories sorted by step with last.ckpt deduplicated, cell order, stable ids, training runs."""

from pathlib import Path

import pytest
from sweep_helpers import fake_checkpoint, sweep

from clover_pl.sweeps import SweepConfigError, expand
from clover_pl.sweeps.grid import list_checkpoints

BENCHMARKS = {"retrieval": "conf/retrieval/synthetic.yaml", "heldout": {"config": "conf/quickstart.yaml"}}


def test_run_directory_sorted_by_step_and_last_deduplicated(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_checkpoint(run / "step100.ckpt", 100)
    fake_checkpoint(run / "epoch=0-step=50.ckpt", 50)
    fake_checkpoint(run / "last.ckpt", 100)  # the same step as step100.ckpt: dropped
    (run / "notes.txt").write_text("not a checkpoint")
    assert [(Path(path).name, step, problem) for path, step, problem in list_checkpoints(str(run))] == [
        ("epoch=0-step=50.ckpt", 50, None),
        ("step100.ckpt", 100, None),
    ]
    fake_checkpoint(run / "last.ckpt", 150)  # a later step than any other: kept
    assert [Path(path).name for path, _, _ in list_checkpoints(str(run))][-1] == "last.ckpt"


def test_bad_checkpoint_entries_become_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.ckpt").write_text("not a checkpoint")
    assert "checkpoint not found" in list_checkpoints(str(tmp_path / "missing.ckpt"))[0][2]
    assert "no *.ckpt file" in list_checkpoints(str(tmp_path / "empty"))[0][2]
    assert "not a PyTorch checkpoint" in list_checkpoints(str(tmp_path / "broken.ckpt"))[0][2]


def test_checkpoints_times_benchmarks_times_settings(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "run" / "step2.ckpt", 2)
    fake_checkpoint(tmp_path / "run" / "step1.ckpt", 1)
    config = sweep(
        tmp_path,
        {
            "checkpoints": [str(tmp_path / "run"), str(tmp_path / "missing.ckpt")],
            "benchmarks": {**BENCHMARKS, "qa": {"config": "conf/qa/x.yaml", "settings": ["tuned"]}},
            "settings": {"zero_shot": {}, "tuned": {"mode": "fine_tune"}},
            "seeds": [0, 1],
        },
    )
    cells = expand(config)
    described = [(Path(cell.row).name, cell.benchmark, cell.setting, cell.seed, cell.step) for cell in cells]
    # qa runs only fine-tuned, and fine-tuning once per seed; zero-shot cells have no seed.
    per_checkpoint = [
        ("retrieval", "zero_shot", None),
        ("retrieval", "tuned", 0),
        ("retrieval", "tuned", 1),
        ("heldout", "zero_shot", None),
        ("heldout", "tuned", 0),
        ("heldout", "tuned", 1),
        ("qa", "tuned", 0),
        ("qa", "tuned", 1),
    ]
    expected = [
        (name, *cell, step)
        for name, step in (("step1.ckpt", 1), ("step2.ckpt", 2), ("missing.ckpt", None))
        for cell in per_checkpoint
    ]
    assert described == expected
    assert all(cell.problem is None for cell in cells[:16])
    assert all("checkpoint not found" in str(cell.problem) for cell in cells[16:])
    assert len({cell.id for cell in cells}) == len(cells)
    first = cells[0].definition
    assert first["checkpoint"] == {"path": str(tmp_path / "run" / "step1.ckpt"), "step": 1}
    assert first["config"] == ["conf/retrieval/synthetic.yaml"]
    assert first["mode"] == "zero_shot"


def test_ids_are_stable_and_follow_the_definition_not_the_names(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 3)
    body = {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": BENCHMARKS}
    ids = [cell.id for cell in expand(sweep(tmp_path, body))]
    assert ids == [cell.id for cell in expand(sweep(tmp_path, body))]
    renamed_benchmarks = {"r": BENCHMARKS["retrieval"], "h": BENCHMARKS["heldout"]}
    renamed = {"checkpoints": body["checkpoints"], "benchmarks": renamed_benchmarks}
    assert [cell.id for cell in expand(sweep(tmp_path, renamed))] == ids
    changed = {**body, "overrides": {"data.init_args.test_frames": 8}}
    assert not set(ids) & {cell.id for cell in expand(sweep(tmp_path, changed))}
    fake_checkpoint(tmp_path / "a.ckpt", 4)  # the file moved on: its results are not those of step 3
    assert not set(ids) & {cell.id for cell in expand(sweep(tmp_path, body))}


def test_duplicate_benchmarks_are_refused(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "a.ckpt", 3)
    body = {"checkpoints": [str(tmp_path / "a.ckpt")], "benchmarks": {"a": "x.yaml", "b": "x.yaml"}}
    with pytest.raises(SweepConfigError, match="two cells run the same thing"):
        expand(sweep(tmp_path, body))


def test_training_runs_come_before_their_evaluations(tmp_path: Path) -> None:
    config = sweep(
        tmp_path,
        {
            "training": {
                "config": "conf/quickstart.yaml",
                "variants": {"clover": [], "baseline": ["conf/ablation/baseline.yaml"]},
                "evaluate": ["best", "last"],
            },
            "seeds": [0, 1],
            "seed_keys": ["seed_everything", "model.init_args.seed"],
            "benchmarks": {"retrieval": "conf/retrieval/synthetic.yaml"},
        },
    )
    cells = expand(config)
    assert [(cell.kind, cell.row, cell.seed) for cell in cells] == [
        (kind, row, seed)
        for variant in ("clover", "baseline")
        for seed in (0, 1)
        for kind, row in (("train", variant), ("evaluate", f"{variant} (best)"), ("evaluate", f"{variant} (last)"))
    ]
    train, best = cells[0], cells[1]
    assert train.definition["config"] == ["conf/quickstart.yaml"]
    assert cells[6].definition["config"] == ["conf/quickstart.yaml", "conf/ablation/baseline.yaml"]
    assert train.definition["seed_keys"] == ["seed_everything", "model.init_args.seed"]
    assert best.after == train.id
    assert best.definition["checkpoint"] == {"train": train.id, "select": "best"}
    assert best.group == "clover"
