"""A backbone description written before an argument was renamed still builds (old checkpoints keep loading)."""

import torch

from clover_pl.models import clover_tiny
from clover_pl.models.architecture import build_module


def test_a_description_with_the_old_swin_argument_names_builds_the_same_backbone() -> None:
    current = clover_tiny().architecture()
    description = clover_tiny().architecture()
    video = description["init_args"]["video_encoder"]["init_args"]
    video["checkpoint"] = video.pop("pretrained_path")
    video["use_checkpoint"] = video.pop("activation_checkpointing")
    torch.manual_seed(0)
    old = build_module(description)
    torch.manual_seed(0)
    new = build_module(current)
    assert old.state_dict().keys() == new.state_dict().keys()
    for name, tensor in new.state_dict().items():
        torch.testing.assert_close(old.state_dict()[name], tensor)
