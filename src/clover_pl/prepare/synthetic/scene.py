"""Scene sampling for the synthetic dataset (v2): what a clip shows, as facts that captions name with nouns and verbs.

A scene is a textured *ground* (background) and one or two *entities*. An entity is a group of 1-3 identical objects:
the same object kind (``ball``, ``block``, ``cone``, ``star``, ``ring``), the same material (drawn as the material's
colour) and, in videos, the same action (``rest``, ``slide``, ``roll``, ``bounce``, ``spin``, ``fall``). A two-entity
scene holds two single objects that differ in object kind or material, so that a caption binds each material and
action to the right object. Images (one frame) carry no action.

Actions are trajectories over the clip (fractions ``f`` in [0, 1] from the first to the last frame): ``slide`` moves
sideways without turning, ``roll`` moves sideways turning by distance / radius, ``fall`` moves down, ``bounce`` hops
up and back down once, ``spin`` turns half a turn in place, ``rest`` stays still. Every sprite is two-tone (its lower
half in its own frame is darker), so turning is visible whatever the shape's symmetry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTS = {"ball": "circle", "block": "square", "cone": "triangle", "star": "star", "ring": "ring"}
"""Object noun -> the sprite drawn for it."""
MATERIALS = {
    "ruby": (220, 30, 30),
    "jade": (30, 180, 50),
    "cobalt": (40, 70, 230),
    "gold": (240, 220, 30),
    "chalk": (245, 245, 245),
    "rubber": (15, 15, 15),
    "amethyst": (140, 40, 190),
    "copper": (250, 140, 20),
}
"""Material noun -> the RGB colour it is drawn with; every one is at least ~90 RGB units from every ground colour."""
GROUNDS = {"concrete": (128, 128, 128), "dirt": (110, 75, 45), "water": (0, 115, 125), "carpet": (240, 165, 195)}
"""Ground noun -> background RGB."""
ACTIONS = ("rest", "slide", "roll", "bounce", "spin", "fall")
COUNT_NOUNS = {2: "pair", 3: "trio"}
"""Group size -> the noun that names it ("a pair of ..."); a single object takes the article "a"."""
FACT_KINDS = ("count", "material", "object", "action", "ground")
RADIUS = 0.14
"""Object circumradius as a fraction of the frame size."""
TRAVEL = 0.35
"""Displacement of slide, roll and fall over the whole clip, as a fraction of the frame size."""
HOP = 0.3
"""Height of a bounce, as a fraction of the frame size."""
PLACEMENT_TRIES = 400
"""Placements tried for one draw of facts before the facts are redrawn."""


@dataclass(frozen=True)
class Entity:
    """A group of ``count`` identical objects; ``action`` is None in images, ``heading`` is -1 (left) or +1."""

    object: str
    material: str
    action: str | None
    count: int
    heading: int = 1

    def facts(self) -> tuple[str, str, str, int]:
        """What a caption says about the entity (the heading is not named)."""
        return (self.object, self.material, self.action or "", self.count)


@dataclass(frozen=True)
class Track:
    """One drawn object: its entity and its centre (x, y) in pixels at ``f = 0``."""

    entity: int
    start: tuple[int, int]


@dataclass(frozen=True)
class Scene:
    """What one sample shows."""

    ground: str
    entities: tuple[Entity, ...]
    tracks: tuple[Track, ...] = ()

    def signature(self) -> tuple[Any, ...]:
        """Order-free description of the scene: equal signatures mean equally good captions."""
        return (self.ground, *sorted(entity.facts() for entity in self.entities))

    def to_json(self, size: int) -> dict[str, Any]:
        """The per-sample metadata: ground and one record per drawn object."""
        objects = []
        for track in self.tracks:
            entity = self.entities[track.entity]
            objects.append(
                {
                    "object": entity.object,
                    "material": entity.material,
                    "action": entity.action,
                    "heading": entity.heading,
                    "group": track.entity,
                    "radius": RADIUS * size,
                    "start": list(track.start),
                }
            )
        return {"ground": self.ground, "objects": objects}


def motion(entity: Entity, size: int, fraction: float) -> tuple[float, float, float]:
    """Offset (dx, dy) in pixels from the start and turn angle in radians of an entity's objects at ``fraction``.

    Args:
        entity: whose action to follow.
        size: frame size in pixels.
        fraction: time in the clip, 0 (first frame) to 1 (last frame).

    Returns:
        ``(dx, dy, angle)``; y grows downwards, a positive angle turns clockwise on screen.
    """
    travel, radius = TRAVEL * size, RADIUS * size
    action = entity.action
    if action in ("slide", "roll"):
        dx = entity.heading * travel * fraction
        return dx, 0.0, dx / radius if action == "roll" else 0.0
    if action == "fall":
        return 0.0, travel * fraction, 0.0
    if action == "bounce":
        return 0.0, -HOP * size * math.sin(math.pi * fraction), 0.0
    if action == "spin":
        return 0.0, 0.0, entity.heading * math.pi * fraction
    return 0.0, 0.0, 0.0


def sample_entity(rng: np.random.Generator, count: int, *, motion_on: bool) -> Entity:
    """Draw one entity's facts uniformly (an action only when ``motion_on``)."""
    action = str(rng.choice(ACTIONS)) if motion_on else None
    heading = int(rng.choice([-1, 1]))
    return Entity(str(rng.choice(list(OBJECTS))), str(rng.choice(list(MATERIALS))), action, count, heading)


