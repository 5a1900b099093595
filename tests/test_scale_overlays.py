"""The multi-node overlays take their sizes from the launcher's environment; FSDP wraps Swin blocks and BERT layers."""

from pathlib import Path

import pytest
import yaml

from clover_pl.cli import main

CONF = Path(__file__).parents[1] / "conf"


def printed_trainer(capsys: pytest.CaptureFixture[str], *configs: Path) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *(f"--config={path}" for path in configs), "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)["trainer"]


@pytest.mark.parametrize("overlay", ["ddp_multinode.yaml", "fsdp.yaml"])
def test_nodes_and_devices_come_from_the_environment(
    overlay: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUM_NODES", "4")
    monkeypatch.setenv("GPUS_PER_NODE", "8")
    trainer = printed_trainer(capsys, CONF / "quickstart.yaml", CONF / "trainer" / overlay)
    assert (trainer["num_nodes"], trainer["devices"]) == (4, 8)
    assert trainer["precision"] == "32-true"  # the overlay sets none: the run config's (quickstart: fp32) holds
    assert trainer["accelerator"] == "gpu"


def test_multinode_defaults_to_one_node(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUM_NODES", raising=False)
    monkeypatch.delenv("GPUS_PER_NODE", raising=False)
    trainer = printed_trainer(capsys, CONF / "trainer" / "ddp_multinode.yaml")
    assert (trainer["num_nodes"], trainer["devices"]) == (1, 8)
    assert trainer["strategy"]["class_path"] == "lightning.pytorch.strategies.DDPStrategy"


def test_fsdp_wraps_swin_blocks_and_bert_layers(capsys: pytest.CaptureFixture[str]) -> None:
    strategy = printed_trainer(capsys, CONF / "trainer" / "fsdp.yaml")["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.FSDPStrategy"
    wrapped = {path.rsplit(".", 1)[-1] for path in strategy["init_args"]["auto_wrap_policy"]}
    assert wrapped == {"SwinTransformerBlock3D", "BertLayer"}
