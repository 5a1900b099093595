"""Skip accounting of a training run: counts per reason, the skip-rate guard, saved in every checkpoint.

The data workers count what they skip and send the counts with their batches (the only channel out of a DataLoader
worker); the source mixer takes them off each batch before the trainer sees it and adds them here. The ledger is
part of the mixer's state, so a checkpoint holds the counts of exactly the batches trained before it and a resumed
run continues the rate instead of restarting it.

A skip counts against ``max_skip_rate`` when data is damaged or unusable (a corrupt video, an empty caption, a
truncated shard's lost samples). Failed downloads that video2dataset keeps as ``.json`` + ``.txt`` rows are the
tool's record of a dead URL, not damaged data: they are counted under their own reason and never against the rate.
"""

from __future__ import annotations

from typing import Any

from clover_pl.errors import UserError

NOT_COUNTED = ("failed_download",)
"""Reasons counted and logged, but not against the skip rate."""


class SkipRateExceeded(UserError):
    """More than ``max_skip_rate`` of the samples read were skipped."""


class EmptyEpoch(UserError):
    """An epoch ended without a single batch: every sample of the shards was skipped, or there were too few."""


class SkipLedger:
    """Skips per reason for the running epoch and the whole run, and the run's skip rate.

    Args:
        reasons: every reason that can be counted (a fixed list, so that every rank logs the same keys).
        max_skip_rate: stop when more than this fraction of the samples read so far were skipped.
        check_after: samples read before the rate is checked.
    """

    def __init__(self, reasons: tuple[str, ...], max_skip_rate: float = 0.2, check_after: int = 1000) -> None:
        if not 0.0 <= max_skip_rate <= 1.0:
            raise ValueError(f"max_skip_rate must lie in [0, 1], got {max_skip_rate}")
        self.reasons = reasons
        self.max_skip_rate = max_skip_rate
        self.check_after = check_after
        self.epoch: dict[str, int] = {}
        self.run: dict[str, int] = {}
        self.read = 0  # samples read this run: trained on, plus counted skips
        self.skipped = 0  # counted skips this run

    def add(self, used: int, skipped: dict[str, int]) -> None:
        """Count a batch of ``used`` samples and the skips that came with it (``used`` is 0 for a worker's tally)."""
        for reason, count in skipped.items():
            self.epoch[reason] = self.epoch.get(reason, 0) + int(count)
            self.run[reason] = self.run.get(reason, 0) + int(count)
        counted = sum(int(count) for reason, count in skipped.items() if reason not in NOT_COUNTED)
        self.read += used + counted
        self.skipped += counted

    @property
    def rate(self) -> float:
        """Counted skips over samples read, this run."""
        return self.skipped / max(1, self.read)

    def check(self) -> None:
        """Raise :class:`SkipRateExceeded` when the rate passes ``max_skip_rate`` (after ``check_after`` samples)."""
        if self.read >= self.check_after and self.rate > self.max_skip_rate:
            raise SkipRateExceeded(
                f"stopping: {self.skipped} of {self.read} samples read were skipped ({self.rate:.1%}, above "
                f"data.init_args.max_skip_rate={self.max_skip_rate}); skipped by reason this run: "
                f"{self.describe(self.run)}. Check the shards (clover-pl prepare ... --verify)."
            )

    def new_epoch(self) -> None:
        """Start the epoch's counts from zero (the run's counts go on)."""
        self.epoch = {}

    @staticmethod
    def describe(counts: dict[str, int]) -> str:
        """Counts as ``{reason: n}``, failed downloads marked as not counted against the rate."""
        shown = {reason: count for reason, count in sorted(counts.items()) if count}
        text = str({reason: count for reason, count in shown.items() if reason not in NOT_COUNTED})
        for reason in NOT_COUNTED:
            if shown.get(reason):
                text += f", {reason}: {shown[reason]} (not counted against the rate)"
        return text

    def state_dict(self) -> dict[str, Any]:
        """The counts, for a checkpoint."""
        return {"epoch": dict(self.epoch), "run": dict(self.run), "read": self.read, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any], same_epoch: bool = True) -> None:
        """Restore the counts; the epoch's only when the run resumes inside the same epoch."""
        self.run = {str(reason): int(count) for reason, count in state.get("run", {}).items()}
        self.epoch = {str(reason): int(count) for reason, count in state.get("epoch", {}).items()} if same_epoch else {}
        self.read, self.skipped = int(state.get("read", 0)), int(state.get("skipped", 0))
