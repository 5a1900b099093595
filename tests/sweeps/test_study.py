import math

import pytest

from clover_pl.sweeps.config import load_sweep
from clover_pl.sweeps.grid import expand
from clover_pl.sweeps.study import seed_major, summarise, t_interval, to_markdown


def test_t_interval_by_hand() -> None:
    mean, low, high = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # std = sqrt(2.5), t(0.975, 4 dof) = 2.776, n = 5
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (mean, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert t_interval([7.0]) == (7.0, 7.0, 7.0)
    assert t_interval([]) is None


def test_paired_differences_use_shared_seeds_only() -> None:
    results = {
        "clover": {0: {"m": 30.0}, 1: {"m": 32.0}, 2: {"m": 31.0}},
        "baseline": {0: {"m": 28.0}, 1: {"m": 29.0}},
    }
    arms, differences = summarise(results, ["m"], "clover", ["baseline"])
    assert arms[0]["arm"] == "clover"
    assert arms[0]["m"][0] == pytest.approx(31.0)
    assert differences[0]["seeds"] == [0, 1]
    mean, low, high = differences[0]["m"]  # deltas 2 and 3: mean 2.5, std 0.707, t(1 dof) = 12.706
    assert mean == pytest.approx(2.5)
    assert high - mean == pytest.approx(12.706 * math.sqrt(0.5) / math.sqrt(2))
    table = to_markdown(differences, "pair", ["m"])
    assert "| clover - baseline | 0,1 | 2.5 [" in table


def test_objective_study_runs_seed_major_with_every_arm() -> None:
    cells = expand(load_sweep("conf/sweeps/objective_study.yaml"))
    groups = seed_major(cells, ["clover", "baseline_matched", "baseline"])
    order = [(group[0].seed, group[0].group) for group in groups]
    assert order[:4] == [(0, "clover"), (0, "baseline_matched"), (0, "baseline"), (1, "clover")]
    assert len(groups) == 15
    assert all([cell.benchmark for cell in group[1:]] == ["mc", "retrieval"] for group in groups)
    all_arms = {cell.group for cell in cells if cell.kind == "train"}
    assert all_arms == {"clover", "baseline", "baseline_matched", "whole_word", "random_masking"}
    with pytest.raises(ValueError, match="unknown arm"):
        seed_major(cells, ["clover", "nope"])
