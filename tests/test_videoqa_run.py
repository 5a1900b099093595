"""The VideoQA settings end to end through the CLI, from the quickstart's checkpoint, on the synthetic questions."""

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from clover_pl.cli import main, run_cli

# Steps of fine-tuning per setting (the shipped configs run longer); each is about a minute on 2 CPU cores.
STEPS = {"open_ended": 300, "fill_in_blank": 500, "multiple_choice": 1000}
# Where these short runs also beat the text-only prior (measured; see the README's VideoQA section).
TEXT_PRIOR_BEATEN = ("open_ended", "fill_in_blank")


@pytest.fixture(scope="module")
def videoqa(quickstart: tuple[Path, Path]) -> Path:
    data, _ = quickstart
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "synthetic_qa", "--synthetic", str(data)])
    assert exit_info.value.code == 0
    return data / "videoqa"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def text_only_prior(root: Path) -> float:
    """Accuracy on test of the most frequent train answer given the text alone (the question, or the blank's
    neighbouring words); multiple choice: chance. What a model that ignores the video can reach."""
    train, test = _records(root / "train.jsonl"), _records(root / "test.jsonl")
    if "options" in test[0]:
        return 1 / len(test[0]["options"])

    def context(question: str) -> tuple[str, ...]:
        words = question.split()
        if "[MASK]" not in words:
            return (question,)
        at = words.index("[MASK]")
        return (words[at - 1] if at else "", words[at + 1] if at + 1 < len(words) else "")

    answers: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for record in train:
        answers[context(record["question"])][record["answer"]] += 1
    overall = Counter(record["answer"] for record in train)
    hits = [(answers[context(r["question"])] or overall).most_common(1)[0][0] == r["answer"] for r in test]
    return sum(hits) / len(hits)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("setting", list(STEPS))
def test_synthetic_setting_learns_from_the_quickstart(
    setting: str, quickstart: tuple[Path, Path], videoqa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, pretrain = quickstart
    monkeypatch.setenv("CLOVER_DATA", str(data))
    monkeypatch.setenv("CLOVER_OUT", str(tmp_path))
    monkeypatch.setenv("CLOVER_PRETRAINED", str(pretrain / "checkpoints" / "last.ckpt"))
    config = f"--config=conf/qa/synthetic_{setting}.yaml"
    steps = STEPS[setting]
    quiet = "--trainer.enable_progress_bar=false"
    run_cli(["fit", config, quiet, f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}"])
    cli = run_cli(["test", config, quiet, f"--ckpt_path={tmp_path / 'checkpoints' / 'best.ckpt'}"])
    metrics = cli.model.results["test"]
    root = videoqa / setting
    test_questions = _records(root / "test.jsonl")
    assert metrics["questions"] == len(test_questions)
    # Clearly above chance: three binomial standard deviations over a uniform guess among the answers (candidates).
    answers = len(json.loads((root / "answers.json").read_text())) if setting != "multiple_choice" else 5
    chance = 1 / answers
    margin = 3 * math.sqrt(chance * (1 - chance) / len(test_questions))
    assert metrics["accuracy"] > 100 * (chance + margin), metrics
    if setting in TEXT_PRIOR_BEATEN:  # and above what the question alone tells: the video is used
        prior = 100 * text_only_prior(root)
        assert metrics["accuracy"] > prior + 2, (metrics, prior)
    # One prediction per test question, for error analysis, and per-type accuracy where the data has types.
    predictions = _records(tmp_path / "predictions" / "test.jsonl")
    assert [p["question_id"] for p in predictions] == [q["question_id"] for q in test_questions]
    assert sum(p["correct"] for p in predictions) == pytest.approx(metrics["accuracy"] * len(predictions) / 100)
    if setting == "open_ended":
        assert {f"accuracy_{t}" for t in ("object", "material", "action", "count", "ground")} <= set(metrics)
