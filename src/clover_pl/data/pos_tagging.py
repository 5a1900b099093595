"""Part-of-speech tagging for Clover's semantic text masking: which caption words are nouns or in verb phrases.

Clover (spec §3.2) runs spaCy ``en_core_web_sm`` on the caption's whole words. The candidate units are every
NOUN/PROPN word, then every word inside a match of the verb-phrase pattern ``[VERB? ADV* AUX* VERB+]``; each word of a
match is its own unit, and overlapping matches repeat a unit ("is running" gives ``is, running, running``).

Two taggers produce those units:

* :class:`SpacyTagger`: the reference. It needs ``spacy`` and ``en_core_web_sm``, which are optional
  (``pip install spacy && python -m spacy download en_core_web_sm``).
* :class:`LexiconTagger`: an offline approximation built on lemminflect's lexicon (which parts of speech a word can
  have) plus a closed-class word list and left-to-right context rules. It agrees with spaCy on typical captions
  ("a man is running on the beach", "two red circles moving left"), but it has no statistical model, so it errs on
  noun/verb ambiguity that needs sentence structure: noun compounds whose head can be a verb after a singular noun
  ("beach balls" tags "balls" as a verb), nouns after "to" that can be verbs ("goes to school"), participles used as
  adjectives, and proper nouns (it never emits PROPN; unknown words default to NOUN, as spaCy mostly does).

:func:`default_tagger` takes a choice: ``"spacy"`` (an error naming the model when it is missing), ``"lexicon"``, or
``"auto"`` (spaCy when it is installed, the lexicon otherwise). The pretraining datamodule's ``pos_tagger`` passes
it on and logs the tagger it got.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import lemminflect

from clover_pl.errors import UserError

NOUN_TAGS = frozenset({"NOUN", "PROPN"})
_VERB_PHRASE = re.compile(r"V?A*X*V+")  # [VERB? ADV* AUX* VERB+] over one letter per word
_PHRASE_LETTERS = {"VERB": "V", "ADV": "A", "AUX": "X"}
SPACY_INSTALL_HINT = "pip install spacy && python -m spacy download en_core_web_sm"


class SpacyModelMissingError(UserError):
    """A config asks for spaCy tagging but spaCy or its model is not installed (the message is one line)."""


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


# Closed-class words: what lemminflect gets wrong or leaves out ("they" is a NOUN there, "and" has no entry).
_CLOSED_CLASS_TEXT = {
    "DET": "a an the this that these those some any each every no another all both either neither such whatever",
    "PRON": "i me you he him she it we us they them myself yourself himself herself itself ourselves themselves "
    "someone somebody something everyone everybody everything anyone anybody anything nobody nothing none who whom "
    "whose what which whoever mine yours hers ours theirs there my your his her its our their",
    "ADP": "about above across after against along amid among at before behind below beneath beside besides between "
    "beyond by despite during except for from in inside into like near of off on onto out outside over past per "
    "through throughout toward towards under underneath until upon via with within without up down",
    "CCONJ": "and or but nor plus",
    "SCONJ": "because if while whereas although though unless since whether than as",
    "PART": "to not n't s t re ve ll m d",
    "AUX": "be is am are was were been being can could will would shall should may might must ought "
    "isn aren wasn weren don doesn didn couldn wouldn shouldn cannot have has had having do does did",
    "NUM": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million",
    "ADV": "very too so also just only then here now even ever never always often again already almost quite really "
    "rather yet how when where why together",
    "ADJ": "many much few several more most less least other own same",
    "INTJ": "yes oh hey um uh ok okay wow",
}


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


CLOSED_CLASS: dict[str, str] = {word: tag for tag, text in _CLOSED_CLASS_TEXT.items() for word in text.split()}
_POSSESSIVES = _word_set("my your his her its our their")
_HAVE_FORMS = _word_set("have has had having")
_DO_FORMS = _word_set("do does did")
_BE_FORMS = _word_set("be is am are was were been being isn aren wasn weren")
_WH_WORDS = _word_set("what which who whom whose how when where why")
_DEGREE_ADVERBS = _word_set("very too so quite really rather pretty extremely")
_DIRECTIONS = _word_set("left right up down back forward forwards backward backwards away around")
_IRREGULAR_PLURALS = _word_set("people men women children police feet teeth mice geese they we you")
_COLOURS = _word_set("orange purple pink silver gold golden brown grey gray violet beige")
_DETERMINER_LIKE = frozenset({"DET", "NUM", "ADJ"})
_OPEN_CLASS = ("NOUN", "VERB", "ADJ", "ADV")


def _is_punctuation(word: str) -> bool:
    return all(unicodedata.category(char).startswith(("P", "S")) for char in word)


@functools.lru_cache(maxsize=65536)
def _open_class_options(word: str) -> tuple[str, ...]:
    """Open-class tags lemminflect allows for ``word``, in preference order; a suffix guess for unknown words."""
    lemmas = lemminflect.getAllLemmas(word)
    options = tuple(tag for tag in _OPEN_CLASS if tag in lemmas)
    if options:
        return options
    if word.endswith("ing") and len(word) > 4:
        return ("VERB", "NOUN")
    if word.endswith("ed") and len(word) > 3:
        return ("VERB", "ADJ")
    if word.endswith("ly") and len(word) > 3:
        return ("ADV",)
    return ("NOUN",)


def _verb_form(word: str) -> str:
    """``ing``, ``third`` (3rd-person -s), ``participle`` (other inflected form) or ``base`` for a verb reading."""
    if word.endswith("ing"):
        return "ing"
    lemmas = lemminflect.getAllLemmas(word).get("VERB", ())
    if not lemmas or word in lemmas:
        return "participle" if word.endswith("ed") and not lemmas else "base"
    return "third" if word.endswith("s") else "participle"


def _is_plural(word: str) -> bool:
    if word in _IRREGULAR_PLURALS:
        return True
    noun_lemmas = lemminflect.getAllLemmas(word).get("NOUN")
    if noun_lemmas:
        return word not in noun_lemmas
    return word.endswith("s") and not word.endswith("ss")


def _prefers_adjective(word: str, options: Sequence[str]) -> bool:
    """Before a noun, read a noun/adjective word as ADJ if it is gradable or a colour ("red ball", not "video")."""
    if "ADJ" not in options:
        return False
    gradable = "JJR" in lemminflect.getAllInflections(word, upos="ADJ")
    return "NOUN" not in options or gradable or word in _COLOURS


class LexiconTagger:
    """Offline noun/verb tagger approximating spaCy ``en_core_web_sm`` (see the module docstring for its limits).

    Tags are universal part-of-speech names (NOUN, VERB, AUX, ADV, ADJ, DET, PRON, ADP, NUM, ...); only NOUN,
    VERB, AUX and ADV matter to masking. Auxiliaries (be, modals, have/do before a verb) are AUX, so they become
    candidates only inside a verb phrase ("is running"), as with spaCy. It holds no state and pickles trivially.
    """

    def tag(self, words: Sequence[str]) -> list[str]:
        """Tag lowercase whole words left to right.

        Args:
            words: the caption's words (punctuation as separate words, as BERT splits it).

        Returns:
            One universal part-of-speech tag per word.
        """
        words = [word.lower() for word in words]
        tags: list[str] = []
        for index, word in enumerate(words):
            if not word or _is_punctuation(word):
                tags.append("PUNCT")
            elif word.replace(".", "").replace(",", "").isdigit():
                tags.append("NUM")
            elif word in _HAVE_FORMS or word in _DO_FORMS:
                tags.append(self._have_or_do(words, index))
            elif word in CLOSED_CLASS:
                tags.append(CLOSED_CLASS[word])
            else:
                tags.append(self._open_class(words, tags, index))
        return tags

    def candidate_units(self, words: Sequence[str]) -> CandidateUnits:
        """Noun units, then verb-phrase units (word indices), as spec §3.2 step 3 defines them."""
        return units_from_tags(self.tag(words))

    @staticmethod
    def _have_or_do(words: Sequence[str], index: int) -> str:
        """AUX when it supports a following verb ("has been", "does the man run"); VERB as a main verb."""
        following = [word for word in words[index + 1 :] if word not in ("not", "n't", "t")]
        if not following:
            return "VERB"
        nxt = following[0]
        if words[index] in _HAVE_FORMS:
            is_participle = "VERB" in _open_class_options(nxt) and _verb_form(nxt) == "participle"
            return "AUX" if nxt == "been" or is_participle else "VERB"
        in_question = any(word in _WH_WORDS for word in words[:index])  # "what color does the ball have"
        takes_object = CLOSED_CLASS.get(nxt) in ("DET", "NUM") or nxt in _POSSESSIVES  # "does a flip"
        return "VERB" if takes_object and not in_question else "AUX"

    def _open_class(self, words: Sequence[str], tags: Sequence[str], index: int) -> str:
        word = words[index]
        options = _open_class_options(word)
        if len(options) == 1:
            return options[0]
        previous_word = words[index - 1] if index else ""
        previous = tags[index - 1] if index else "START"
        if previous == "PART" and previous_word == "to" and "VERB" in options:
            return "VERB"
        if word in _DIRECTIONS and previous in ("VERB", "ADV"):
            return "ADV"
        if previous == "AUX":
            return self._after_auxiliary(words, index, options)
        if previous_word in _DEGREE_ADVERBS and "ADJ" in options:
            return "ADJ"  # "very fast"
        if "VERB" in options and _verb_form(word) == "ing" and previous not in _DETERMINER_LIKE:
            return "VERB"
        if previous in _DETERMINER_LIKE or previous == "ADP" or previous_word in _POSSESSIVES:
            return self._after_determiner(words, index, options)
        if previous in ("NOUN", "PRON"):
            return self._after_subject(words, index, options)
        if previous == "VERB":
            return self._after_verb(words, index, options)
        if previous == "ADV" and "VERB" in options:
            return "VERB"
        if previous == "CCONJ" and index >= 2 and tags[index - 2] in options:
            return tags[index - 2]  # coordination keeps the class: "jumps and runs", "a cat and dog"
        if previous in ("START", "PUNCT", "SCONJ") and "VERB" in options and self._object_follows(words, index):
            return "VERB"  # a caption opening on a verb: "shows a man ..."
        return options[0]

    @staticmethod
    def _object_follows(words: Sequence[str], index: int) -> bool:
        if index + 1 >= len(words):
            return False
        nxt = words[index + 1]
        return CLOSED_CLASS.get(nxt) in ("DET", "NUM") or nxt in _POSSESSIVES

    @staticmethod
    def _after_auxiliary(words: Sequence[str], index: int, options: Sequence[str]) -> str:
        word, previous_word = words[index], words[index - 1]
        if "VERB" in options and (_verb_form(word) != "base" or previous_word not in _BE_FORMS):
            return "VERB"  # "is running", "was thrown", "can jump", "has left"
        for tag in ("ADJ", "NOUN", "VERB"):  # "the ball is red", "this is water"
            if tag in options:
                return tag
        return options[0]

    @staticmethod
    def _after_determiner(words: Sequence[str], index: int, options: Sequence[str]) -> str:
        next_options = _open_class_options(words[index + 1]) if index + 1 < len(words) else ()
        next_is_open = index + 1 < len(words) and words[index + 1] not in CLOSED_CLASS
        if next_is_open and "NOUN" in next_options and _prefers_adjective(words[index], options):
            return "ADJ"  # "a red ball", "the light blue circle"; "the video shows" stays a noun
        for tag in ("NOUN", "ADJ", "VERB"):
            if tag in options:
                return tag
        return options[0]

    @staticmethod
    def _after_subject(words: Sequence[str], index: int, options: Sequence[str]) -> str:
        word, previous_word = words[index], words[index - 1]
        if "VERB" not in options:
            return options[0]
        if previous_word in _WH_WORDS and "NOUN" in options:
            return "NOUN"  # "what color ...", "which object ..."
        if index + 1 < len(words) and CLOSED_CLASS.get(words[index + 1]) == "AUX" and "NOUN" in options:
            return "NOUN"  # a compound subject: "beach balls are ..."
        form = _verb_form(word)
        if CLOSED_CLASS.get(previous_word) == "PRON" or form == "participle":
            return "VERB"
        singular_agrees = form == "third" and not _is_plural(previous_word)
        plural_agrees = form == "base" and _is_plural(previous_word)
        if singular_agrees or plural_agrees:
            return "VERB"
        return "NOUN" if "NOUN" in options else "VERB"

    @staticmethod
    def _after_verb(words: Sequence[str], index: int, options: Sequence[str]) -> str:
        at_clause_end = index + 1 >= len(words) or CLOSED_CLASS.get(words[index + 1]) in ("ADP", "CCONJ", "SCONJ")
        if "ADV" in options and (at_clause_end or _is_punctuation(words[index + 1])):
            return "ADV"  # "walks fast"
        for tag in ("NOUN", "ADJ", "ADV"):
            if tag in options:
                return tag
        return options[0]


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


POS_TAGGERS = ("spacy", "lexicon", "auto")
"""Values of the datamodule's ``pos_tagger``."""


