"""The candidate units of semantic masking (spec §3.2 step 3), from per-word part-of-speech tags.

The units are every NOUN/PROPN word, then every word inside a match of the verb-phrase pattern
``[VERB? ADV* AUX* VERB+]``; each word of a match is its own unit, and overlapping matches repeat a unit ("is
running" gives ``is, running, running``). Both taggers (`clover_pl.data.lexicon_tagger`,
`clover_pl.data.spacy_tagger`) return them through the :class:`PartOfSpeechTagger` interface.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple, Protocol

NOUN_TAGS = frozenset({"NOUN", "PROPN"})
_VERB_PHRASE = re.compile(r"V?A*X*V+")  # [VERB? ADV* AUX* VERB+] over one letter per word
_PHRASE_LETTERS = {"VERB": "V", "ADV": "A", "AUX": "X"}


class CandidateUnits(NamedTuple):
    """Word indices that semantic masking may choose, nouns first (spec §3.2 step 3).

    Attributes:
        nouns: indices of NOUN/PROPN words, in caption order.
        verbs: indices of words inside verb-phrase matches, one entry per word per match (repeats allowed).
    """

    nouns: list[int]
    verbs: list[int]


class PartOfSpeechTagger(Protocol):
    """What :class:`~clover_pl.data.masking.TextMasker` needs from a tagger."""

    def candidate_units(self, words: Sequence[str]) -> CandidateUnits:
        """Return the noun and verb-phrase units of a caption given as lowercase whole words."""
        ...


def verb_phrase_spans(tags: Sequence[str]) -> list[tuple[int, int]]:
    """All ``(start, end)`` word spans matching ``[VERB? ADV* AUX* VERB+]``, overlapping ones included.

    This reproduces what spaCy's ``Matcher`` returns for Clover's pattern (every distinct matching span, sorted by
    start then end), so both taggers yield the same units from the same tags.

    Args:
        tags: one universal part-of-speech tag per word.

    Returns:
        Half-open spans into ``tags``.
    """
    letters = "".join(_PHRASE_LETTERS.get(tag, ".") for tag in tags)
    return [
        (start, end)
        for start in range(len(letters))
        for end in range(start + 1, len(letters) + 1)
        if _VERB_PHRASE.fullmatch(letters, start, end)
    ]


def units_from_tags(tags: Sequence[str]) -> CandidateUnits:
    """Noun units and verb-phrase units from per-word tags (spec §3.2 step 3)."""
    nouns = [index for index, tag in enumerate(tags) if tag in NOUN_TAGS]
    verbs = [index for start, end in verb_phrase_spans(tags) for index in range(start, end)]
    return CandidateUnits(nouns, verbs)
