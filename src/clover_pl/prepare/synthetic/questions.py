"""Question answering over synthetic scenes: open-ended questions, one-fact multiple choice, fill-in-the-blank.

One-fact multiple choice (the study's primary metric, README "Does the objective matter?"): five captions in one
complete template; four distractors each change the *same* fact (the object kind, material or action of one entity)
to four different values, so every option differs from the truth in exactly one fact, and no value of the changed
fact is shared by two options: a text-only reader that votes for the caption agreeing with the majority of the others
finds every option equally typical. In a two-entity scene the other entity's value (when it differs) is always one of
the distractors, so an encoder that sees "jade" and "ball" somewhere but does not bind them is fooled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

import numpy as np

from clover_pl.prepare.synthetic.captions import (
    COMPLETE_TEMPLATES,
    COUNT_WORDS,
    MASK,
    caption,
    caption_words,
)
from clover_pl.prepare.synthetic.scene import ACTIONS, MATERIALS, OBJECTS, Scene

MULTIPLE_CHOICE_QUESTION = "which caption describes the video?"
OPTIONS = 5
CHOICE_FACTS = ("object", "material", "action")
"""The facts a one-fact multiple-choice question may change (each has at least five values)."""
_VALUES = {"object": tuple(OBJECTS), "material": tuple(MATERIALS), "action": ACTIONS}


def open_ended_questions(scene: Scene) -> list[dict[str, str]]:
    """Questions with one-word answers about a scene (material, object, action, count, ground).

    Returns:
        ``{"question", "answer", "answer_type"}`` records; an entity is named by its object kind, or by its material
        when two entities share the kind.
    """
    records: list[dict[str, str]] = []
    objects = [entity.object for entity in scene.entities]
    materials = [entity.material for entity in scene.entities]
    for entity in scene.entities:
        plural = entity.count > 1
        be = "are" if plural else "is"
        noun = entity.object + ("s" if plural else "")
        if objects.count(entity.object) == 1:
            records.append(_qa(f"what {be} the {noun} made of?", entity.material, "material"))
        if materials.count(entity.material) == 1:
            records.append(_qa(f"what kind of object {be} made of {entity.material}?", entity.object, "object"))
            if entity.action is not None:
                thing = "objects" if plural else "object"
                records.append(_qa(f"what {be} the {entity.material} {thing} doing?", entity.action, "action"))
    for name in dict.fromkeys(objects):
        total = sum(entity.count for entity in scene.entities if entity.object == name)
        records.append(_qa(f"how many {name}s are there?", COUNT_WORDS[total], "count"))
    records.append(_qa("what is the ground?", scene.ground, "ground"))
    return records


def _qa(question: str, answer: str, answer_type: str) -> dict[str, str]:
    return {"question": question, "answer": answer, "answer_type": answer_type}


def one_fact_variants(scene: Scene, index: int, fact: str) -> list[Scene]:
    """Scenes that differ from ``scene`` only in ``fact`` of entity ``index``, binding distractor first.

    A value that would make the entity identical to the other entity is left out (that caption would describe a
    different count, not a different fact). In a two-entity scene the other entity's value, when it differs, comes
    first; the other values follow in vocabulary order.
    """
    entity = scene.entities[index]
    current = getattr(entity, fact)
    others = [other for position, other in enumerate(scene.entities) if position != index]
    values = [value for value in _VALUES[fact] if value != current]
    bound = [getattr(other, fact) for other in others if getattr(other, fact) != current]
    values = list(dict.fromkeys(bound + values))
    variants = []
    for value in values:
        change: dict[str, Any] = {fact: value}
        changed = replace(entity, **change)
        if any(changed.facts() == other.facts() for other in others):
            continue
        entities = list(scene.entities)
        entities[index] = changed
        variants.append(replace(scene, entities=tuple(entities)))
    return variants


def multiple_choice(scene: Scene, rng: np.random.Generator) -> dict[str, Any]:
    """A one-fact multiple-choice question (see the module docstring).

    Returns:
        ``{"question", "options", "answer", "answer_type", "fact", "entity"}``: five captions, the 0-based
        ``answer``, ``answer_type`` = the changed fact, with ``_pair`` in two-entity scenes (where the question tests
        binding), ``fact`` and the changed ``entity`` index.
    """
    template = str(rng.choice(COMPLETE_TEMPLATES))
    facts = [fact for fact in CHOICE_FACTS if fact != "action" or scene.entities[0].action is not None]
    slots = [(index, fact) for index in range(len(scene.entities)) for fact in facts]
    for position in rng.permutation(len(slots)):
        index, fact = slots[int(position)]
        variants = one_fact_variants(scene, index, fact)
        if len(variants) >= OPTIONS - 1:
            break
    else:  # unreachable: a material always has seven other values
        raise RuntimeError(f"no fact of {scene} has {OPTIONS - 1} distractors")
    binding = len(scene.entities) > 1 and variants[0].entities[index] == _with_other_value(scene, index, fact)
    keep = [variants[0]] if binding else []
    rest = variants[1:] if binding else variants
    chosen = keep + [rest[int(i)] for i in rng.choice(len(rest), OPTIONS - 1 - len(keep), replace=False)]
    options = [caption(scene, template)] + [caption(variant, template) for variant in chosen]
    order = rng.permutation(OPTIONS)
    return {
        "question": MULTIPLE_CHOICE_QUESTION,
        "options": [options[i] for i in order],
        "answer": int(np.flatnonzero(order == 0)[0]),
        "answer_type": fact + ("_pair" if len(scene.entities) > 1 else ""),
        "fact": fact,
        "entity": index,
    }


def _with_other_value(scene: Scene, index: int, fact: str) -> Any:
    """Entity ``index`` with the other entity's value of ``fact``."""
    other = scene.entities[1 - index]
    return replace(scene.entities[index], **{fact: getattr(other, fact)})


