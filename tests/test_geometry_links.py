"""Model and data geometry through the real CLI: the crop size and mask grid follow the backbone; too many frames
for the fusion's temporal positions, or an old data key, stop with one line (exit 2) before anything is built."""

import re
from pathlib import Path

import pytest

from clover_pl.cli import main
from clover_pl.lightning_cli import CloverCLI

CONF = Path(__file__).parents[1] / "conf"
FUSION = "model.init_args.backbone.init_args.fusion_encoder.init_args"
RUNS = [CONF / "quickstart.yaml", *sorted((CONF / "pretrain").glob("*.yaml"))]
RUNS += [*sorted((CONF / "retrieval").glob("*.yaml")), *sorted((CONF / "qa").glob("*.yaml"))]
QUICK = {"quickstart.yaml", "msrvtt.yaml"}  # one tiny and one Swin-B run in the quick loop; every run file when slow


class ParseOnlyCLI(CloverCLI):
    """Parses, links and checks like a run, but builds nothing (Swin-B and BERT-base are slow to build)."""

    def instantiate_classes(self) -> None:
        """Nothing is built."""


def built(*args: str) -> CloverCLI:
    return CloverCLI(
        model_class=None,
        datamodule_class=None,
        parser_kwargs={"parser_mode": "omegaconf+"},
        args=[f"--config={CONF / 'quickstart.yaml'}", "--trainer.logger=false", *args],
        run=False,
    )


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["fit", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_the_data_takes_its_crop_and_mask_grid_from_the_backbone() -> None:
    cli = built()
    assert cli.datamodule.hparams.image_size == 32
    assert list(cli.datamodule.hparams.video_mask_grid) == [4, 4]
    wider = built(f"--{FUSION}.spatial_tokens=64")
    assert wider.datamodule.hparams.image_size == 64
    assert list(wider.datamodule.hparams.video_mask_grid) == [8, 8]


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=[] if path.name in QUICK else [pytest.mark.slow]) for path in RUNS],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_run_file_keeps_the_crop_size_it_was_published_with(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in set(re.findall(r"\$\{oc\.env:(\w+)", "".join(p.read_text() for p in CONF.rglob("*.yaml")))):
        monkeypatch.setenv(name, f"/data/{name.lower()}")
    parser_kwargs = {"parser_mode": "omegaconf+"}
    cli = ParseOnlyCLI(
        model_class=None, datamodule_class=None, parser_kwargs=parser_kwargs, args=[f"--config={path}"], run=False
    )
    data = cli.config.data.init_args
    tiny = path.name == "quickstart.yaml" or "synthetic" in path.name
    assert data.image_size == (32 if tiny else 224)
    if "video_mask_grid" in data:
        assert list(data.video_mask_grid) == ([4, 4] if tiny else [7, 7])


def test_more_temporal_tokens_than_fusion_slots_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = f"--config={CONF / 'retrieval' / 'synthetic.yaml'}"
    line = one_line_error(capsys, config, "--data.init_args.test_frames=34")
    assert line == (
        "error: data.init_args.test_frames=34 gives 17 temporal tokens (patch_size [2, 4, 4]) but "
        f"{FUSION}.temporal_slots=16: lower the frames or raise temporal_slots"
    )
    line = one_line_error(capsys, f"--config={CONF / 'quickstart.yaml'}", f"--{FUSION}.temporal_slots=1")
    assert line.startswith("error: data.init_args.num_frames=4 gives 2 temporal tokens")


@pytest.mark.parametrize("key", ["image_size=64", "video_mask_grid=[2,2]"])
def test_a_linked_data_key_names_the_backbone_key(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, f"--config={CONF / 'quickstart.yaml'}", f"--data.init_args.{key}")
    assert line.endswith(f"was renamed: use --{FUSION}.spatial_tokens")
