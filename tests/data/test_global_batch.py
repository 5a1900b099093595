"""A config's published global batch is checked against devices x nodes x batch x accumulation before fit."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from clover_pl.cli import main
from clover_pl.data.global_batch import GlobalBatchMismatchError, check_global_batch, run_global_batch

CONF = Path(__file__).parents[2] / "conf"


def trainer(devices: int = 8, nodes: int = 1, accumulation: int = 1) -> SimpleNamespace:
    return SimpleNamespace(num_devices=devices, num_nodes=nodes, accumulate_grad_batches=accumulation)


def test_global_batch_counts_devices_nodes_batch_and_accumulation() -> None:
    assert run_global_batch(trainer(8, 4), 32) == (
        1024,
        "8 devices x 4 nodes x batch_size 32 x accumulate_grad_batches 1",
    )
    assert run_global_batch(trainer(1, 1, 4), 16)[0] == 64


def test_the_published_run_and_its_one_node_equivalents_pass() -> None:
    check_global_batch(trainer(8, 4), 32, 1024, allow_mismatch=False)  # the published 4-node launch
    check_global_batch(trainer(8, 1), 128, 1024, allow_mismatch=False)  # one node, 128 per GPU
    # one node with accumulation (fewer negatives: header)
    check_global_batch(trainer(8, 1, 4), 32, 1024, allow_mismatch=False)
    check_global_batch(trainer(8, 1), 32, None, allow_mismatch=False)  # nothing declared: nothing checked
    check_global_batch(None, 32, 1024, allow_mismatch=False)  # no trainer: nothing checked


def test_a_different_global_batch_stops_with_one_line_naming_the_keys() -> None:
    with pytest.raises(GlobalBatchMismatchError) as error:
        check_global_batch(trainer(8, 1), 32, 1024, allow_mismatch=False)
    message = str(error.value)
    assert "\n" not in message
    assert "256 clips (8 devices x 1 node x batch_size 32 x accumulate_grad_batches 1)" in message
    assert "global batch of 1024 (data.init_args.published_global_batch)" in message
    assert "data.init_args.allow_global_batch_mismatch=true" in message


def test_an_allowed_mismatch_warns_and_runs() -> None:
    with pytest.warns(UserWarning, match="global batch mismatch allowed: this run steps with 256 clips"):
        check_global_batch(trainer(8, 1), 32, 1024, allow_mismatch=True)


@pytest.mark.slow
def test_fit_stops_before_reading_any_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: the quickstart declared as a 1,024-clip run stops in setup, before shards are opened."""
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("CLOVER_DATA", str(tmp_path / "no_data_here"))
    arguments = [
        "fit",
        f"--config={CONF / 'quickstart.yaml'}",
        f"--config={CONF / 'debug' / 'tiny.yaml'}",
        "--data.init_args.published_global_batch=1024",
        "--trainer.logger=false",
    ]
    with pytest.raises((GlobalBatchMismatchError, SystemExit)) as error:
        main(arguments)
    if isinstance(error.value, SystemExit):  # the CLI's one-line user-error report (exit 2)
        assert error.value.code == 2
    else:
        assert "this run steps with 32 clips (1 device x 1 node x batch_size 32" in str(error.value)
