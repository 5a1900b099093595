"""Checkpoints that describe their model, and the weight check at the start of every fit.

Every task's checkpoint carries, under ``checkpoint["clover_pl"]``, the ``class_path``/``init_args`` of its backbone
(and of its other injected modules, the VideoQA answerer), the task's class, and the tokenizer's vocabulary. So
``RetrievalTask.load_from_checkpoint(path)`` needs no other argument: the modules are rebuilt from their
descriptions (only ``clover_pl`` classes; the file is read with ``weights_only=True``) and the weights loaded into
them. The arguments that name weight files (``init_from``, ``bert_path``) are not followed again: the checkpoint
holds the weights.

At the start of every fit the task prints where its weights came from (the load report). A fine-tuning task
(``GUARDED``) refuses to train when nothing pretrained reached it: no ``init_from``, no ``--ckpt_path`` to resume,
and not both a Video Swin checkpoint and a BERT directory in the backbone, unless ``allow_random_init`` is set.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from clover_pl.errors import UserError
from clover_pl.models.architecture import build_module, class_path, describe
from clover_pl.models.backbone import CloverBackbone

RECORD_KEY = "clover_pl"
"""The checkpoint entry holding the model's description."""
RECORD_FORMAT = 1


class RandomInitError(UserError):
    """A fine-tuning fit would start from random weights (one line, naming ``init_from``; the CLI exits 2)."""


def read_checkpoint(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint, read with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a readable checkpoint with a ``state_dict``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise ValueError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path} has no state_dict: not a Lightning checkpoint")
    return checkpoint


