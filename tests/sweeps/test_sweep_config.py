"""The sweep file schema: defaults, every error reported at once with the key and the valid choices, shipped files."""

from pathlib import Path

import pytest
from sweep_helpers import fake_checkpoint, sweep, sweep_file

from clover_pl.sweeps import SweepConfigError, expand, load_sweep
from clover_pl.sweeps.cli import main as sweep_main
from clover_pl.sweeps.config import parse_sweep

CONF = Path(__file__).parents[2] / "conf"
SHIPPED = sorted((CONF / "sweeps").glob("*.yaml"))


def test_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    config = sweep(tmp_path, {"checkpoints": ["a.ckpt"], "benchmarks": {"retrieval": "conf/retrieval/synthetic.yaml"}})
    assert config.name == "sweep"
    assert [setting.name for setting in config.settings] == ["zero_shot"]
    benchmark = config.benchmarks[0]
    assert (benchmark.name, benchmark.config, benchmark.stage) == (
        "retrieval",
        ("conf/retrieval/synthetic.yaml",),
        "test",
    )
    assert benchmark.init_from_key == "model.init_args.init_from"
    assert config.seeds == (0,)
    assert config.seed_keys == ("seed_everything",)


def test_every_problem_is_reported_with_its_key_and_the_valid_choices() -> None:
    raw = {
        "checkpoint": ["a.ckpt"],  # typo
        "benchmarks": {
            "msrvtt": {"config": "x.yaml", "stage": "tset", "paper": "msrvt", "setings": ["zero_shot"]},
            "qa": {"config": "y.yaml", "settings": ["fine"]},
        },
        "settings": {"zero_shot": {"mode": "zeroshot"}, "tuned": {"mode": "fine_tune", "select": "first"}},
        "seeds": [0, "1"],
    }
    with pytest.raises(SweepConfigError) as error:
        parse_sweep(raw, source="bad.yaml")
    message = str(error.value)
    expected = [
        "top level: unknown key 'checkpoint'; valid keys: name, output_dir, checkpoints, training,",
        "benchmarks.msrvtt: unknown key 'setings'; valid keys: config, overrides, stage, metrics, settings,",
        "benchmarks.msrvtt.stage: 'tset' is not one of test, validate",
        "benchmarks.msrvtt.paper: unknown paper entry 'msrvt'; valid entries: msrvtt, didemo, lsmdc,",
        "benchmarks.qa.settings: unknown setting 'fine'; valid settings: tuned, zero_shot",
        "settings.zero_shot.mode: 'zeroshot' is not one of zero_shot, fine_tune",
        "settings.tuned.select: 'first' is not one of best, last",
        "seeds: expected a non-empty list of integers, got [0, '1']",
        "checkpoints / training: give at least one checkpoint",
    ]
    for text in expected:
        assert text in message, text
    assert message.startswith(f"bad.yaml: {len(expected)} problem(s)")


def test_fine_tuning_needs_an_init_key() -> None:
    raw = {
        "checkpoints": ["a.ckpt"],
        "settings": {"tuned": {"mode": "fine_tune"}},
        "benchmarks": {"heldout": {"config": "conf/quickstart.yaml", "init_from_key": None}},
    }
    with pytest.raises(SweepConfigError, match="setting 'tuned' fine-tunes, which needs init_from_key"):
        parse_sweep(raw)


def test_training_block_variants(tmp_path: Path) -> None:
    config = sweep(
        tmp_path,
        {
            "training": {
                "config": "conf/quickstart.yaml",
                "variants": {"clover": [], "baseline": ["conf/ablation/baseline.yaml"], "x": {"overrides": {"a": 1}}},
            },
            "benchmarks": {"retrieval": "conf/retrieval/synthetic.yaml"},
        },
    )
    assert config.training is not None
    variants = {variant.name: (variant.config, variant.overrides) for variant in config.training.variants}
    assert variants == {"clover": ((), {}), "baseline": (("conf/ablation/baseline.yaml",), {}), "x": ((), {"a": 1})}
    assert config.training.evaluate == ("last",)


def test_missing_file_and_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SweepConfigError, match="sweep file not found"):
        load_sweep(str(tmp_path / "nope.yaml"))
    monkeypatch.delenv("CLOVER_TEST_UNSET", raising=False)
    path = sweep_file(tmp_path, {"checkpoints": ["${oc.env:CLOVER_TEST_UNSET}"], "benchmarks": {"a": "a.yaml"}})
    with pytest.raises(SweepConfigError, match="CLOVER_TEST_UNSET"):
        load_sweep(str(path))


def test_cli_exits_2_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sweep_file(tmp_path, {"checkpoints": ["a.ckpt"], "benchmarks": {"a": {"config": "a.yaml", "bogus": 1}}})
    assert sweep_main(["--config", str(path), "--dry-run"]) == 2
    assert "benchmarks.a: unknown key 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweeps_load_and_name_existing_configs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    fake_checkpoint(checkpoints / "step10.ckpt", 10)
    fake_checkpoint(checkpoints / "last.ckpt", 20)
    monkeypatch.setenv("CLOVER_PRETRAINED", str(checkpoints / "last.ckpt"))
    monkeypatch.setenv("CLOVER_RUN", str(tmp_path / "run"))
    monkeypatch.setenv("CLOVER_SWEEP_OUT", str(tmp_path / "out"))
    monkeypatch.chdir(CONF.parent)
    config = load_sweep(str(path))
    cells = expand(config)
    assert cells, path
    assert all(cell.problem is None for cell in cells)
    referenced = {name for cell in cells for name in cell.definition["config"]}
    missing = sorted(name for name in referenced if not (CONF.parent / name).is_file())
    assert not missing, f"{path.name} names configs that do not exist: {missing}"
    assert path.read_text().startswith("#"), "a shipped sweep opens with the command that runs it"
