"""Part-of-speech tagging for Clover's semantic text masking: which caption words are nouns or in verb phrases.

Clover (spec §3.2) runs spaCy ``en_core_web_sm`` on the caption's whole words. The candidate units are every
NOUN/PROPN word, then every word inside a match of the verb-phrase pattern ``[VERB? ADV* AUX* VERB+]``; each word of a
match is its own unit, and overlapping matches repeat a unit ("is running" gives ``is, running, running``).

Two taggers produce those units (:mod:`clover_pl.data.pos_units` holds the units and the interface):

* :class:`~clover_pl.data.spacy_tagger.SpacyTagger`: the reference. It needs ``spacy`` and ``en_core_web_sm``,
  which are optional (``pip install spacy && python -m spacy download en_core_web_sm``).
* :class:`~clover_pl.data.lexicon_tagger.LexiconTagger`: an offline approximation built on lemminflect's lexicon;
  its limits are listed in its module.

:func:`default_tagger` takes a choice: ``"spacy"`` (an error naming the model when it is missing), ``"lexicon"``, or
``"auto"`` (spaCy when it is installed, the lexicon otherwise). The pretraining datamodule's ``pos_tagger`` passes
it on and logs the tagger it got.
"""

from __future__ import annotations

from typing import Literal, get_args

from clover_pl.data.lexicon_tagger import LexiconTagger
from clover_pl.data.pos_units import PartOfSpeechTagger
from clover_pl.data.spacy_tagger import SPACY_INSTALL_HINT, SpacyTagger, spacy_available
from clover_pl.errors import UserError

PosTaggerChoice = Literal["spacy", "lexicon", "auto"]
"""Which part-of-speech tagger semantic masking uses (the datamodule's ``pos_tagger``)."""


class SpacyModelMissingError(UserError):
    """A config asks for spaCy tagging but spaCy or its model is not installed (the message is one line)."""


POS_TAGGERS: tuple[PosTaggerChoice, ...] = get_args(PosTaggerChoice)
"""Values of the datamodule's ``pos_tagger``."""


def tagger_name(tagger: PartOfSpeechTagger) -> str:
    """What a log line calls the tagger: ``"spacy (en_core_web_sm)"`` or ``"lexicon (lemminflect)"``."""
    if isinstance(tagger, SpacyTagger):
        return f"spacy ({tagger.model})"
    if isinstance(tagger, LexiconTagger):
        return "lexicon (lemminflect)"
    return type(tagger).__name__


def default_tagger(prefer: PosTaggerChoice = "auto", model: str = "en_core_web_sm") -> PartOfSpeechTagger:
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