def fill_in_blank(scene: Scene, rng: np.random.Generator) -> dict[str, str]:
    """A complete caption with one fact word replaced by ``[MASK]``.

    Returns:
        ``{"text", "answer", "answer_type"}`` (the fact kind of the blank).
    """
    words = caption_words(scene, str(rng.choice(COMPLETE_TEMPLATES)))
    position = int(rng.choice([i for i, (_, fact) in enumerate(words) if fact is not None]))
    answer, fact = words[position]
    text = " ".join(MASK if i == position else word for i, (word, _) in enumerate(words))
    return {"text": text, "answer": answer, "answer_type": str(fact)}


def consensus_choice(options: list[str]) -> list[int]:
    """The options a text-only "consensus" reader picks: those whose words agree most with the other options'.

    Each option scores, per word position, how many options hold the same word there (options of unequal length
    compare position by position up to the shorter); the highest score wins.

    Returns:
        The indices of the tied best options (one pick among them is a guess).
    """
    split = [option.split() for option in options]
    scores = []
    for words in split:
        score = 0
        for position, word in enumerate(words):
            score += sum(1 for other in split if position < len(other) and other[position] == word)
        scores.append(score)
    best = max(scores)
    return [index for index, score in enumerate(scores) if score == best]


def distinct_values_choice(options: list[str]) -> list[int]:
    """The options a text-only reader picks that prefers captions not repeating a content word (binding prior).

    Returns:
        The indices of the options with the fewest repeated words.
    """
    repeats = [sum(count - 1 for count in Counter(option.split()).values() if count > 1) for option in options]
    best = min(repeats)
    return [index for index, value in enumerate(repeats) if value == best]


def text_only_accuracy(records: list[dict[str, Any]]) -> dict[str, float]:
    """Expected accuracy (percent; a tie is a uniform guess among the tied) of text-only readers on MC records.

    Returns:
        ``{"chance", "consensus", "distinct_values", "consensus_then_distinct"}``.
    """
    totals: defaultdict[str, float] = defaultdict(float)
    for record in records:
        answer, options = record["answer"], record["options"]
        consensus = consensus_choice(options)
        distinct = distinct_values_choice(options)
        combined = [i for i in consensus if i in distinct] or consensus
        for name, picked in (("consensus", consensus), ("distinct_values", distinct), ("both", combined)):
            totals[name] += (answer in picked) / len(picked)
        totals["chance"] += 1 / len(options)
    count = max(1, len(records))
    return {
        "chance": 100 * totals["chance"] / count,
        "consensus": 100 * totals["consensus"] / count,
        "distinct_values": 100 * totals["distinct_values"] / count,
        "consensus_then_distinct": 100 * totals["both"] / count,
    }