def sample_scene(rng: np.random.Generator, size: int, *, motion: bool) -> Scene:
    """Draw a scene whose objects stay inside the frame and never overlap along their paths.

    Args:
        rng: the sample's random stream.
        size: frame height and width in pixels.
        motion: draw actions (videos) or not (images).

    Returns:
        The scene: 65 % one entity of 1-3 objects (probabilities 0.4, 0.3, 0.3), 35 % two single objects that differ
        in object or material. Facts that cannot be placed in :data:`PLACEMENT_TRIES` tries are redrawn.
    """
    while True:
        ground = str(rng.choice(list(GROUNDS)))
        if rng.random() < 0.65:
            count = int(rng.choice([1, 2, 3], p=[0.4, 0.3, 0.3]))
            entities: tuple[Entity, ...] = (sample_entity(rng, count, motion_on=motion),)
        else:
            first = sample_entity(rng, 1, motion_on=motion)
            second = sample_entity(rng, 1, motion_on=motion)
            while (second.object, second.material) == (first.object, first.material):
                second = sample_entity(rng, 1, motion_on=motion)
            entities = (first, second)
        for _attempt in range(PLACEMENT_TRIES):  # many tries, so that crowded fact combinations are not rarer
            tracks = place(rng, entities, size)
            if tracks is not None:
                return Scene(ground, entities, tracks)


def place(rng: np.random.Generator, entities: tuple[Entity, ...], size: int) -> tuple[Track, ...] | None:
    """Start positions such that every path stays inside the frame and no two objects overlap (None: failed)."""
    fractions = np.linspace(0.0, 1.0, 9)
    margin = int(math.ceil(RADIUS * size)) + 1
    tracks: list[Track] = []
    # (entity, path box, start box) of every placed object. Objects of one entity move in step, so they only need
    # disjoint start boxes; objects of different entities need disjoint path boxes.
    boxes: list[tuple[int, tuple[float, ...], tuple[float, ...]]] = []
    for index, entity in enumerate(entities):
        path = np.array([motion(entity, size, float(f))[:2] for f in fractions])
        low, high = path.min(axis=0), path.max(axis=0)
        for _ in range(entity.count):
            for _attempt in range(30):
                x_range = (margin - low[0], size - 1 - margin - high[0])
                y_range = (margin - low[1], size - 1 - margin - high[1])
                x_low, x_high = math.ceil(x_range[0]), math.floor(x_range[1])
                y_low, y_high = math.ceil(y_range[0]), math.floor(y_range[1])
                if x_low > x_high or y_low > y_high:
                    return None
                x0, y0 = int(rng.integers(x_low, x_high + 1)), int(rng.integers(y_low, y_high + 1))
                box = (x0 + low[0] - margin, y0 + low[1] - margin, x0 + high[0] + margin, y0 + high[1] + margin)
                start = (x0 - margin, y0 - margin, x0 + margin, y0 + margin)
                clash = any(
                    _overlap(start, other_start) if other == index else _overlap(box, other_box)
                    for other, other_box, other_start in boxes
                )
                if not clash:
                    boxes.append((index, box, start))
                    tracks.append(Track(index, (x0, y0)))
                    break
            else:
                return None
    return tuple(tracks)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
