"""The picture a pretraining run ends with: held-out R@1/5/10 against the step, and a few retrieval examples."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from clover_pl.callbacks.drawing import RetrievalExample
from clover_pl.callbacks.validation_gallery import GalleryCollector, ValidationGallery
from clover_pl.files import atomic_open
from clover_pl.tasks.base import task_results
from clover_pl.trainer_attributes import attached_datamodule


class RetrievalFigure(GalleryCollector):
    """Write one PNG when fitting ends and print its path (global rank zero).

    The PNG shows held-out text-to-video R@1/5/10 at every validation, and the last validation's top-5 clips for a
    few caption queries.

    Needs a task whose ``results["val"]`` holds (``t2v_r@1``, ``t2v_r@5``, ``t2v_r@10``, ``chance_r@1``) and, for the
    examples, ``last_validation_embeddings``, as :class:`clover_pl.tasks.PretrainTask`. The curve's points are kept
    in the checkpoints, so a resumed run draws the whole curve.

    Args:
        path: the PNG to write (its folder is created).
        num_queries: caption queries shown.
        top_k: clips per query.
    """

    def __init__(self, path: str, num_queries: int = 3, top_k: int = 5) -> None:
        self.path = path
        self.num_queries = num_queries
        self.top_k = top_k
        self.history: list[dict[str, float]] = []
        self.gallery = ValidationGallery(max_clips=1024)
        self.examples: list[RetrievalExample] = []
        self.thumbnails: dict[int, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        """The curve so far (saved in checkpoints)."""
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the curve of a resumed run."""
        self.history = list(state_dict.get("history", []))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Add the validation's point to the curve; rank the example queries."""
        metrics = task_results(pl_module, "val")
        if trainer.sanity_checking or not trainer.is_global_zero or not metrics:
            return
        point = {"step": float(trainer.global_step)}
        point.update({name: float(metrics[name]) for name in ("t2v_r@1", "t2v_r@5", "t2v_r@10", "chance_r@1")})
        self.history = [entry for entry in self.history if entry["step"] < point["step"]] + [point]
        embeddings = getattr(pl_module, "last_validation_embeddings", None)
        tokenizer = _tokenizer(trainer)
        if embeddings and tokenizer is not None:
            self.examples = self.gallery.examples(embeddings, tokenizer, self.num_queries, self.top_k)
            self.thumbnails = dict(self.gallery.thumbnails)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the PNG and print where it is."""
        if not trainer.is_global_zero or not self.history:
            return
        write_retrieval_figure(self.path, self.history, self.examples, self.thumbnails, trainer.global_step)
        rank_zero_info(f"retrieval figure: {self.path}")


def write_retrieval_figure(
    path: str,
    history: list[dict[str, float]],
    examples: list[RetrievalExample],
    thumbnails: dict[int, Any],
    step: int,
) -> None:
    """Draw the curves (left) and the examples (right) into one PNG, written atomically.

    Args:
        path: the PNG.
        history: one dict per validation: ``step``, ``t2v_r@1``, ``t2v_r@5``, ``t2v_r@10``, ``chance_r@1``.
        examples: queries of the last validation.
        thumbnails: (H, W, 3) uint8 middle frame of each clip, by id.
        step: the training step of the examples.
    """
    from matplotlib.figure import Figure

    from clover_pl.callbacks.drawing import draw_recall_curves, draw_retrieval_examples

    rows = max(1, len(examples))
    columns = max((len(example.top_ids) for example in examples), default=0) + 1
    figure = Figure(figsize=(5.0 + 1.35 * columns, max(3.8, 1.55 * rows + 0.5)), dpi=110, layout="constrained")
    if examples:
        left, right = figure.subfigures(1, 2, squeeze=False, width_ratios=[5.0, 1.35 * columns])[0]
        draw_retrieval_examples(right, examples, thumbnails, step)
        right.suptitle(f"held-out queries after {step} steps: top clips (green: the true clip)", fontsize=10)
    else:
        left = figure
    draw_recall_curves(left, history, history[-1].get("chance_r@1"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb", durable=False) as stream:
        figure.savefig(stream, format="png")


def _tokenizer(trainer: L.Trainer) -> Any:
    path = getattr(getattr(attached_datamodule(trainer), "hparams", None), "tokenizer", None)
    if not isinstance(path, str):
        return None
    from clover_pl.data.text import load_tokenizer

    return load_tokenizer(path)
