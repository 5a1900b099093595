"""Pretraining step throughput, and the Lightning step's overhead over a bare PyTorch loop on the same batches.

Both loops run the same PretrainTask.compute_losses, AdamW over the same decay groups, the same per-step schedule
and gradient clipping; batches are pre-built tensors, so data loading is not measured.

    python bench/pretrain_step.py                        # tiny (batch 32, 4 x 32 px) and base (batch 2, 8 x 224 px)
    python bench/pretrain_step.py --presets tiny --steps 60
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402

from clover_pl.models import clover_backbone  # noqa: E402
from clover_pl.tasks import PretrainTask  # noqa: E402

SETTINGS = {
    "tiny": {"batch": 32, "frames": 4, "size": 32, "grid": 4, "length": 32, "embed_dim": 64},
    "base": {"batch": 2, "frames": 8, "size": 224, "grid": 7, "length": 30, "embed_dim": 768},
}


def make_batch(preset: str, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A pretraining batch of random clips and captions with 30% of the positions masked."""
    s = SETTINGS[preset]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (s["batch"], s["length"]), generator=generator)
    chosen = torch.rand(ids.shape, generator=generator) < 0.3
    cells = torch.zeros(s["batch"], s["grid"] * s["grid"], dtype=torch.bool)
    cells[:, : max(1, s["grid"] * s["grid"] // 5)] = True
    batch = {
        "video": torch.randn(s["batch"], s["frames"], 3, s["size"], s["size"], generator=generator),
        "video_mask": cells.view(s["batch"], s["grid"], s["grid"]),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "masked_input_ids": ids.masked_fill(chosen, 4),
        "mlm_labels": ids.masked_fill(~chosen, -100),
    }
    return {key: value.to(device) for key, value in batch.items()}


def make_task(preset: str, steps: int) -> PretrainTask:
    torch.manual_seed(0)
    return PretrainTask(clover_backbone(preset), embed_dim=SETTINGS[preset]["embed_dim"], warmup_steps=steps)


def bare_loop(preset: str, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step of a hand-written loop."""
    from clover_pl.tasks.optimization import adamw_warmup_cosine

    task = make_task(preset, steps).to(device).train()
    batch = make_batch(preset, task.backbone.text.vocab_size, device)
    config = adamw_warmup_cosine(task, 5e-5, 0.005, (0.9, 0.98), 1e-8, steps, steps + warmup, 1e-3)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        torch.manual_seed(step)  # what step_seeded does in the task
        optimizer.zero_grad(set_to_none=True)
        loss = task.compute_losses(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 15.0)
        optimizer.step()
        scheduler.step()
    return (time.perf_counter() - start) / steps


class _Repeat:
    """The same batch ``count`` times: an iterable Lightning takes as one train dataloader."""

    def __init__(self, batch: dict[str, torch.Tensor], count: int) -> None:
        self.batch, self.count = batch, count

    def __iter__(self):  # noqa: ANN204
        return iter([self.batch] * self.count)


class _Timer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.end = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, *args: object) -> None:
        self.end = time.perf_counter()


def lightning_loop(preset: str, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step of Trainer.fit on the same task and batches."""
    task = make_task(preset, steps)
    batch = make_batch(preset, task.backbone.text.vocab_size, torch.device("cpu"))
    timer = _Timer(warmup)
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        max_steps=warmup + steps,
        gradient_clip_val=15.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(task, train_dataloaders=_Repeat(batch, warmup + steps))
    return (timer.end - timer.start) / steps


def main() -> None:
    """Print clips/s of both loops and the Lightning overhead, per preset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"], choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 40 tiny, 3 base)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"device={device} ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, fp32, full objective (2 video, 2 text, 2 fusion passes)"
    )
    header = ["bare s/step", "bare clips/s", "PL s/step", "PL clips/s", "overhead"]
    print(f"{'preset':6} {'batch':>5} " + " ".join(f"{name:>12}" for name in header))
    for preset in args.presets:
        steps = args.steps or (40 if preset == "tiny" else 3)
        # Alternate the two loops twice and keep each one's best, so background noise hits both alike.
        bare = min(bare_loop(preset, steps, args.warmup, device) for _ in range(2))
        lightning = min(lightning_loop(preset, steps, args.warmup, device) for _ in range(2))
        batch = SETTINGS[preset]["batch"]
        print(
            f"{preset:6} {batch:5d} {bare:12.4f} {batch / bare:12.2f} {lightning:12.4f} {batch / lightning:12.2f} "
            f"{100 * (lightning / bare - 1):11.1f}%"
        )


if __name__ == "__main__":
    main()
