"""CloverCLI: LightningCLI for clover-pl runs (loaded by :func:`clover_pl.cli.run_cli`, not by ``prepare``/``sweep``).

What it adds to LightningCLI:

- ``clover-pl --help`` also lists the commands of :data:`clover_pl.subcommands.COMMANDS`;
- short class names (``--model PretrainTask``, ``--data PretrainDataModule``): the tasks and datamodules are
  imported here, so jsonargparse knows them as subclasses of LightningModule / LightningDataModule;
- the default progress bar is :class:`clover_pl.callbacks.StepProgressBar` and the model summary
  :class:`clover_pl.callbacks.ModelSummary` (no ``Total Flops: 0``), unless a config names its own;
- TensorBoard: :class:`clover_pl.callbacks.SelectionMetricHParams` and :class:`clover_pl.callbacks.Pictures`
  are added to every run with a TensorBoardLogger (unless the config has them), the placeholder ``hp_metric``
  is switched off, and ``fit --ckpt_path ...`` continues the latest run folder (``version_N``) instead of opening
  a new one, purging the events logged after the checkpoint's step;
- reliability (issue 16): checkpoints local and ``weights_only=True``, saved atomically beside their target
  (:mod:`clover_pl.run_safety`), and a SIGTERM ends the process with status 143 once ``last.ckpt`` is saved;
- geometry (issue 14): the data's ``image_size`` and ``video_mask_grid`` are linked from the backbone (the fusion's
  ``spatial_tokens``, the Swin's patch and stages; :mod:`clover_pl.models.geometry`), and clips with more temporal
  tokens than the fusion's ``temporal_slots`` stop the run in one line before anything is built.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

import clover_pl.tasks  # noqa: F401
from clover_pl import run_safety
from clover_pl.callbacks import ModelSummary, Pictures, SelectionMetricHParams, StepProgressBar
from clover_pl.config_renames import check_renamed_keys

# Imported for their subclasses: jsonargparse resolves a short class name among the imported subclasses.
from clover_pl.data import PretrainDataModule, RetrievalDataModule, VideoQADataModule  # noqa: F401
from clover_pl.errors import UserError
from clover_pl.models import geometry

BACKBONE = "model.init_args.backbone.init_args"
VIDEO_ENCODER = f"{BACKBONE}.video_encoder.init_args"
FUSION_ENCODER = f"{BACKBONE}.fusion_encoder.init_args"
FRAME_KEYS = ("num_frames", "validation_frames", "train_frames", "test_frames")
"""The data module arguments that give frames per clip (the datamodules that lack one simply do not have it)."""

TENSORBOARD_LOGGERS = (
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
)


class CloverCLI(LightningCLI):
    """LightningCLI whose model and data are any LightningModule / LightningDataModule given by ``class_path``."""

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model: never replace it by the hyper-parameters stored in ``--ckpt_path``.

        LightningCLI would rebuild the model recorded in the checkpoint, so `clover-pl test --config
        conf/retrieval/msrvtt.yaml --ckpt_path <pretrain.ckpt>` (zero-shot evaluation) would build the PretrainTask
        of that checkpoint instead of the RetrievalTask the config names. Resuming is unaffected: the config is
        given again.
        """

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Refuse renamed keys with one line naming the new one (:mod:`clover_pl.config_renames`), then parse."""
        if args is None or isinstance(args, list):
            check_renamed_keys(list(sys.argv[1:] if args is None else args))
        super().parse_arguments(parser, args)

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """The Trainer's subcommands, then those of :data:`clover_pl.subcommands.COMMANDS`.

        The latter are listed in ``--help`` only: :func:`clover_pl.cli.main` runs them before this parser is built.
        """
        super()._add_subcommands(parser, **kwargs)
        from clover_pl.subcommands import COMMANDS

        subcommands = parser._subcommands_action
        if subcommands is None:  # set by super()._add_subcommands
            return
        for name, command in COMMANDS.items():
            subcommands.add_subcommand(name, LightningArgumentParser(description=command.help), help=command.help)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Derive the data's crop size and video mask grid from the backbone, so that they cannot disagree.

        Both are parse-time links from the model to the data (architecture values live under ``model``): setting
        ``data.init_args.image_size`` or ``video_mask_grid`` is refused (:mod:`clover_pl.config_renames`). A data
        module without the argument is left alone.
        """
        spatial = f"{FUSION_ENCODER}.spatial_tokens"
        sources = (spatial, f"{VIDEO_ENCODER}.patch_size", f"{VIDEO_ENCODER}.depths")
        parser.link_arguments(sources, "data.init_args.image_size", geometry.image_size)
        parser.link_arguments(spatial, "data.init_args.video_mask_grid", geometry.video_mask_grid)

    # ------------------------------------------------------------------ TensorBoard
    # ------------------------------------------------------------------ reliability (issue 16)
    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The Trainer, with atomic checkpoint saves and ``weights_only=True`` loads (:mod:`clover_pl.run_safety`)."""
        trainer = super().instantiate_trainer(**kwargs)
        run_safety.install(trainer)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a SIGTERM (preemption) ends the process with status 143 once ``last.ckpt`` is saved."""
        try:
            super()._run_subcommand(subcommand)
        except SIGTERMException:
            raise SystemExit(run_safety.SIGTERM_EXIT_STATUS) from None

    def before_instantiate_classes(self) -> None:
        """Refuse unsafe checkpoints; switch off the placeholder ``hp_metric``; on resume, continue the run folder.

        ``weights_only: false`` and a ``--ckpt_path`` that is not a local file are refused before anything is built
        (:func:`clover_pl.run_safety.check_subcommand_config`).
        """
        config = self.config.get(str(self.subcommand), self.config)
        run_safety.check_subcommand_config(config)
        check_temporal_slots(config)
        trainer = config.get("trainer")
        if trainer is None:
            return
        loggers = trainer.get("logger")
        entries = loggers if isinstance(loggers, list) else [loggers]
        resume_step = None
        if self.subcommand == "fit" and config.get("ckpt_path"):
            resume_step = checkpoint_step(config["ckpt_path"], trainer)
        for entry in entries:
            if not isinstance(entry, Namespace) or entry.get("class_path") not in TENSORBOARD_LOGGERS:
                continue
            init = entry.get("init_args") or Namespace()
            entry["init_args"] = init
            if init.get("default_hp_metric") is None or init.get("default_hp_metric") is True:
                init["default_hp_metric"] = False  # the selection metric goes in its place
            if resume_step is not None and init.get("version") is None:
                save_dir = init.get("save_dir") or trainer.get("default_root_dir") or os.getcwd()
                name = init.get("name", "lightning_logs") or ""
                version = latest_version(os.path.join(str(save_dir), str(name)))
                if version is not None:
                    init["version"] = version
                    # Events logged after the checkpoint by the interrupted run are hidden by TensorBoard.
                    init["purge_step"] = resume_step

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Any:
        """Add clover-pl's default callbacks where the config has none of their kind."""
        listed = list(config.get("callbacks") or []) + list(callbacks)
        if not isinstance(config.get("callbacks"), list):
            config["callbacks"] = [] if config.get("callbacks") is None else [config["callbacks"]]
        added: list[Callback] = []
        if config.get("enable_progress_bar", True) is not False and not _has(listed, ProgressBar):
            added.append(StepProgressBar())
        if config.get("enable_model_summary", True) is not False and not _has(listed, LightningModelSummary):
            added.append(ModelSummary())
        if _uses_tensorboard(config.get("logger")):
            if not _has(listed, SelectionMetricHParams):
                added.append(SelectionMetricHParams())
            if not _has(listed, Pictures):
                added.append(Pictures())
        config["callbacks"].extend(added)
        return super()._instantiate_trainer(config, callbacks)