def tagger_name(tagger: PartOfSpeechTagger) -> str:
    """What a log line calls the tagger: ``"spacy (en_core_web_sm)"`` or ``"lexicon (lemminflect)"``."""
    if isinstance(tagger, SpacyTagger):
        return f"spacy ({tagger.model})"
    if isinstance(tagger, LexiconTagger):
        return "lexicon (lemminflect)"
    return type(tagger).__name__


def default_tagger(prefer: str = "auto", model: str = "en_core_web_sm") -> PartOfSpeechTagger:
    """The tagger semantic masking uses when none is given.

    Args:
        prefer: ``"auto"`` (spaCy ``model`` when installed, else the lexicon), ``"spacy"`` (spaCy or an
            error) or ``"lexicon"`` (always the offline :class:`LexiconTagger`).
        model: the spaCy pipeline package (``en_core_web_sm``, as the release).

    Returns:
        A tagger with ``candidate_units(words)``.

    Raises:
        ImportError: ``prefer="spacy"`` without spaCy or its model installed.
        ValueError: an unknown ``prefer``.
    """
    if prefer not in POS_TAGGERS:
        raise ValueError(f"prefer must be one of {', '.join(repr(name) for name in POS_TAGGERS)}, got {prefer!r}")
    if prefer == "lexicon":
        return LexiconTagger()
    if spacy_available(model):
        return SpacyTagger(model)
    if prefer == "spacy":
        raise ImportError(
            f"spaCy tagging needs spaCy and its model {model}, which are not installed: {SPACY_INSTALL_HINT}"
        )
    return LexiconTagger()
