"""clover-pl: PyTorch Lightning framework for Clover video-language pretraining."""

__version__ = "0.1.0"
