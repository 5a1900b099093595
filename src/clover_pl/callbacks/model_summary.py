"""The model summary printed when fitting starts, without Lightning's ``Total Flops: 0`` line.

Lightning 2.6 counts FLOPs only through a model's ``example_input_array``, which the tasks do not have (a batch is a
dict of clips and captions), so its summary ends with ``0  Total Flops``. The FLOPs of a real step are logged while
training instead (``perf/tflops`` from :class:`clover_pl.callbacks.SpeedMonitor`, counted by
:mod:`clover_pl.flops`).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table
from lightning.pytorch.utilities.rank_zero import rank_zero_info


class ModelSummary(LightningModelSummary):
    """Lightning's ``ModelSummary`` (same arguments); the FLOPs line only when FLOPs were counted."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        """Print the table; drop the FLOPs column and line (``Total Flops``) when nothing was counted."""
        if not total_flops:
            summary_data = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *summary_data
        )
        if not total_flops:
            table = table.rsplit("\n", 1)[0]
        rank_zero_info("\n" + table)
