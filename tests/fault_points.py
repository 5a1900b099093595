"""Callbacks that inject faults into a run at a chosen training step (used by test_fault_injection.py).

Loaded by child ``clover-pl fit`` processes through ``--trainer.callbacks+=`` with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import time

import lightning as L
import torch


class SignalAt(L.Callback):
    """Send ``signal_name`` to this process when training step ``step`` has run (``global_step == step``).

    Callbacks run before checkpoint callbacks (Lightning orders those last), so the step's own save has not happened.
    ``process_group`` sends it to the whole process group (data workers included), as a cluster scheduler does.
    """

    def __init__(self, step: int, signal_name: str = "SIGKILL", process_group: bool = False) -> None:
        self.step = step
        self.signal_name = signal_name
        self.process_group = process_group

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        number = getattr(signal, self.signal_name)
        if self.process_group:
            os.killpg(os.getpgid(0), number)
        else:
            os.kill(os.getpid(), number)
        time.sleep(0.5)  # let the signal arrive before the loop goes on (a handler runs between bytecodes)


class FullDiskAt(L.Callback):
    """From training step ``step`` on, every ``torch.save`` writes a third of its bytes, then fails with ENOSPC.

    This is what a checkpoint disk that fills up during a save looks like to the writer.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        real_save = torch.save

        def full_disk(obj, stream, *args, **kwargs) -> None:
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            stream.write(data[: len(data) // 3])
            stream.flush()
            raise OSError(errno.ENOSPC, "No space left on device", getattr(stream, "name", None))

        torch.save = full_disk
