"""Renamed config keys: a config that still uses an old key stops with one line naming the new key.

jsonargparse would reject an old key with a generic "no action for key" message several levels deep; this check
runs first, over every ``--config`` file (and the YAML files they name, such as ``backbone: backbone/tiny.yaml``) and
every ``--a.b.c`` argument of the command line, and names the replacement. It reads YAML only: nothing is built.

To rename a constructor argument: rename it in the code, update the shipped configs, and add one entry to
:data:`RENAMED_ARGUMENTS`. To move or rename a class that configs name by its import path, add one entry to
:data:`RENAMED_CLASSES`: every ``class_path`` the scan sees (in mappings, list items such as ``trainer.callbacks``
entries, and ``--x.class_path`` / ``--trainer.callbacks+=`` arguments) is checked against it.
"""

from __future__ import annotations

import os
from typing import Any

from clover_pl.errors import UserError

SPATIAL_TOKENS = "model.init_args.backbone.init_args.fusion_encoder.init_args.spatial_tokens"
_OPTIMIZATION = ("lr", "weight_decay", "betas", "eps", "warmup_fraction", "warmup_steps", "lr_schedule", "min_lr_ratio")
_OBJECTIVE = (
    "use_tma",
    "use_masked",
    "use_fused",
    "use_ranking",
    "use_mlm",
    "temperature",
    "rank_margin",
    "focal_gamma",
    "weight_tma",
    "weight_rank",
    "weight_mlm",
    "weight_contrastive",
)
_TO_OPTIMIZATION = {name: f"model.init_args.optimization.{name}" for name in _OPTIMIZATION}

RENAMED_ARGUMENTS: dict[str, dict[str, str]] = {
    # class (its name, or any import path ending in it) -> {old __init__ argument: the new full config key}
    "clover_pl.tasks.PretrainTask": {
        "max_skip_rate": "data.init_args.max_skip_rate",
        "skip_check_after": "data.init_args.skip_check_after",
        **_TO_OPTIMIZATION,
        **{name: f"model.init_args.objective.init_args.{name}" for name in _OBJECTIVE},
        "objective_weighting": "model.init_args.objective.init_args.weighting",
    },
    "clover_pl.tasks.RetrievalTask": dict(_TO_OPTIMIZATION),
    "clover_pl.tasks.VideoQATask": dict(_TO_OPTIMIZATION),
    # Linked from the backbone by the CLI (clover_pl.models.geometry): set the fusion's spatial positions instead.
    "clover_pl.data.pretrain.PretrainDataModule": {"image_size": SPATIAL_TOKENS, "video_mask_grid": SPATIAL_TOKENS},
    "clover_pl.data.retrieval.RetrievalDataModule": {"image_size": SPATIAL_TOKENS},
    "clover_pl.data.videoqa.VideoQADataModule": {"image_size": SPATIAL_TOKENS},
    "clover_pl.models.video_swin.VideoSwinTransformer": {
        "checkpoint": "model.init_args.backbone.init_args.video_encoder.init_args.pretrained_path",
        "use_checkpoint": "model.init_args.backbone.init_args.video_encoder.init_args.activation_checkpointing",
    },
}
"""Old constructor arguments of clover-pl classes and the config keys that replaced them."""


RENAMED_CLASSES: dict[str, str] = {
    # old import path -> the new one (issue 14: the callbacks became one package, clover_pl.callbacks)
    "clover_pl.retrieval_figure.RetrievalFigure": "clover_pl.callbacks.RetrievalFigure",
    "clover_pl.tensorboard.Pictures": "clover_pl.callbacks.Pictures",
    "clover_pl.tensorboard.SelectionMetricHParams": "clover_pl.callbacks.SelectionMetricHParams",
    "clover_pl.progress_bar.StepProgressBar": "clover_pl.callbacks.StepProgressBar",
    "clover_pl.model_summary.ModelSummary": "clover_pl.callbacks.ModelSummary",
}
"""Old import paths of clover-pl classes that configs name, and the paths that replaced them."""


class RenamedKeyError(UserError):
    """A config or command line uses a key that was renamed (one line; the CLI exits 2)."""


