"""Clover's reference part-of-speech tagger: spaCy ``en_core_web_sm`` with a verb-phrase Matcher (optional).

spaCy and its model are optional (``pip install spacy && python -m spacy download en_core_web_sm``); nothing is
imported until the tagger is first used.
"""

from __future__ import annotations

import bisect
import importlib.util
from collections.abc import Sequence
from typing import Any

from clover_pl.data.pos_units import NOUN_TAGS, CandidateUnits

SPACY_INSTALL_HINT = "pip install spacy && python -m spacy download en_core_web_sm"


def spacy_available(model: str = "en_core_web_sm") -> bool:
    """Whether spaCy and its ``model`` package are importable (checked without importing them)."""
    return importlib.util.find_spec("spacy") is not None and importlib.util.find_spec(model) is not None


class SpacyTagger:
    """Clover's reference tagger: spaCy ``en_core_web_sm`` plus a Matcher for ``[VERB? ADV* AUX* VERB+]``.

    spaCy is imported and the model loaded on first use, and neither is pickled, so a masker holding this tagger
    can be sent to DataLoader workers (each worker loads its own copy).

    Args:
        model: the spaCy pipeline package to load.
    """

    def __init__(self, model: str = "en_core_web_sm") -> None:
        self.model = model
        self._nlp: Any = None
        self._matcher: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"])  # type: ignore[misc]

    def _load(self) -> None:
        if not spacy_available(self.model):
            raise ImportError(f"SpacyTagger needs spaCy and {self.model}: {SPACY_INSTALL_HINT}")
        import spacy
        from spacy.matcher import Matcher

        self._nlp = spacy.load(self.model, disable=["ner"])
        pattern = [{"POS": "VERB", "OP": "?"}, {"POS": "ADV", "OP": "*"}, {"POS": "AUX", "OP": "*"}]
        self._matcher = Matcher(self._nlp.vocab)
        self._matcher.add("VerbPhrase", [[*pattern, {"POS": "VERB", "OP": "+"}]])

    def _parse(self, words: Sequence[str]) -> tuple[Any, list[int], list[str]]:
        """The spaCy doc of the space-joined words, the word index of each token, and one tag per word."""
        if self._nlp is None:
            self._load()
        starts = [0]
        for word in words[:-1]:
            starts.append(starts[-1] + len(word) + 1)
        doc = self._nlp(" ".join(words))
        # spaCy may split a word ("don't"): map each token to the word holding its first character, and give the
        # word its last token's tag, as the original's alignment fix-up does.
        word_of_token = [bisect.bisect_right(starts, token.idx) - 1 for token in doc]
        tags = ["X"] * len(words)
        for token, word_index in zip(doc, word_of_token, strict=True):
            tags[word_index] = token.pos_
        return doc, word_of_token, tags

    def tag(self, words: Sequence[str]) -> list[str]:
        """The universal tag spaCy gives each word."""
        return self._parse(words)[2] if words else []

    def candidate_units(self, words: Sequence[str]) -> CandidateUnits:
        """Noun units from spaCy's tags, then one unit per word of every distinct Matcher verb-phrase match."""
        if not words:
            return CandidateUnits([], [])
        doc, word_of_token, tags = self._parse(words)
        nouns = [index for index, tag in enumerate(tags) if tag in NOUN_TAGS]
        verbs: list[int] = []
        for start, end in sorted({(start, end) for _, start, end in self._matcher(doc)}):
            span = [word_of_token[position] for position in range(start, end)]
            verbs.extend(index for k, index in enumerate(span) if k == 0 or index != span[k - 1])
        return CandidateUnits(nouns, verbs)
