"""A test-only callback that records what each DDP rank saw and ended with (used by tests/test_ddp_fit.py).

Each rank writes ``<trainer.default_root_dir>/rank<global rank>.json`` when training ends: the sample ids and frame
count of every batch, the logged loss of every step, a SHA-256 of its final parameters and buffers, and the last
figures of ``SpeedMonitor`` when one runs.
"""

import hashlib
import json
import math
import os
from typing import Any

import lightning as L
import torch


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and bytes of a state dict's tensors, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class RankProbe(L.Callback):
    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        self.batches.append({"ids": batch["id"].tolist(), "frames": int(batch["video"].shape[1])})

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss"]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitors = [c for c in trainer.callbacks if type(c).__name__ == "SpeedMonitor"]
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "batches": self.batches,
            "losses": [loss if math.isfinite(loss) else str(loss) for loss in self.losses],
            "state_sha256": state_digest(pl_module.state_dict()),
            "speed": monitors[0].last_metrics if monitors else None,
        }
        path = os.path.join(trainer.default_root_dir, f"rank{trainer.global_rank}.json")
        with open(path, "w") as stream:
            json.dump(record, stream)
