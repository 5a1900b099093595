import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Gloo binds to the address the hostname resolves to. On a machine whose hostname does not resolve (CI's), it falls
# back to an address the peers cannot reach and the rendezvous hangs: every test process group binds to loopback.
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT directory as `save_pretrained` writes it (weights, config, vocab), made offline."""
    from transformers import BertConfig, BertForPreTraining

    path = tmp_path_factory.mktemp("bert")
    vocab_size = len((ASSETS / "vocab.txt").read_text().split())
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(1)
    model = BertForPreTraining(config)
    # Give the MLM head and norms non-default values so that copies are distinguishable from fresh inits.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(path)
    shutil.copy(ASSETS / "vocab.txt", path / "vocab.txt")
    return str(path)


DISTRIBUTED_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT", "WORKER")


@pytest.fixture
def run_ranks(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Run ``fn(rank, *args)`` in ``nprocs`` spawned daemon processes; kill them all if any fails or time runs out.

    ``torch.multiprocessing.spawn`` waits forever for a hung rank and leaves non-daemon children that block the
    interpreter's exit, so one broken rendezvous would hang the whole test run rather than fail one test.
    """
    import torch.multiprocessing as mp

    for name in DISTRIBUTED_VARIABLES:  # only what the test sets may reach the rendezvous
        monkeypatch.delenv(name, raising=False)

    def run(fn: Callable[..., None], args: tuple = (), nprocs: int = 2, timeout: float = 90.0) -> None:
        context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, daemon=True, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{nprocs} ranks did not finish within {timeout:.0f} s")
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join(5)

    return run


@pytest.fixture
def pretrain_checkpoint(tmp_path: Path):
    """A tiny PretrainTask (embed_dim 16) saved as a Lightning-style checkpoint: (path, task)."""
    from clover_pl.models import clover_tiny
    from clover_pl.tasks import PretrainTask

    torch.manual_seed(3)
    pretrain = PretrainTask(clover_tiny(), embed_dim=16)
    path = tmp_path / "pretrain.ckpt"
    torch.save({"state_dict": pretrain.state_dict(), "global_step": 7}, path)
    return path, pretrain


@pytest.fixture
def tiny_backbone():
    from clover_pl.models import clover_tiny

    return clover_tiny().eval()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset: 4 video shards x 4, 2 image shards x 4, 2 held-out shards x 4, 32 px clips."""
    from clover_pl.prepare.synthetic import prepare_synthetic

    out = tmp_path_factory.mktemp("synthetic")
    prepare_synthetic(
        str(out),
        seed=0,
        train_videos=16,
        train_images=8,
        heldout_videos=8,
        size=32,
        frames=8,
        samples_per_shard=4,
        heldout_samples_per_shard=4,
    )
    return out


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The README's main job, as it ships: render the synthetic data, run conf/quickstart.yaml. Slow (~3 min).

    Session-wide, so the pretraining, VideoQA and sweep tests that start from its checkpoint share one run.
    Returns (the synthetic data folder, the run folder with ``checkpoints/last.ckpt``).
    """
    from clover_pl.cli import main

    root = tmp_path_factory.mktemp("quickstart")
    data, out = root / "synthetic", root / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "synthetic", "--out", str(data)])
    assert exit_info.value.code == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOVER_DATA", str(data))
        patch.setenv("CLOVER_OUT", str(out))
        main(["fit", "--config=conf/quickstart.yaml", "--trainer.enable_progress_bar=false"])
    return data, out
