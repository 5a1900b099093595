"""What a weight load did, key by key: the report every loader (Swin, BERT, heads, ``init_from``) returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What a checkpoint load did, key by key.

    Args:
        source: path of the checkpoint.
        loaded: model keys copied from the file (interpolated ones included).
        skipped: file or model keys left alone, each with the reason.
        interpolated: model keys whose tensor was resized to fit the model.
        missing: model keys the file lacks and that were tolerated (kept at their initialisation).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    interpolated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line with the counts and the source path."""
        return (
            f"loaded {len(self.loaded)} tensors ({len(self.interpolated)} interpolated), "
            f"skipped {len(self.skipped)}, missing {len(self.missing)} from {self.source}"
        )
