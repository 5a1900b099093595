"""Speed levers and monitors: SpeedMonitor, CompileEncoders, SwinActivationCheckpointing, and host syncs in a step.

A meta tensor has a shape and no data: any read of a value on the host (``.item()``, ``bool(tensor)``, boolean-mask
indexing, which needs the count of True values) raises. Running code on meta tensors is therefore a CPU-side check
that it never waits for the device, the check ``torch.cuda.set_sync_debug_mode`` makes on a GPU.
"""

from types import SimpleNamespace

import pytest
import torch

from clover_pl.callbacks import CompileEncoders, SpeedMonitor, SwinActivationCheckpointing
from clover_pl.flops import task_step_flops
from clover_pl.models import clover_tiny
from clover_pl.tasks import PretrainTask


def meta_batch(batch_size: int = 2, frames: int = 4, length: int = 8) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return {
            "video": torch.empty(batch_size, frames, 3, 32, 32),
            "video_mask": torch.empty(batch_size, 4, 4, dtype=torch.bool),
            "input_ids": torch.empty(batch_size, length, dtype=torch.long),
            "attention_mask": torch.empty(batch_size, length, dtype=torch.long),
            "masked_input_ids": torch.empty(batch_size, length, dtype=torch.long),
            "mlm_labels": torch.empty(batch_size, length, dtype=torch.long),
        }


class RecordingLogger:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((step, metrics))


def test_speed_monitor_logs_from_shapes_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """FLOPs from the batch shapes, time from the host clock: works on meta tensors, so it reads nothing back."""
    with torch.device("meta"):
        task = PretrainTask(clover_tiny(), embed_dim=64)
    logger = RecordingLogger()
    trainer = SimpleNamespace(world_size=2, log_every_n_steps=50, is_global_zero=True, loggers=[logger], global_step=3)
    monitor = SpeedMonitor(peak_tflops=1e-3, window=3)
    clock = iter([100.0, 102.0, 102.0])  # window start, end of the third batch (3 batches in 2 s), next window
    monkeypatch.setattr("clover_pl.callbacks.performance.time.perf_counter", lambda: next(clock))
    monitor.on_train_start(trainer, task)
    video, image = meta_batch(), meta_batch(frames=1)
    for index, batch in enumerate([video, image, video]):
        monitor.on_train_batch_start(trainer, task, batch, index)
        monitor.on_train_batch_end(trainer, task, {}, batch, index)
    flops = 2 * task_step_flops(task, video).total + task_step_flops(task, image).total
    assert len(logger.logged) == 1
    step, metrics = logger.logged[0]
    assert step == 3
    assert metrics["perf/clips_per_s"] == pytest.approx(3 * 2 * 2 / 2.0)  # 3 batches of 2 clips, 2 ranks, 2 s
    assert metrics["perf/tflops"] == pytest.approx(flops / 2.0 / 1e12)
    assert metrics["perf/mfu"] == pytest.approx(metrics["perf/tflops"] / 1e-3)


def test_speed_monitor_logs_nothing_on_other_ranks() -> None:
    with torch.device("meta"):
        task = PretrainTask(clover_tiny(), embed_dim=64)
    logger = RecordingLogger()
    trainer = SimpleNamespace(world_size=2, log_every_n_steps=1, is_global_zero=False, loggers=[logger], global_step=1)
    monitor = SpeedMonitor()
    monitor.on_train_start(trainer, task)
    monitor.on_train_batch_start(trainer, task, meta_batch(), 0)
    monitor.on_train_batch_end(trainer, task, {}, meta_batch(), 0)
    assert logger.logged == []
    assert "perf/mfu" not in monitor.last_metrics  # no peak given
    assert monitor.last_metrics["perf/tflops"] > 0


