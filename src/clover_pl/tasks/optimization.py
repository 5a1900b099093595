"""Optimiser and schedule shared by the tasks: AdamW with decay groups and a per-step warmup + cosine schedule.

Two schedule shapes (``lr_schedule``):

* ``"warmup_cosine"`` (the default): linear warmup to the peak, then a cosine over the remaining steps. The peak
  ``lr`` is reached at the end of the warmup, and the cosine spans the steps after it.
* ``"release"``: the official release's shape (mmcv ``CosineAnnealing`` with a linear warmup): the cosine counts from
  step 0 over the whole run, and during the warmup the linear ramp *multiplies* the annealed value. So the peak
  ``lr`` is never quite reached and the rate after the warmup is lower (with a warmup of a tenth of the run, ours is
  17% higher at mid-run). The published-run configs in ``conf/`` ask for it.

The warmup length is a fraction of the run (``warmup_fraction``, resolved from the Trainer's estimated stepping
batches, a tenth of the run in every release config) unless ``warmup_steps`` gives it in steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

# Parameters never decayed besides norms and biases (spec 4): the release excludes Swin's position tables.
NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed")


def decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    lr_scales: dict[str, float] | None = None,
) -> list[dict[str, object]]:
    """Split trainable parameters into a decayed group and a non-decayed one (per learning-rate scale).

    Norm weights and biases (every parameter with at most one dimension) and Swin's relative-position tables are
    not decayed; everything else is, including the video mask token and the fusion position / modality
    embeddings, as in the release.

    Args:
        named_parameters: ``module.named_parameters()``.
        weight_decay: decay of the decayed groups.
        lr_scales: ``{name prefix: learning-rate multiplier}``; parameters under a prefix get their own groups with
            an ``lr_scale`` entry (the VideoQA heads' 10x of the release). None: one scale for all.

    Returns:
        AdamW parameter groups, two per scale (empty ones are dropped); scaled groups carry ``lr_scale``.
    """
    scales = dict(lr_scales or {})
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        scale = next((value for prefix, value in scales.items() if name.startswith(prefix)), 1.0)
        decayed = not (parameter.ndim <= 1 or any(part in name for part in NO_DECAY_NAMES))
        buckets.setdefault((scale, decayed), []).append(parameter)
    groups: list[dict[str, object]] = []
    for scale in sorted({scale for scale, _ in buckets}):
        for decayed in (True, False):
            params = buckets.get((scale, decayed), [])
            if not params:
                continue
            group: dict[str, object] = {"params": params, "weight_decay": weight_decay if decayed else 0.0}
            if scale != 1.0:
                group["lr_scale"] = scale
            groups.append(group)
    return groups


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear from ``min_ratio`` to 1 over the warmup, then cosine down to ``min_ratio``.

    Args:
        step: optimiser steps taken so far.
        warmup_steps: length of the linear warmup.
        total_steps: step at which the cosine reaches ``min_ratio``.
        min_ratio: floor, as a fraction of the peak rate (1e-3 in the release).

    Returns:
        The multiplier of the peak learning rate.
    """
    if step < warmup_steps:
        return min_ratio + (1.0 - min_ratio) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def release_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier of the release: cosine from step 0 over the run, the warmup multiplying it.

    mmcv's ``CosineAnnealingLrUpdaterHook`` with ``warmup="linear"``: the annealed value is
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total)) / 2``; during the warmup it is multiplied by
    ``1 - (1 - step / warmup) * (1 - min_ratio)`` (``warmup_ratio`` = ``min_ratio``, 1e-3 in the release).

    Args:
        step: optimiser steps taken so far.
        warmup_steps: length of the linear warmup.
        total_steps: step at which the cosine reaches ``min_ratio``.
        min_ratio: floor of the cosine and start of the warmup, as a fraction of the peak rate.

    Returns:
        The multiplier of the peak learning rate.
    """
    progress = min(1.0, step / max(1, total_steps))
    annealed = min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if step < warmup_steps:
        return annealed * (1.0 - (1.0 - step / warmup_steps) * (1.0 - min_ratio))
    return annealed


SCHEDULES = {"warmup_cosine": warmup_cosine, "release": release_cosine}
"""Schedule shapes by their ``lr_schedule`` name."""

ScheduleShape = Literal["warmup_cosine", "release"]
"""Values of ``lr_schedule`` (the keys of :data:`SCHEDULES`)."""


@dataclass(frozen=True)
class Optimization:
    """A task's optimiser and learning-rate schedule: one typed group, ``model.init_args.optimization.*``.

    AdamW over decay groups (norms, biases and Swin's position tables not decayed), stepped every optimiser step
    along ``lr_schedule``. Each task gives its own defaults (the release's: pretraining ``lr=5e-5``,
    ``weight_decay=0.005``, ``min_lr_ratio=1e-3``; fine-tuning ``lr=1.2e-5``, ``weight_decay=0.01``,
    ``min_lr_ratio=0``); a config sets only the fields it changes.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW decay of the decayed group.
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_fraction: linear warmup as a fraction of the run's optimiser steps (a tenth in every release config).
        warmup_steps: warmup in optimiser steps; overrides ``warmup_fraction`` when set.
        lr_schedule: ``"warmup_cosine"`` (warmup to ``lr``, then cosine over the remaining steps) or ``"release"``
            (the release's cosine from step 0 with the warmup multiplying it; the published configs).
        min_lr_ratio: start and end of the schedule, as a fraction of ``lr``.
    """

    lr: float = 5e-5
    weight_decay: float = 0.005
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_fraction: float = 0.1
    warmup_steps: int | None = None
    lr_schedule: ScheduleShape = "warmup_cosine"
    min_lr_ratio: float = 1e-3

    def __post_init__(self) -> None:
        """Reject an unknown schedule shape or an impossible warmup before anything is built."""
        key = "model.init_args.optimization"
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"{key}.lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"{key}.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"{key}.warmup_steps must be >= 0 or null, got {self.warmup_steps}")
        object.__setattr__(self, "betas", tuple(self.betas))  # YAML gives a list

    @classmethod
    def of(cls, value: Optimization | dict[str, Any]) -> Optimization:
        """The group itself, or rebuilt from the dict a checkpoint's hyper-parameters hold."""
        return value if isinstance(value, Optimization) else cls(**value)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), for the checkpoint's hyper-parameters (read with ``weights_only``)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values


PRETRAINING = Optimization()
"""The pretraining task's defaults (the release's, at its global batch of 1,024)."""
FINE_TUNING = Optimization(lr=1.2e-5, weight_decay=0.01, min_lr_ratio=0.0)
"""The fine-tuning tasks' defaults (retrieval and VideoQA, at the release's global batch)."""


def resolve_warmup_steps(total_steps: int, warmup_fraction: float, warmup_steps: int | None) -> int:
    """Warmup length in optimiser steps: ``warmup_steps`` when given, else ``round(warmup_fraction * total)``.

    Args:
        total_steps: optimiser steps of the whole run (the Trainer's ``estimated_stepping_batches``).
        warmup_fraction: warmup as a fraction of the run.
        warmup_steps: absolute override; None uses the fraction.

    Returns:
        The warmup length.
    """
    if warmup_steps is not None:
        return int(warmup_steps)
    return int(round(warmup_fraction * total_steps))


def adamw_warmup_cosine(
    module: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float,
    lr_scales: dict[str, float] | None = None,
    schedule: ScheduleShape = "warmup_cosine",
) -> OptimizerLRSchedulerConfig:
    """The ``configure_optimizers`` return value: AdamW (fused when on CUDA) and a per-step LambdaLR.

    Args:
        module: the task whose trainable parameters are optimised.
        lr: peak learning rate.
        weight_decay: AdamW decay of the decayed group.
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_steps: linear warmup length in optimiser steps.
        total_steps: optimiser steps of the whole run.
        min_lr_ratio: start and end of the schedule as a fraction of ``lr``.
        lr_scales: ``{parameter name prefix: multiplier of lr}`` (see :func:`decay_groups`).
        schedule: the schedule shape, a key of :data:`SCHEDULES`.

    Returns:
        ``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": "step"}}``.
    """
    groups = decay_groups(module.named_parameters(), weight_decay, lr_scales)
    for group in groups:
        scale = cast(float, group.pop("lr_scale", 1.0))
        group["lr"] = lr * float(scale)  # the schedule multiplies each group's own peak
    on_cuda = any(p.is_cuda for group in groups for p in group["params"])  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=on_cuda or None)
    shape = SCHEDULES[schedule]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: shape(step, warmup_steps, total_steps, min_lr_ratio)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def configure_optimization(
    task: L.LightningModule, optimization: Optimization, lr_scales: dict[str, float] | None = None
) -> OptimizerLRSchedulerConfig:
    """The ``configure_optimizers`` of a task: its optimisation group over the trainer's whole run.

    The schedule ends at the trainer's last optimiser step (``estimated_stepping_batches``), and the warmup is
    resolved from it.

    Args:
        task: the LightningModule, attached to a trainer.
        optimization: the task's optimiser and schedule.
        lr_scales: ``{parameter name prefix: multiplier of lr}`` (see :func:`decay_groups`).

    Returns:
        The optimiser and its per-step scheduler.
    """
    total = task.trainer.estimated_stepping_batches
    if not math.isfinite(total):
        raise ValueError(
            "the schedule needs a finite run: set trainer.max_steps (or trainer.max_epochs with sized data)"
        )
    warmup = resolve_warmup_steps(int(total), optimization.warmup_fraction, optimization.warmup_steps)
    source = (
        f"warmup_steps={optimization.warmup_steps}"
        if optimization.warmup_steps is not None
        else f"fraction {optimization.warmup_fraction}"
    )
    rank_zero_info(
        f"learning rate: {optimization.lr_schedule} schedule, warmup {warmup} of {int(total)} steps ({source})"
    )
    return adamw_warmup_cosine(
        task,
        lr=optimization.lr,
        weight_decay=optimization.weight_decay,
        betas=optimization.betas,
        eps=optimization.eps,
        warmup_steps=warmup,
        total_steps=int(total),
        min_lr_ratio=optimization.min_lr_ratio,
        lr_scales=lr_scales,
        schedule=optimization.lr_schedule,
    )


def step_seed(seed: int, step: int, micro_batch: int, rank: int) -> int:
    """Seed of a training step's dropout and drop-path draws.

    A function of the optimiser step (so a resumed run repeats an uninterrupted one), the micro-batch within the
    step (so accumulated micro-batches differ; Lightning's batch index itself does not restart the same way after a
    resume) and the rank (so GPUs draw independent masks).
    """
    return ((seed * 1_000_003 + step) * 10_007 + micro_batch) * 1_009 + rank
