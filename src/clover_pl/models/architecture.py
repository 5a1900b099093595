"""Modules that describe themselves, so that a checkpoint can rebuild the model that wrote it.

A description is the ``class_path``/``init_args`` dict of LightningCLI (the same shape a YAML config gives), with
the weight paths of the encoders (Swin checkpoint, BERT directory) left out: the weights come from the checkpoint,
and those files need not exist where it is loaded. :func:`build_module` rebuilds a description; it only imports
classes from the ``clover_pl`` package, so a checkpoint cannot make it run other code.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

PACKAGE = "clover_pl."
# Constructor arguments renamed since checkpoints began describing their modules: a description written before the
# rename is read under the new names (class path -> old name -> new name).
RENAMED_IN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "clover_pl.models.video_swin.VideoSwinTransformer": {
        "checkpoint": "pretrained_path",
        "use_checkpoint": "activation_checkpointing",
    },
}


def constructor_arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
    """The arguments an ``__init__`` received, from ``locals()`` taken as its first statement.

    Args:
        frame_locals: ``locals()`` at the top of ``__init__``.

    Returns:
        ``{parameter: value}``, without ``self`` (tuples become lists, as YAML would give them).
    """
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in frame_locals.items()
        if name not in ("self", "__class__")
    }


def class_path(module: nn.Module) -> str:
    """The importable name of a module's class, e.g. ``clover_pl.models.video_swin.VideoSwinTransformer``."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def attribute_arguments(module: nn.Module) -> dict[str, Any]:
    """Constructor arguments read back from same-named attributes (for modules that keep every argument).

    Raises:
        TypeError: an argument is not kept as an attribute.
    """
    arguments = {}
    for name in list(inspect.signature(type(module).__init__).parameters)[1:]:
        if not hasattr(module, name):
            raise TypeError(f"{class_path(module)} does not keep its argument {name!r}: it cannot describe itself")
        value = getattr(module, name)
        arguments[name] = list(value) if isinstance(value, tuple) else value
    return arguments


def describe(module: nn.Module) -> dict[str, Any]:
    """``{"class_path": ..., "init_args": ...}`` of a module with an ``architecture()`` method or kept arguments."""
    architecture = getattr(module, "architecture", None)
    if callable(architecture):
        return dict(architecture())
    return {"class_path": class_path(module), "init_args": attribute_arguments(module)}


def _resolve(name: str, base: type) -> type:
    if not isinstance(name, str) or not name.startswith(PACKAGE):
        raise ValueError(f"class_path {name!r} is outside the clover_pl package: refusing to build it")
    module_name, _, attribute = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"class_path {name!r} does not name a clover_pl class: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"class_path {name!r} is not a {base.__name__}")
    return cls


def build_module(description: dict[str, Any], base: type = nn.Module) -> nn.Module:
    """Rebuild a module from its description; nested descriptions (dicts with a ``class_path``) are built first.

    Args:
        description: ``{"class_path": "clover_pl....", "init_args": {...}}``.
        base: the class the result must be an instance of.

    Returns:
        The module, with freshly initialised weights (load a state dict into it).

    Raises:
        ValueError: the description is malformed or names a class outside ``clover_pl`` or not a ``base``.
    """
    if not isinstance(description, dict) or "class_path" not in description:
        raise ValueError(f"not a module description (class_path/init_args): {description!r:.200}")
    cls = _resolve(description["class_path"], base)
    renamed = RENAMED_IN_DESCRIPTIONS.get(description["class_path"], {})
    arguments = {
        renamed.get(name, name): build_module(value) if isinstance(value, dict) and "class_path" in value else value
        for name, value in (description.get("init_args") or {}).items()
    }
    return cls(**arguments)
