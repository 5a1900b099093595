"""The ``clover-pl`` command: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``.

Configs are YAML in LightningCLI's ``class_path``/``init_args`` dialect, read in omegaconf mode so that values can
be interpolated (``${oc.env:CLOVER_BERT_DIR}``, ``${model.init_args.backbone...}``), resolved after all sources
are merged.
"""

from __future__ import annotations

import os

# Set before transformers / huggingface_hub are imported: nothing is ever fetched from a hub, and a missing model
# fails at once instead of retrying for ~45 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sys  # noqa: E402
from typing import Any  # noqa: E402

from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.utilities.exceptions import SIGTERMException  # noqa: E402

from clover_pl import run_safety  # noqa: E402
from clover_pl.errors import DEBUG_FLAG, debug_requested, run_reporting_user_errors  # noqa: E402

DESCRIPTION = (
    "Clover video-language pretraining on PyTorch Lightning. Besides the Trainer subcommands below, "
    "`clover-pl prepare <dataset> --help` converts a dataset into shards or manifests (`clover-pl prepare` lists "
    "the datasets), and `clover-pl sweep --help` evaluates checkpoints on benchmarks into a results table. "
    "A mistake in a file or path given by the user is reported on one line (exit status 2); add --debug (or set "
    "CLOVER_DEBUG=1) for the full traceback."
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

    def before_instantiate_classes(self) -> None:
        """Refuse ``weights_only: false`` and a ``--ckpt_path`` that is not a local file, before anything is built."""
        run_safety.check_subcommand_config(self.config.get(self.config.get("subcommand") or "", {}))

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


def main(args: list[str] | None = None) -> None:
    """Run the ``clover-pl`` command line.

    Args:
        args: arguments instead of ``sys.argv[1:]`` (tests).
    """
    argv = sys.argv[1:] if args is None else list(args)
    debug = debug_requested(argv)
    argv = [argument for argument in argv if argument != DEBUG_FLAG]
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads sys.argv itself (and warns when given both)
    run_reporting_user_errors(lambda: _dispatch(argv, None if args is None else argv), debug)


def _dispatch(argv: list[str], cli_args: list[str] | None) -> None:
    if argv[:1] == ["prepare"]:
        from clover_pl.prepare import main as prepare

        raise SystemExit(prepare(argv[1:]))
    if argv[:1] == ["sweep"]:
        from clover_pl.sweeps.cli import main as sweep

        raise SystemExit(sweep(argv[1:]))
    run_cli(cli_args)


def run_cli(args: list[str] | None = None) -> CloverCLI:
    """Run a Trainer subcommand (``fit``, ``validate``, ``test``, ``predict``) and return the CLI (its model, ...).

    Args:
        args: the command line after ``clover-pl`` (default ``sys.argv[1:]``).

    Returns:
        The CLI object, whose ``model``, ``datamodule`` and ``trainer`` are those of the run.
    """
    return CloverCLI(
        model_class=None,
        datamodule_class=None,
        parser_kwargs={"parser_mode": "omegaconf+", "description": DESCRIPTION},
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
