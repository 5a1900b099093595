"""Every shipped YAML under conf/ parses; backbone files instantiate; tiny.yaml agrees with clover_tiny()."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from clover_pl.cli import main
from clover_pl.models import CloverBackbone, clover_tiny

CONF = Path(__file__).parents[1] / "conf"
BACKBONES = sorted((CONF / "backbone").glob("*.yaml"))
TRAINER_OVERLAYS = sorted((CONF / "trainer").glob("*.yaml")) + sorted((CONF / "debug").glob("*.yaml"))
RUNS = [
    CONF / "quickstart.yaml",
    *sorted((CONF / "pretrain").glob("*.yaml")),
    *sorted((CONF / "retrieval").glob("*.yaml")),
    *sorted((CONF / "qa").glob("*.yaml")),
]
ABLATIONS = sorted((CONF / "ablation").glob("*.yaml"))
SWEEPS = sorted((CONF / "sweeps").glob("*.yaml"))  # not Lightning configs: tests/sweeps/test_sweep_config.py
STEP_OVERLAYS = sorted((CONF / "sweeps" / "steps").glob("*.yaml"))  # run lengths of the study-length check
DATA_BLOCKS = sorted((CONF.parent / "data_modules").rglob("*.yaml"))
ENVIRONMENT = {
    "CLOVER_BERT_DIR": "/models/bert",
    "CLOVER_SWIN_CKPT": "/models/swin.pth",
    "WEBVID_SHARDS": "/data/webvid/{0..1}.tar",
    "CC3M_SHARDS": "/data/cc3m/{0..1}.tar",
    "HELDOUT_SHARDS": "/data/heldout/{0..1}.tar",
    "MSRVTT_ROOT": "/data/msrvtt",
    "DIDEMO_ROOT": "/data/didemo",
    "LSMDC_ROOT": "/data/lsmdc",
    "MSRVTT_QA_ROOT": "/data/msrvtt_qa",
    "MSVD_QA_ROOT": "/data/msvd_qa",
    "TGIF_FRAMEQA_ROOT": "/data/tgif_frameqa",
    "TGIF_ACTION_ROOT": "/data/tgif_action",
    "TGIF_TRANSITION_ROOT": "/data/tgif_transition",
    "MSRVTT_MC_ROOT": "/data/msrvtt_mc",
    "LSMDC_MC_ROOT": "/data/lsmdc_mc",
    "LSMDC_FIB_ROOT": "/data/lsmdc_fib",
}


def backbone_parser() -> ArgumentParser:
    parser = ArgumentParser(parser_mode="omegaconf+", exit_on_error=False)
    parser.add_subclass_arguments(CloverBackbone, "backbone", fail_untyped=True)
    return parser


def test_every_yaml_is_covered() -> None:
    shipped = set(CONF.rglob("*.yaml"))
    covered = set(BACKBONES) | set(TRAINER_OVERLAYS) | set(RUNS) | set(ABLATIONS) | set(SWEEPS) | set(STEP_OVERLAYS)
    assert shipped == covered, "a new conf/ file needs a parse test"


@pytest.mark.parametrize("path", BACKBONES, ids=lambda p: p.name)
def test_backbone_files_parse_and_instantiate(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_BERT_DIR", "/nonexistent/bert")
    monkeypatch.setenv("CLOVER_SWIN_CKPT", "/nonexistent/swin.pth")
    parser = backbone_parser()
    parser.parse_args([f"--backbone={path}"])
    # Weight paths come from the environment and their loaders are tested elsewhere: build the sizes, on meta.
    sizes_only = tmp_path / path.name
    sizes_only.write_text(re.sub(r"\$\{oc\.env:[A-Z_]+\}", "null", path.read_text()))
    with torch.device("meta"):
        backbone = parser.instantiate(parser.parse_args([f"--backbone={sizes_only}"])).backbone
    assert isinstance(backbone, CloverBackbone)


def test_base_file_reads_weight_paths_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOVER_BERT_DIR", "/data/bert-base-uncased")
    monkeypatch.setenv("CLOVER_SWIN_CKPT", "/data/swin_b.pth")
    config = backbone_parser().parse_args([f"--backbone={CONF / 'backbone' / 'clover_base.yaml'}"])
    init = config.backbone.init_args
    assert init.video_encoder.init_args.pretrained_path == "/data/swin_b.pth"
    assert init.text_encoder.init_args.pretrained_path == "/data/bert-base-uncased"
    assert init.fusion_encoder.init_args.pretrained_path == "/data/bert-base-uncased"


def test_tiny_yaml_describes_the_same_sizes_as_clover_tiny() -> None:
    parser = backbone_parser()
    from_yaml = parser.instantiate(parser.parse_args([f"--backbone={CONF / 'backbone' / 'tiny.yaml'}"]))
    shapes = {name: tuple(t.shape) for name, t in from_yaml.backbone.state_dict().items()}
    assert shapes == {name: tuple(t.shape) for name, t in clover_tiny().state_dict().items()}
    assert from_yaml.backbone.video.window_size == clover_tiny().video.window_size


@pytest.mark.parametrize("path", TRAINER_OVERLAYS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_trainer_overlays_parse_through_the_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={path}", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "trainer:" in printed


def print_config(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_run_files_resolve(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    printed = print_config(capsys, f"--config={path}")
    assert "class_path: clover_pl.tasks." in printed
    assert "class_path: clover_pl.models.VideoSwinTransformer" in printed  # the backbone file was read
    assert "${" not in printed  # every interpolation resolved


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.name)
def test_ablation_overlays_stack_on_the_quickstart(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    printed = print_config(capsys, f"--config={CONF / 'quickstart.yaml'}", f"--config={path}")
    overlay = path.read_text()
    for line in overlay.splitlines():
        if line.startswith("    ") and ":" in line and not line.strip().startswith("#"):
            assert line.strip() in printed, line


@pytest.mark.parametrize("path", STEP_OVERLAYS, ids=lambda p: p.name)
def test_run_length_overlays_set_a_whole_run_on_the_quickstart(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = int(path.stem.removeprefix("steps_"))
    config = yaml.safe_load(print_config(capsys, f"--config={CONF / 'quickstart.yaml'}", f"--config={path}"))
    assert config["trainer"]["max_steps"] == steps
    assert config["trainer"]["val_check_interval"] == steps  # one validation, at the end


@pytest.mark.parametrize("path", DATA_BLOCKS, ids=lambda p: p.parent.name)
def test_dataset_card_data_blocks_stack_on_a_run(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    retrieval = "RetrievalDataModule" in path.read_text()
    run = CONF / ("retrieval/synthetic.yaml" if retrieval else "quickstart.yaml")
    printed = print_config(capsys, f"--config={run}", f"--config={path}")
    assert "class_path: clover_pl.data." in printed
    assert "${" not in printed
