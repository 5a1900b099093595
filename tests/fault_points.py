"""Callbacks that inject faults into a run at a chosen training step (used by test_fault_injection.py).

Loaded by child ``clover-pl fit`` processes through ``--trainer.callbacks+=`` with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import signal
import time

import lightning as L


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
