"""clover-pl: PyTorch Lightning framework for Clover video-language pretraining.

``clover_pl.load_checkpoint(path) -> (backbone, heads)`` loads any clover-pl checkpoint for inference (see
:mod:`clover_pl.inference`).
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import clover_pl` (and `clover-pl --version`) stays light.
    if name == "load_checkpoint":
        from clover_pl.inference import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'clover_pl' has no attribute {name!r}")
