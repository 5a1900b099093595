"""The one place where clover-pl silences third-party messages that a user cannot act on.

Each entry is matched against the message text, never a whole warning category, so a new warning of the same
category (one the user can act on) still shows. Add an entry only with the reason it cannot be acted on.
"""

from __future__ import annotations

import logging
import re
import warnings

KNOWN_NOISE: dict[str, str] = {
    # Lightning prints an advertisement for its hosted logger on every fit.
    r"💡 Tip: For seamless cloud logging": "a LitLogger advertisement, printed by every Trainer",
    # Lightning 2.6's own pytree helper builds torch's deprecated LeafSpec; nothing in our code or configs does.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated": "raised inside lightning.pytorch.utilities._pytree",
    # torchdata 0.11's StatefulDataLoader calls torch.set_vital, which torch deprecated.
    r"'set_vital' is deprecated": "raised inside torchdata's StatefulDataLoader",
    # `test`/`validate` of a checkpoint written in another folder (a sweep, a copied run): Lightning reloads only
    # best_model_path, which evaluation does not use.
    r"The dirpath has changed from": "evaluation of a checkpoint from another run folder",
    # `predict` over webdataset pipelines: they have no sampler, and clover-pl's writer keeps ids, not indices.
    r"Couldn't infer the batch indices fetched from your dataloader": "predict over an iterable (shard) dataset",
    # CloverCLI adds its own ModelSummary (no "Total Flops: 0"); Lightning announces that it then adds none.
    r"Trainer already configured with model summary callbacks": "clover-pl replaced the default summary itself",
    # The tasks normalise uint8 clips on the device in on_after_batch_transfer (the lean data path), by design for every
    # datamodule; Lightning warns whenever a model hook of that name meets a datamodule.
    r"You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a `LightningDataModule`": (
        "the tasks' device-side normalisation is meant to run for every datamodule"
    ),
}
"""Regular expression (matched at the start of the message) -> why the user cannot act on it."""

_PATTERN = re.compile("|".join(f"(?:{expression})" for expression in KNOWN_NOISE))

# Loggers that Lightning's info messages go through (``rank_zero_info``).
_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def is_known_noise(message: str) -> bool:
    """Whether ``message`` starts like one of :data:`KNOWN_NOISE`."""
    return _PATTERN.match(message.strip()) is not None


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_known_noise(record.getMessage())


_FILTER = _NoiseFilter()


def silence_known_warnings() -> None:
    """Hide the messages of :data:`KNOWN_NOISE` for this process (idempotent; child processes inherit nothing)."""
    for expression in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=expression)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