def vocabulary_of(tokenizer: Any) -> list[str] | None:
    """The tokens of a tokenizer in id order, or None when it has no plain vocabulary."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if get_vocab is None:
        return None
    vocab = get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        return None
    return tokens


if TYPE_CHECKING:
    from lightning import LightningModule as _TaskBase
else:
    _TaskBase = object


class SelfDescribingTask(_TaskBase):
    """Mixin of the three tasks: the description in every checkpoint, ``load_from_checkpoint(path)``, the fit check.

    Class attributes:
        MODULE_ARGUMENTS: the ``__init__`` arguments that are modules (described in the checkpoint).
        WEIGHT_ARGUMENTS: ``__init__`` arguments naming weight files, set to None when rebuilding from a checkpoint.
        GUARDED: whether fit refuses to start from random weights.
    """

    backbone: CloverBackbone
    MODULE_ARGUMENTS: ClassVar[tuple[str, ...]] = ("backbone",)
    WEIGHT_ARGUMENTS: ClassVar[tuple[str, ...]] = ()
    GUARDED: ClassVar[bool] = False

    # ------------------------------------------------------------- checkpoints
    def architecture_record(self) -> dict[str, Any]:
        """What this task's checkpoint records about its model (``checkpoint["clover_pl"]``)."""
        modules = {}
        for name in self.MODULE_ARGUMENTS:
            try:
                modules[name] = describe(getattr(self, name))
            except TypeError as error:  # a module that cannot describe itself must not stop the run's checkpoints
                rank_zero_warn(f"the checkpoint will not describe its {name}: {error}")
        record: dict[str, Any] = {"format": RECORD_FORMAT, "task": class_path(self), "modules": modules}
        vocabulary = self._data_vocabulary()
        if vocabulary is not None:
            record["vocabulary"] = vocabulary
        return record

    def _data_vocabulary(self) -> list[str] | None:
        """The tokens of the datamodule's tokenizer (read once per run), so a checkpoint can embed texts alone."""
        if getattr(self, "_vocabulary", None) is None:
            datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
            tokenizer = getattr(datamodule, "tokenizer", None)
            path = getattr(getattr(datamodule, "hparams", None), "tokenizer", None)
            if tokenizer is None and isinstance(path, str):
                from clover_pl.data.text import load_tokenizer

                try:
                    tokenizer = load_tokenizer(path)
                except (OSError, ValueError):
                    tokenizer = None
            self._vocabulary = vocabulary_of(tokenizer) if tokenizer is not None else None
        return self._vocabulary

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the model's description beside its weights."""
        checkpoint[RECORD_KEY] = self.architecture_record()

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str,
        map_location: Any = "cpu",
        hparams_file: str | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Rebuild the task a checkpoint describes and load its weights; no other argument is needed.

        Args:
            checkpoint_path: a checkpoint written by clover-pl (``fit``'s ``checkpoints/*.ckpt``). A checkpoint of
                another task works where the task accepts its weights (a retrieval task from a pretraining one).
            map_location: where the tensors go (``torch.load``'s argument).
            hparams_file: not supported (the hyper-parameters come from the checkpoint); must be None.
            strict: strict state-dict loading (default True).
            **kwargs: constructor arguments that replace the recorded ones (a module, e.g. ``backbone=``, replaces
                the rebuilt one).

        Returns:
            The task, in training mode like any freshly built module (call ``.eval()`` for inference).

        Raises:
            ValueError: the checkpoint does not describe its modules and none were given, or cannot be read.
        """
        if hparams_file is not None:
            raise ValueError("hparams_file is not supported: a clover-pl checkpoint records its own hyper-parameters")
        checkpoint = read_checkpoint(checkpoint_path, map_location)
        return cls.from_checkpoint_dict(checkpoint, checkpoint_path, strict, **kwargs)

    @classmethod
    def from_checkpoint_dict(
        cls, checkpoint: dict[str, Any], origin: str, strict: bool | None = None, **kwargs: Any
    ) -> Any:
        """:meth:`load_from_checkpoint` for a checkpoint already read (``origin`` names it in messages)."""
        record = checkpoint.get(RECORD_KEY) or {}
        parameters = list(inspect.signature(cls.__init__).parameters)[1:]
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        arguments = {name: hparams[name] for name in parameters if name in hparams}
        arguments.update(dict.fromkeys(cls.WEIGHT_ARGUMENTS))
        modules = record.get("modules", {})
        for name in cls.MODULE_ARGUMENTS:
            if name in kwargs:
                continue
            if name not in modules:
                legacy = cls.module_from_hyperparameters(name, hparams)
                if legacy is not None:
                    arguments[name] = legacy
                    continue
                raise ValueError(
                    f"{origin} does not describe its {name} (written before clover-pl recorded it): pass "
                    f"{name}=<module of the same shapes> to load_from_checkpoint"
                )
            try:
                arguments[name] = build_module(modules[name], CloverBackbone if name == "backbone" else nn.Module)
            except ValueError as error:
                raise ValueError(f"{origin}: cannot rebuild its {name} ({error}); pass {name}=<module>") from error
        arguments.update(kwargs)
        task = cls(**arguments)
        task.on_load_checkpoint(checkpoint)
        task.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
        return task

    @classmethod
    def module_from_hyperparameters(cls, name: str, hparams: dict[str, Any]) -> nn.Module | None:
        """A module argument that older checkpoints kept as plain hyper-parameters, rebuilt from them (or None)."""
        return None

    # ------------------------------------------------------------- fit check
    def on_fit_start(self) -> None:
        """Print where the weights came from; refuse random fine-tuning (before anything trains)."""
        if self.trainer.strategy.restore_checkpoint_after_setup:
            return  # FSDP-like strategies restore after this hook: checked in on_train_start
        self.check_initialisation()

    def on_train_start(self) -> None:
        """The check for strategies that restore the checkpoint after ``on_fit_start``."""
        if self.trainer.strategy.restore_checkpoint_after_setup:
            self.check_initialisation()

    def check_initialisation(self) -> None:
        """Print the load report; raise :class:`RandomInitError` for a guarded task with nothing pretrained."""
        resumed = self.trainer.ckpt_path
        rank_zero_info(weights_report(self, None if resumed is None else str(resumed)))
        if not self.GUARDED or resumed is not None or self.hparams.get("allow_random_init", False):
            return
        if getattr(self, "load_report", None) is not None:
            return
        video, text = self.backbone.video.load_report, self.backbone.text.load_report
        if video is not None and text is not None:
            return
        missing = " and ".join(
            name for name, report in (("Video Swin checkpoint", video), ("BERT directory", text)) if report is None
        )
        raise RandomInitError(
            f"{type(self).__name__} would fine-tune from random weights: set model.init_args.init_from to a "
            f"pretraining checkpoint (or resume with --ckpt_path; the backbone has no {missing}), or set "
            "model.init_args.allow_random_init=true to train from scratch on purpose"
        )


def weights_report(task: Any, resumed: str | None) -> str:
    """Where a task's weights come from, one line per source (what ``fit`` prints first).

    Args:
        task: a task (its ``load_report`` from ``init_from``, its backbone's encoders' reports).
        resumed: the checkpoint fit resumes from, if any.
    """
    lines = [f"{type(task).__name__} weights at the start of fit:"]
    if resumed is not None:
        lines.append(f"  resumed from {resumed}: every weight, the optimiser and the step come from it")
    report = getattr(task, "load_report", None)
    init_from = task.hparams.get("init_from")
    if report is not None:
        lines.append(f"  init_from: {report.summary()}")
    elif init_from is not None:
        lines.append(f"  init_from: {init_from}")
    parts: tuple[tuple[str, Any], ...] = (("video encoder", task.backbone.video), ("text encoder", task.backbone.text))
    parts += (("fusion encoder", task.backbone.fusion),)
    mlm_head = getattr(task, "mlm_head", None)
    if mlm_head is not None:
        parts += (("MLM head", mlm_head),)
    for name, module in parts:
        part_report = getattr(module, "load_report", None)
        built = part_report.summary() if part_report is not None else "random initialisation"
        if part_report is not None and part_report.missing:
            built += f" (kept at initialisation: {', '.join(part_report.missing)})"
        lines.append(f"  {name} as built: {built}")
    if resumed is None and report is None and task.hparams.get("allow_random_init", False):
        lines.append("  allow_random_init=true: training starts from the weights above")
    return "\n".join(lines)
