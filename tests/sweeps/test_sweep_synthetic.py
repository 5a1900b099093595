"""conf/sweeps/synthetic.yaml on the quickstart's output, as `make sweep-synthetic` runs it (slow: the quickstart).

The QA fine-tuning runs are capped at a few steps here (the shipped configs run 500), so the test checks the sweep's
wiring on real runs, not the QA figures.
"""

import csv
from pathlib import Path

import pytest
import yaml

from clover_pl.cli import main
from clover_pl.sweeps.cli import main as sweep_main

ROOT = Path(__file__).parents[2]
SWEEP = ROOT / "conf" / "sweeps" / "synthetic.yaml"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_synthetic_sweep_on_the_quickstart_output(
    quickstart: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, run = quickstart  # the session-wide fixture of tests/conftest.py; other tests prepare the same folders
    for benchmark, folder in (("synthetic_retrieval", "retrieval"), ("synthetic_qa", "videoqa/open_ended")):
        if not (data / folder / "manifest.json").is_file():
            with pytest.raises(SystemExit) as exit_info:
                main(["prepare", benchmark, "--synthetic", str(data)])
            assert exit_info.value.code == 0
    shipped = yaml.safe_load(SWEEP.read_text())
    shipped["settings"]["fine_tune"]["overrides"] = {"trainer.max_steps": 20, "trainer.val_check_interval": 10}
    capped = tmp_path / "synthetic.yaml"
    capped.write_text(yaml.safe_dump(shipped, sort_keys=False))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CLOVER_DATA", str(data))
    monkeypatch.setenv("CLOVER_RUN", str(run))
    monkeypatch.setenv("CLOVER_SWEEP_OUT", str(tmp_path / "sweep"))

    assert sweep_main(["--config", str(capped)]) == 0
    rows = list(csv.DictReader((tmp_path / "sweep" / "results.csv").open()))
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert 1 <= len(rows) <= len(checkpoints)  # last.ckpt is dropped when it repeats the best one's step
    last = rows[-1]
    assert last["step"] == "1200"
    columns = [name for name in last if name not in ("checkpoint", "step")]
    assert columns == [
        "retrieval t2v_r@1",
        "retrieval t2v_r@5",
        "retrieval t2v_r@10",
        "retrieval t2v_median_rank",
        "retrieval chance_r@1",
        "heldout t2v_r@1",
        "heldout t2v_r@5",
        "heldout t2v_r@10",
        "qa_open_ended accuracy",
        "qa_multiple_choice accuracy",
        "qa_fill_in_blank accuracy",
    ]
    assert all(last[column] != "" for column in columns)
    # The pretrained dual encoders transfer zero-shot: R@1 well above chance (as tests/test_pretrain_run.py checks).
    assert float(last["retrieval t2v_r@1"]) > 5 * float(last["retrieval chance_r@1"])
    assert list((tmp_path / "sweep" / "plots").glob("*.png"))
    assert sweep_main(["--config", str(capped)]) == 0  # everything is stored: nothing runs again
    assert len((tmp_path / "sweep" / "results.jsonl").read_text().splitlines()) == 5 * len(rows)