def _renames_of(class_path: str | None) -> dict[str, str]:
    """The renamed arguments of a class given by any of its import paths or its bare name."""
    if not class_path:
        return {}
    name = class_path.rsplit(".", 1)[-1]
    merged: dict[str, str] = {}
    for key, renames in RENAMED_ARGUMENTS.items():
        if key.rsplit(".", 1)[-1] == name:
            merged.update(renames)
    return merged


def _check_class_path(class_path: str, source: str) -> None:
    """Stop when ``class_path`` is the old import path of a moved class."""
    if class_path in RENAMED_CLASSES:
        raise RenamedKeyError(f"{source}: class_path {class_path} was renamed: use {RENAMED_CLASSES[class_path]}")


def _load_yaml(path: str) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return None  # unreadable: the parser reports it in its own words


class _Scan:
    """Walks config sources in order, remembering which class each config node names."""

    def __init__(self) -> None:
        self.classes: dict[str, str] = {}  # node key ("model", "model.init_args.backbone") -> class path

    def node(self, key: str, value: Any, source: str, folder: str) -> None:
        if isinstance(value, str) and value.endswith((".yaml", ".yml")) and key:
            path = value if os.path.isabs(value) else os.path.join(folder, value)
            if os.path.isfile(path):
                self.node(key, _load_yaml(path), path, os.path.dirname(path))
            return
        if isinstance(value, str):  # a bare class path, as in ``callbacks: [clover_pl.tensorboard.Pictures]``
            _check_class_path(value, source)
            return
        if isinstance(value, list):  # e.g. trainer.callbacks: each item under the list's own key, as the CLI names it
            for item in value:
                self.node(key, item, source, folder)
            return
        if not isinstance(value, dict):
            return
        if isinstance(value.get("class_path"), str):
            _check_class_path(value["class_path"], source)
            self.classes[key] = value["class_path"]
        init_args = value.get("init_args")
        if isinstance(init_args, dict) and key in self.classes:
            self.arguments(key, init_args, source, folder)
        for name, child in value.items():
            if name not in ("class_path", "init_args"):
                self.node(f"{key}.{name}" if key else str(name), child, source, folder)

    def arguments(self, key: str, init_args: dict[str, Any], source: str, folder: str) -> None:
        renames = _renames_of(self.classes.get(key))
        for name, child in init_args.items():
            if name in renames:
                raise RenamedKeyError(f"{source}: {key}.init_args.{name} was renamed: use {renames[name]}")
            self.node(f"{key}.init_args.{name}", child, source, folder)

    def argument(self, key: str, value: str | None) -> None:
        """One ``--key[=value]`` of the command line (``key`` without the dashes, ``+`` of ``callbacks+=`` kept)."""
        parent, _, name = key.rpartition(".init_args.")
        if parent and name and "." not in name and name in _renames_of(self.classes.get(parent)):
            raise RenamedKeyError(f"--{key} was renamed: use --{_renames_of(self.classes[parent])[name]}")
        if value is not None:
            _check_class_path(value, f"--{key}")
            if self.inline(key.removesuffix("+").removesuffix(".class_path"), value, f"--{key}"):
                return
        if key.endswith(".class_path") or (value is not None and "." not in key):
            self.classes[key.removesuffix(".class_path")] = value or ""

    def inline(self, key: str, value: str, source: str) -> bool:
        """Scan a value written as a mapping or list (``{"class_path": ..., "init_args": ...}``); False if it is not."""
        if not value.lstrip().startswith(("{", "[")):
            return False
        import yaml

        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return False  # the parser reports it in its own words
        if not isinstance(parsed, (dict, list)):
            return False
        self.node(key, parsed, source, os.getcwd())
        return True


def check_renamed_keys(args: list[str]) -> None:
    """Stop with one line when the command line or a config it names uses a renamed key.

    Args:
        args: the command line after ``clover-pl`` (config names already resolved to files).

    Raises:
        RenamedKeyError: naming the file (or the argument), the old key and the new one.
    """
    scan = _Scan()
    position = 0
    while position < len(args):
        argument = args[position]
        value = None
        if argument.startswith("--") and "=" in argument:
            argument, value = argument.split("=", 1)
        elif position + 1 < len(args) and not args[position + 1].startswith("--"):
            value = args[position + 1]
        if argument == "--config" and value is not None:
            scan.node("", _load_yaml(value), value, os.path.dirname(os.path.abspath(value)))
        elif argument.startswith("--") and argument != "--config":
            scan.argument(argument[2:], value)
        position += 1
