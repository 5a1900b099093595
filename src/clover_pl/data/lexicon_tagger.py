"""An offline part-of-speech tagger approximating spaCy ``en_core_web_sm``, built on lemminflect's lexicon.

It knows which parts of speech a word can have (lemminflect), a closed-class word list, and left-to-right context
rules. It agrees with spaCy on typical captions ("a man is running on the beach", "two red circles moving left"), but
it has no statistical model, so it errs on noun/verb ambiguity that needs sentence structure: noun compounds whose
head can be a verb after a singular noun ("beach balls" tags "balls" as a verb), nouns after "to" that can be verbs
("goes to school"), participles used as adjectives, and proper nouns (it never emits PROPN; unknown words default to
NOUN, as spaCy mostly does).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import lemminflect

from clover_pl.data.pos_units import CandidateUnits, units_from_tags

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
