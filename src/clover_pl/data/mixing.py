"""Mixing the pretraining sources (WebVid videos, CC3M images) into one stream of single-source batches.

Each optimiser step takes a batch from one source (spec 4). ``alternate`` takes them in turn; ``weighted`` draws
the source of every step with probabilities proportional to ``weights``. Either way, in the default exactly-once
mode an epoch ends when every source has run out (each sample once per epoch): the release instead restarted the
shorter loader and drew both step slots from it, so the tail of every epoch came from one source and the longer
source's tail was dropped (spec 7). In resampled mode the sources never run out and an epoch is ``epoch_batches``
steps.

The mixer is resumable in the middle of an epoch: its ``state_dict`` (saved by Lightning in every checkpoint)
records, for the batch the trainer will train next, the epoch, the step index, whose turn it is, which sources are
exhausted, each source loader's ``StatefulDataLoader`` state (every worker's position in its stream), and the skip
counts of the batches before it (:class:`~clover_pl.data.skip_ledger.SkipLedger`).

Skip counts ride on each batch out of the data workers; the mixer takes them off (the trainer never sees them), adds
them to the ledger, checks the skip rate, and ends an epoch that produced no batch with an error that names the
shards and the counts (otherwise the trainer would start empty epochs forever).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

import torch
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader

from clover_pl.data.pipeline import TALLY
from clover_pl.data.skip_ledger import EmptyEpoch, SkipLedger, SkipRateExceeded

Schedule = Literal["alternate", "weighted"]
"""How sources share the steps: one batch from each in turn, or each step's source drawn by weight."""

SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)
SNAPSHOTS_KEPT = 16  # states of recent steps; the trainer is at most its prefetch depth (1) behind the mixer


