"""The shipped published-run configs, resolved through the real CLI parser, give the release's recipe (issue 13)."""

import math
from pathlib import Path

import pytest
import yaml

from clover_pl.cli import main
from clover_pl.lightning_cli import CloverCLI
from clover_pl.tasks.optimization import resolve_warmup_steps

CONF = Path(__file__).parents[1] / "conf"
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
# Published runs that train: (release warm-up epochs / total epochs, global batch, precision). Spec sections 4, 5.1.
PUBLISHED = {
    "pretrain/webvid_cc3m.yaml": (4 / 40, 1024, "bf16-mixed"),
    "retrieval/msrvtt.yaml": (10 / 100, 16 * 8, "bf16-mixed"),
    "retrieval/didemo.yaml": (5 / 50, 32 * 8, "32-true"),
    "retrieval/lsmdc.yaml": (5 / 50, 16 * 8 * 2, "bf16-mixed"),
    "qa/msrvtt_qa.yaml": (2 / 20, 32 * 8, "bf16-mixed"),
    "qa/msvd_qa.yaml": (4 / 40, 16 * 8, "bf16-mixed"),
    "qa/tgif_frameqa.yaml": (2 / 20, 16 * 8, "bf16-mixed"),
    "qa/tgif_action.yaml": (10 / 100, 16 * 8, "bf16-mixed"),
    "qa/tgif_transition.yaml": (5 / 50, 16 * 8, "bf16-mixed"),
    "qa/lsmdc_mc.yaml": (2 / 20, 16 * 8, "32-true"),
    "qa/lsmdc_fib.yaml": (2 / 20, 16 * 8, "bf16-mixed"),
}
GPU_OVERLAYS = ["ddp.yaml", "ddp_multinode.yaml", "fsdp.yaml"]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "out"))


def resolved(capsys: pytest.CaptureFixture[str], *configs: Path, extra: tuple[str, ...] = ()) -> dict:
    """The config ``fit --print_config`` prints for the stacked files, as a dict."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *(f"--config={path}" for path in configs), *extra, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return yaml.safe_load(captured.out)


TEXT_LENGTHS = {"retrieval/msrvtt.yaml": (30, 25), "retrieval/didemo.yaml": (50, 64), "retrieval/lsmdc.yaml": (40, 40)}


@pytest.mark.parametrize("name", sorted(PUBLISHED), ids=str)
def test_documented_launch_resolves_to_the_published_recipe(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each published run stacked as its header says (run, then the GPU overlay): warm-up, precision, batch."""
    fraction, global_batch, precision = PUBLISHED[name]
    config = resolved(capsys, CONF / name, CONF / "trainer" / "ddp.yaml")
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    optimization = model["optimization"]
    assert optimization["warmup_fraction"] == pytest.approx(fraction) == pytest.approx(0.1)
    assert optimization["warmup_steps"] is None  # the absolute override is unset
    assert optimization["lr_schedule"] == "release"
    assert config["trainer"]["precision"] == precision
    assert data["published_global_batch"] == global_batch
    assert data["allow_global_batch_mismatch"] is False
    if name in TEXT_LENGTHS:
        assert (data["max_text_length"], data["eval_max_text_length"]) == TEXT_LENGTHS[name]
    if name.startswith("qa/"):
        assert "eval_max_text_length" not in data  # one length per QA task in the release


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED), ids=str)
@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_every_gpu_overlay_in_either_order_keeps_the_published_precision(
    name: str, overlay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, precision = PUBLISHED[name]
    assert resolved(capsys, CONF / name, CONF / "trainer" / overlay)["trainer"]["precision"] == precision
    assert resolved(capsys, CONF / "trainer" / overlay, CONF / name)["trainer"]["precision"] == precision


def test_gpu_overlays_set_no_precision() -> None:
    for overlay in GPU_OVERLAYS:
        assert "precision" not in yaml.safe_load((CONF / "trainer" / overlay).read_text())["trainer"], overlay


def test_pretrain_config_asks_for_spacy_and_gradient_correct_weighting(capsys: pytest.CaptureFixture[str]) -> None:
    config = resolved(capsys, CONF / "pretrain" / "webvid_cc3m.yaml")
    assert config["data"]["init_args"]["pos_tagger"] == "spacy"
    assert config["data"]["init_args"]["spacy_model"] == "en_core_web_sm"
    assert config["model"]["init_args"]["objective"]["init_args"]["weighting"] == "gradient_correct"
    overlaid = resolved(
        capsys,
        CONF / "pretrain" / "webvid_cc3m.yaml",
        CONF / "trainer" / "ddp_multinode.yaml",
        CONF / "ablation" / "release_weighting.yaml",
    )
    assert overlaid["model"]["init_args"]["objective"]["init_args"]["weighting"] == "release"


def test_pretrain_warmup_resolves_from_the_trainers_stepping_batches(tmp_path: Path) -> None:
    """The published pretraining config, built by CloverCLI (tiny backbone), resolves its warm-up from the Trainer."""
    no_weights = tmp_path / "no_weights.yaml"  # sizes of the tiny backbone, no weight files
    no_weights.write_text(
        "model:\n  init_args:\n    bert_path: null\n    embed_dim: 16\n    backbone:\n      init_args:\n"
        + "".join(
            f"        {part}:\n          init_args:\n            {key}: null\n"
            for part, key in (
                ("video_encoder", "pretrained_path"),
                ("text_encoder", "pretrained_path"),
                ("fusion_encoder", "pretrained_path"),
            )
        )
    )
    cli = CloverCLI(
        model_class=None,
        datamodule_class=None,
        parser_kwargs={"parser_mode": "omegaconf+"},
        args=[
            f"--config={CONF / 'pretrain' / 'webvid_cc3m.yaml'}",
            f"--config={CONF / 'trainer' / 'cpu.yaml'}",
            f"--model.init_args.backbone={CONF / 'backbone' / 'tiny.yaml'}",
            f"--config={no_weights}",
        ],
        run=False,
    )
    model, trainer = cli.model, cli.trainer
    model.trainer = trainer
    assert trainer.estimated_stepping_batches == 230000
    optimisation = model.configure_optimizers()
    schedule = optimisation["lr_scheduler"]["scheduler"].lr_lambdas[0]
    warmup = resolve_warmup_steps(230000, 0.1, None)
    assert warmup == 23000
    # The release's shape: the warm-up ramp multiplies the cosine, which counts from step 0.
    assert schedule(0) == pytest.approx(1e-3)
    assert schedule(warmup - 1) < schedule(warmup)
    assert schedule(warmup) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * 0.1)))