def check_temporal_slots(config: Namespace) -> None:
    """Stop before anything is built when the data's clips have more temporal tokens than the fusion can place.

    ``temporal_slots`` is a capacity, not a function of the data (a model pretrained on 8 frames fine-tunes and is
    tested on 32), so it is checked rather than linked.

    Raises:
        UserError: one line naming the frames key, the slots key and their values.
    """
    slots = config.get(f"{FUSION_ENCODER}.temporal_slots")
    patch_size = config.get(f"{VIDEO_ENCODER}.patch_size")
    data = config.get("data.init_args")
    if not isinstance(slots, int) or not patch_size or not isinstance(data, Namespace):
        return
    for key in FRAME_KEYS:
        frames = data.get(key)
        if isinstance(frames, int) and geometry.temporal_positions(frames, patch_size) > slots:
            positions = geometry.temporal_positions(frames, patch_size)
            raise UserError(
                f"data.init_args.{key}={frames} gives {positions} temporal tokens (patch_size {list(patch_size)}) "
                f"but {FUSION_ENCODER}.temporal_slots={slots}: lower the frames or raise temporal_slots"
            )


def _has(callbacks: list[Any], kind: type) -> bool:
    return any(isinstance(callback, kind) for callback in callbacks)


def _uses_tensorboard(logger: Any) -> bool:
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers = logger if isinstance(logger, list) else [logger]
    # logger=None/True: Lightning's default logger, a TensorBoardLogger when tensorboard is installed (it is).
    return logger is None or logger is True or any(isinstance(item, TensorBoardLogger) for item in loggers)


def latest_version(root: str) -> int | None:
    """The highest ``N`` of the ``version_N`` folders under ``root`` (a TensorBoardLogger's save_dir/name)."""
    numbers = []
    for path in glob.glob(os.path.join(glob.escape(root), "version_*")):
        match = re.fullmatch(r"version_(\d+)", os.path.basename(path))
        if match and os.path.isdir(path):
            numbers.append(int(match.group(1)))
    return max(numbers) if numbers else None


def checkpoint_step(ckpt_path: str, trainer: Namespace) -> int | None:
    """The global step stored in the checkpoint a fit resumes from; None when it cannot be found.

    ``last`` is looked up as ``last.ckpt`` in the ``dirpath`` of the config's ModelCheckpoint callbacks; other
    special values (``best``, ``hpc``) and unreadable files give None (Lightning reports those itself).
    """
    path = str(ckpt_path)
    if path == "last":
        candidates = []
        for callback in trainer.get("callbacks") or []:
            dirpath = callback.get("init_args", Namespace()).get("dirpath") if isinstance(callback, Namespace) else None
            if dirpath:
                candidates.append(os.path.join(str(dirpath), "last.ckpt"))
        path = next((candidate for candidate in candidates if os.path.isfile(candidate)), "")
    if not os.path.isfile(path):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  (Lightning reports a bad checkpoint when it loads it)
        return None
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    return int(step) if isinstance(step, int) else None