class SourceMixer:
    """One epoch of batches from several source loaders, by schedule; Lightning-stateful.

    Args:
        make_loaders: epoch -> one ``StatefulDataLoader`` per source, for that epoch's order.
        current_epoch: the trainer's epoch (so a resumed run continues the right epoch).
        trained_batches: batches of this epoch the trainer has finished, or None outside a trainer (then every
            batch handed out counts as trained).
        schedule: ``"alternate"`` or ``"weighted"``.
        weights: per-source weights of the ``weighted`` schedule (None: equal).
        epoch_batches: stop an epoch after this many batches (required when the sources are resampled).
        seed: seed of the weighted draws (combined with epoch and step, so resuming needs no generator state).
        ledger: where the skip counts go (None: a ledger with every reason the batches carry, default rate limit).
        report: called at the end of every epoch with (epoch, skip counts summed over ranks).
    """

    def __init__(
        self,
        make_loaders: Callable[[int], list[StatefulDataLoader]],
        current_epoch: Callable[[], int],
        trained_batches: Callable[[], int | None],
        schedule: Schedule = "alternate",
        weights: list[float] | None = None,
        epoch_batches: int | None = None,
        seed: int = 0,
        ledger: SkipLedger | None = None,
        report: Callable[[int, dict[str, int]], None] | None = None,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
        if weights is not None and (any(w < 0 for w in weights) or sum(weights) <= 0):
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.make_loaders = make_loaders
        self.current_epoch = current_epoch
        self.trained_batches = trained_batches
        self.schedule = schedule
        self.weights = weights
        self.epoch_batches = epoch_batches
        self.seed = seed
        self.ledger = ledger if ledger is not None else SkipLedger(())
        self.report = report
        self._resume: dict[str, Any] | None = None
        self._snapshots: dict[int, dict[str, Any]] = {}
        self._live: dict[str, Any] | None = None  # loaders, turn and exhausted flags of the running epoch
        self._epoch = 0
        self._handed_out = 0
        self._trainer_offset = 0
        self._iterated = False

    def _pick(self, epoch: int, index: int, turn: int, exhausted: list[bool]) -> int:
        live = [source for source in range(len(exhausted)) if not exhausted[source]]
        if self.schedule == "alternate":
            return min(live, key=lambda source: (source - turn) % len(exhausted))
        weights = self.weights or [1.0] * len(exhausted)
        if len(weights) != len(exhausted):
            raise ValueError(f"{len(weights)} weights for {len(exhausted)} sources")
        live_weights = [weights[source] for source in live]
        if sum(live_weights) <= 0:  # only zero-weight sources are left: they finish the epoch, in turn
            return min(live, key=lambda source: (source - turn) % len(exhausted))
        return random.Random(f"{self.seed}:{epoch}:{index}").choices(live, weights=live_weights)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield one epoch's batches (continuing a restored position when one was loaded).

        The data's epoch is the mixer's own: the restored one (the next after a finished one), else the one after
        the previous iteration, else the trainer's. Lightning's epoch counter does not follow the data on a resume:
        from a checkpoint written when ``max_steps`` stopped a run mid-epoch it counts the epoch as done, and from a
        step checkpoint at an epoch's last batch it skips an epoch number; following it would drop or reorder data.
        """
        resume, self._resume = self._resume, None
        if resume is not None:
            epoch = resume["epoch"] + (1 if resume.get("finished") else 0)
        else:
            epoch = self._epoch + 1 if self._iterated else self.current_epoch()
        self._iterated = True
        state = resume if resume is not None and not resume.get("finished") else None
        loaders = self.make_loaders(epoch)
        self.ledger.new_epoch()
        if resume is not None and "skips" in resume:  # the run's counts go on, also into a new epoch
            self.ledger.load_state_dict(resume["skips"], same_epoch=state is not None)
        exhausted, turn, index = [False] * len(loaders), 0, 0
        if state is not None:
            exhausted, turn, index = list(state["exhausted"]), state["turn"], state["index"]
            for loader, loader_state in zip(loaders, state["loaders"], strict=True):
                loader.load_state_dict(loader_state)
        iterators = [iter(loader) for loader in loaders]
        self._epoch, self._snapshots, self._handed_out = epoch, {}, index
        # The trainer's batch count where this iteration starts is `index`, except after the resumes above, where
        # Lightning's count carries on from the checkpoint while the data starts an epoch: map by the difference.
        trained = self.trained_batches()
        self._trainer_offset = 0 if trained is None else trained - index
        live = {"loaders": loaders, "turn": turn, "exhausted": exhausted}
        self._live = live
        while True:
            batch, source, snapshot, error = None, -1, None, None
            while (
                batch is None
                and error is None
                and not all(exhausted)
                and (self.epoch_batches is None or index < self.epoch_batches)
            ):
                source = self._pick(epoch, index, turn, exhausted)
                snapshot = self._position(index)
                try:
                    batch = next(iterators[source])
                except StopIteration:
                    exhausted[source] = True
                    continue
                skipped = batch.pop("skipped", {})
                if TALLY in batch:  # a worker that produced no batch: its skips only
                    self.ledger.add(0, skipped)
                    batch = None
                else:
                    self.ledger.add(batch_size(batch), skipped)
                try:
                    self.ledger.check()
                except SkipRateExceeded as exceeded:
                    error = exceeded
            # Ranks agree on going on and on stopping, so that no rank is left waiting in a collective.
            have, stop = ranks_agree(have=batch is not None, stop=error is not None)
            if stop:
                raise error or SkipRateExceeded(
                    "stopping: another rank's skip rate passed data.init_args.max_skip_rate (its message names the "
                    f"counts); this rank: {self.ledger.skipped} of {self.ledger.read} samples skipped"
                )
            if not have:
                break
            # `have`: every rank holds a batch, this one included.
            assert batch is not None
            assert snapshot is not None
            self._snapshots[index] = snapshot
            self._snapshots.pop(index - SNAPSHOTS_KEPT, None)
            turn, index = (source + 1) % len(loaders), index + 1
            live["turn"], self._handed_out = turn, index
            yield batch
        self._live = None
        self._end_epoch(epoch, index, loaders)

    def _end_epoch(self, epoch: int, index: int, loaders: list[StatefulDataLoader]) -> None:
        """Report the epoch's skips (summed over ranks); an epoch without a batch is an error."""
        # The fixed reasons are summed over ranks (every rank reduces the same list); any other is this rank's own.
        reasons = list(self.ledger.reasons)
        counts = dict(zip(reasons, sum_over_ranks([self.ledger.epoch.get(r, 0) for r in reasons]), strict=True))
        counts.update({reason: n for reason, n in self.ledger.epoch.items() if reason not in counts})
        if index == 0 and self.epoch_batches != 0:
            urls = [url for loader in loaders for url in getattr(loader.dataset, "urls", [])]
            shown = ", ".join(urls[:8]) + (f", ... ({len(urls)} shards)" if len(urls) > 8 else "")
            raise EmptyEpoch(
                f"epoch {epoch} produced no batch: every sample of the shards was skipped or there were fewer "
                f"samples than a batch (shards: {shown}); skipped by reason, all ranks: "
                f"{SkipLedger.describe(counts) if any(counts.values()) else 'none'}. "
                "Check the shards (clover-pl prepare ... --verify)."
            )
        if self.report is not None:
            self.report(epoch, counts)

    def _position(self, index: int) -> dict[str, Any]:
        """The running epoch's state now, as the position of batch ``index``."""
        live = self._live
        assert live is not None
        return {
            "epoch": self._epoch,
            "index": index,
            "turn": live["turn"],
            "exhausted": list(live["exhausted"]),
            "loaders": [loader.state_dict() for loader in live["loaders"]],
            "skips": self.ledger.state_dict(),
        }

    def state_dict(self) -> dict[str, Any]:
        """The position of the next batch to train: what a checkpoint needs to continue this epoch exactly."""
        if self._resume is not None:  # restored, not iterated yet: the restored position is still the position
            return self._resume
        trained = self.trained_batches()
        trained = self._handed_out if trained is None else trained - self._trainer_offset
        if trained in self._snapshots:  # the trainer is behind the mixer (Lightning prefetches a batch)
            return self._snapshots[trained]
        if self._live is not None and trained == self._handed_out:  # paused right after the last batch handed out
            return self._position(trained)
        # The epoch is over.
        return {"epoch": self._epoch, "index": trained, "finished": True, "skips": self.ledger.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` at the next iteration of the same epoch."""
        self._resume = state


def batch_size(batch: dict[str, Any]) -> int:
    """Samples in a batch: the length of its first tensor."""
    return next(len(value) for value in batch.values() if isinstance(value, torch.Tensor))


def sum_over_ranks(values: list[int]) -> list[int]:
    """Element-wise sum over all ranks (the values themselves without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(values, dtype=torch.long, device=device)
    dist.all_reduce(tensor)
    return [int(value) for value in tensor.tolist()]


def all_ranks_have_a_batch(have: bool) -> bool:
    """True when every rank has a next batch; ranks agree, so they end an epoch on the same step.

    Bad samples are skipped, so ranks can run out of batches at different steps; a rank that stopped while the
    others went on would leave them waiting in their next collective forever. One all-reduce per step prevents it:
    the epoch ends for everyone when the first rank runs out (the others' last batches are left for the next epoch's
    reshuffle).
    """
    return ranks_agree(have=have)[0]


def ranks_agree(*, have: bool, stop: bool = False) -> tuple[bool, bool]:
    """(every rank has a next batch, some rank must stop the run): one all-reduce for both."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return have, stop
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flags = torch.tensor([1 if have else 0, 0 if stop else 1], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    return bool(flags[0].item()), not bool(flags[1].item())