@pytest.mark.slow
def test_compile_encoders_compiles_in_place() -> None:
    task = PretrainTask(clover_tiny(), embed_dim=64)
    names = list(task.state_dict())
    CompileEncoders(parts=("video", "text")).setup(None, task, "fit")  # type: ignore[arg-type]
    assert task.backbone.video._compiled_call_impl is not None
    assert task.backbone.text._compiled_call_impl is not None
    assert task.backbone.fusion._compiled_call_impl is None
    assert list(task.state_dict()) == names  # checkpoints keep their keys
    with pytest.raises(ValueError, match="unknown encoders"):
        CompileEncoders(parts=("heads",))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compiled_text_encoder_matches_eager() -> None:
    backbone = clover_tiny().eval()
    ids = torch.randint(5, 100, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        eager = backbone.encode_text(ids, mask)
        CompileEncoders(parts=("text",)).setup(None, SimpleNamespace(backbone=backbone), "fit")  # type: ignore[arg-type]
        compiled = backbone.encode_text(ids, mask)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_swin_checkpointing_per_stage_keeps_the_gradients() -> None:
    torch.manual_seed(0)
    task = PretrainTask(clover_tiny(), embed_dim=64).train()
    video = torch.randn(2, 4, 3, 32, 32)

    def gradients() -> list[torch.Tensor]:
        task.zero_grad(set_to_none=True)
        task.backbone.encode_video(video).square().mean().backward()
        return [p.grad.clone() for p in task.backbone.video.parameters() if p.grad is not None]

    plain = gradients()
    SwinActivationCheckpointing(stages=[1]).setup(None, task, "fit")  # type: ignore[arg-type]
    assert [layer.activation_checkpointing for layer in task.backbone.video.layers] == [False, True]
    for ours, reference in zip(gradients(), plain, strict=True):
        torch.testing.assert_close(ours, reference)
    SwinActivationCheckpointing().setup(None, task, "fit")  # type: ignore[arg-type]
    assert all(layer.activation_checkpointing for layer in task.backbone.video.layers)
    with pytest.raises(ValueError, match="out of range"):
        SwinActivationCheckpointing(stages=[2]).setup(None, task, "fit")  # type: ignore[arg-type]


@pytest.fixture
def autocast_on_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.autocast has no meta device type; the losses' ``autocast(enabled=False)`` blocks become CPU ones."""
    original = torch.autocast

    class Autocast(original):  # type: ignore[misc, valid-type]
        def __init__(self, device_type: str, *args: object, **kwargs: object) -> None:
            super().__init__("cpu" if device_type == "meta" else device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", Autocast)


@pytest.mark.usefixtures("autocast_on_meta")
def test_video_fusion_and_alignment_read_nothing_back() -> None:
    """Both video passes, both fusions and the tri-modal losses, forward and backward, with no host sync."""
    with torch.device("meta"):
        task = PretrainTask(clover_tiny(), embed_dim=64).train()
        text_states = torch.randn(2, 8, 32, requires_grad=True)
    batch = meta_batch()
    backbone, heads = task.backbone, task.heads
    video_tokens = backbone.encode_video(batch["video"])
    masked_tokens = backbone.encode_video(batch["video"], batch["video_mask"])
    fused_text = backbone.fuse(video_tokens, text_states, batch["attention_mask"])
    fused_video = backbone.fuse(masked_tokens, text_states, batch["attention_mask"])
    video, text = heads.project_video(video_tokens), heads.project_text(text_states)
    masked_video = heads.project_video(masked_tokens)
    loss = task.objective.alignment(video, text, text, task.fused_heads.video(fused_video.cls))["loss"]
    loss = loss + task.objective.alignment(text, video, masked_video, task.fused_heads.text(fused_text.cls))["loss"]
    loss.backward()


@pytest.mark.usefixtures("autocast_on_meta")
def test_pretraining_step_reads_nothing_back() -> None:
    with torch.device("meta"):
        task = PretrainTask(clover_tiny(), embed_dim=64).train()
    task.compute_losses(meta_batch())["loss"].backward()
