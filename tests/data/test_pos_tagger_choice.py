"""The pretraining datamodule's ``pos_tagger: spacy | lexicon | auto``: the tagger used is logged, spaCy is required
when asked for (one line naming the model when it is missing)."""

import logging
from pathlib import Path

import pytest

from clover_pl.data import PretrainDataModule
from clover_pl.data import pretrain as pretrain_module
from clover_pl.data.pos_tagging import LexiconTagger, SpacyModelMissingError, SpacyTagger, default_tagger, tagger_name

VOCAB = str(Path(__file__).parents[1] / "assets" / "vocab.txt")


def datamodule(**settings) -> PretrainDataModule:
    return PretrainDataModule(tokenizer=VOCAB, num_workers=0, **settings)


def test_spacy_asked_for_but_missing_names_the_model_and_the_key() -> None:
    module = datamodule(pos_tagger="spacy", spacy_model="en_core_web_sm_not_installed_here")
    with pytest.raises(SpacyModelMissingError) as error:
        module.setup("validate")
    message = str(error.value)
    assert "\n" not in message
    assert "data.init_args.pos_tagger is 'spacy'" in message
    assert "en_core_web_sm_not_installed_here is not installed" in message
    assert "'lexicon' or 'auto'" in message


def test_the_tagger_used_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        datamodule(pos_tagger="lexicon").setup("validate")
    assert "part-of-speech tagger lexicon (lemminflect) (pos_tagger: lexicon)" in caplog.text


def test_auto_falls_back_to_the_lexicon_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("clover_pl.data.pos_tagging.spacy_available", lambda model="en_core_web_sm": False)
    with caplog.at_level(logging.INFO):
        datamodule(pos_tagger="auto").setup("validate")
    assert "part-of-speech tagger lexicon (lemminflect) (pos_tagger: auto)" in caplog.text


def test_spacy_is_chosen_when_installed_and_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clover_pl.data.pos_tagging.spacy_available", lambda model="en_core_web_sm": True)
    for choice in ("spacy", "auto"):
        tagger = default_tagger(choice, "en_core_web_sm")
        assert isinstance(tagger, SpacyTagger)  # loaded lazily: nothing is imported here
        assert tagger_name(tagger) == "spacy (en_core_web_sm)"
    assert isinstance(default_tagger("lexicon"), LexiconTagger)


def test_other_maskings_build_no_tagger(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("no tagger for random masking")

    monkeypatch.setattr(pretrain_module, "default_tagger", fail)
    datamodule(pos_tagger="spacy", spacy_model="missing", text_masking="random").setup("validate")


def test_unknown_choice_names_the_key_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"data.init_args.pos_tagger must be one of spacy, lexicon, auto, got 'nltk'"):
        datamodule(pos_tagger="nltk")
