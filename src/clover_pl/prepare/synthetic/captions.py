"""Captions of synthetic scenes (v2): every visual fact is a noun or a verb.

Facts and the words that state them: object kind (noun: ``ball``), material (noun: ``jade``, as a noun modifier or
after "made of"), action (verb: ``rolls`` / ``rolling``), group size (noun: "a ``pair`` of", "a ``trio`` of"; a single
object takes the article "a") and ground (noun: "on ``concrete``"). Templates (:data:`TEMPLATES`):

- ``plain``: "a jade ball rolls and a pair of ruby cones spin on concrete";
- ``made``: "a ball made of jade rolls and a pair of cones made of ruby spin on concrete";
- ``there``: "there is a jade ball rolling and a pair of ruby cones spinning on concrete";
- ``short``: the ``plain`` caption without the ground (train only: it leaves a fact out).
"""

from __future__ import annotations

from clover_pl.prepare.synthetic.scene import ACTIONS, COUNT_NOUNS, GROUNDS, MATERIALS, OBJECTS, Entity, Scene

TEMPLATES = ("plain", "made", "there", "short")
COMPLETE_TEMPLATES = ("plain", "made", "there")
"""Templates that name every fact, used for held-out captions, multiple-choice options and blanks."""
THIRD_PERSON = {action: action + "s" for action in ACTIONS}
PARTICIPLES = {
    "rest": "resting",
    "slide": "sliding",
    "roll": "rolling",
    "bounce": "bouncing",
    "spin": "spinning",
    "fall": "falling",
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
"""Open-ended answers to "how many"."""

_FUNCTION_WORDS = "a an and are is made of on there"
_QUESTION_WORDS = "what which how many kind ground doing object objects the caption describes video"
WORDPIECE_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDPIECE_PUNCTUATION = ["?", ",", "."]
VOCABULARY = sorted(
    {*OBJECTS, *(name + "s" for name in OBJECTS), *MATERIALS, *GROUNDS, *ACTIONS, *COUNT_NOUNS.values()}
    | {*THIRD_PERSON.values(), *PARTICIPLES.values(), *COUNT_WORDS.values()}
    | set(_FUNCTION_WORDS.split())
    | set(_QUESTION_WORDS.split())
)
"""Every word that captions, questions, options and answers use (lowercase; questions also end with ``?``)."""
MASK = "[MASK]"


def caption(scene: Scene, template: str) -> str:
    """Describe a scene with one of :data:`TEMPLATES`."""
    return " ".join(word for word, _ in caption_words(scene, template))


def caption_words(scene: Scene, template: str) -> list[tuple[str, str | None]]:
    """A caption as ``(word, fact)`` pairs; ``fact`` names the fact kind the word states (None: a function word).

    Args:
        scene: what to describe.
        template: one of :data:`TEMPLATES` (see the module docstring).

    Returns:
        The words in order; fact kinds are those of :data:`clover_pl.prepare.synthetic.scene.FACT_KINDS`.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown caption template {template!r}; valid templates: {', '.join(TEMPLATES)}")
    words: list[tuple[str, str | None]] = []
    if template == "there":
        words += [("there", None), ("is", None)]  # "there is a pair of ...": the group noun is singular
    for index, entity in enumerate(scene.entities):
        if index:
            words.append(("and", None))
        words += noun_phrase(entity, made_of=template == "made") + verb(entity, participle=template == "there")
    if template != "short":
        words += [("on", None), (scene.ground, "ground")]
    return words


def noun_phrase(entity: Entity, *, made_of: bool = False) -> list[tuple[str, str | None]]:
    """The entity's noun phrase: "a jade ball", "a pair of jade balls", or with ``made_of`` "a ball made of jade"."""
    words: list[tuple[str, str | None]] = []
    if entity.count > 1:
        words += [(COUNT_NOUNS[entity.count], "count"), ("of", None)]
    noun = (entity.object + ("s" if entity.count > 1 else ""), "object")
    material = (entity.material, "material")
    words += [noun, ("made", None), ("of", None), material] if made_of else [material, noun]
    return [("an" if words[0][0][0] in "aeiou" else "a", None), *words]


def verb(entity: Entity, *, participle: bool = False) -> list[tuple[str, str | None]]:
    """The entity's action as a finite verb ("rolls" / "roll") or a participle ("rolling"); nothing in images."""
    if entity.action is None:
        return []
    if participle:
        return [(PARTICIPLES[entity.action], "action")]
    return [(THIRD_PERSON[entity.action] if entity.count == 1 else entity.action, "action")]
