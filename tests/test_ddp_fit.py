"""Two CPU processes of DDP through the real command line: the global batch is split and both ranks end equal."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import DISTRIBUTED_VARIABLES
from ddp_probe import state_digest

ROOT = Path(__file__).parents[1]
BATCH = 4  # clips per rank and step


def run_fit(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run the command in its own process group; on timeout kill the group (rank 1 is rank 0's child)."""
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # a hung DDP rank ignores SIGTERM
        output, _ = process.communicate()
        pytest.fail(f"DDP fit did not finish within {timeout:.0f} s:\n{output[-4000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(args, process.returncode, output, None)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_rank_ddp_fit_agrees(synthetic_data: Path, tmp_path: Path) -> None:
    data = synthetic_data
    env = {key: value for key, value in os.environ.items() if key not in DISTRIBUTED_VARIABLES}
    env.update(
        CLOVER_OUT=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]),
        GLOO_SOCKET_IFNAME="lo",  # see tests/conftest.py: bind gloo to loopback
    )
    command = [
        sys.executable,
        "-m",
        "clover_pl",
        "fit",
        "--config=conf/quickstart.yaml",
        "--config=conf/debug/tiny.yaml",
        f"--data.init_args.tokenizer={data}/vocab.txt",
        f"--data.init_args.video_shards={data}/webvid/{{00000..00003}}.tar",
        f"--data.init_args.image_shards={data}/cc3m/{{00000..00001}}.tar",
        f"--data.init_args.validation_shards={data}/validation/{{00004..00005}}.tar",
        f"--data.init_args.batch_size={BATCH}",
        "--data.init_args.num_workers=1",
        "--trainer.strategy=ddp",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.max_steps=3",
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=ddp_probe.RankProbe",
        "--trainer.callbacks+=clover_pl.callbacks.SpeedMonitor",
    ]
    result = run_fit(command, env, timeout=480)
    assert result.returncode == 0, result.stdout[-4000:]

    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record["rank"] == rank
        assert record["world_size"] == 2
        assert record["global_step"] == 3
        assert all(isinstance(loss, float) and math.isfinite(loss) for loss in record["losses"]), record["losses"]
        assert len(record["losses"]) == 3
    # Both ranks end with the same parameters and buffers, and the checkpoint holds them.
    assert ranks[0]["state_sha256"] == ranks[1]["state_sha256"]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert state_digest(checkpoint["state_dict"]) == ranks[0]["state_sha256"]
    # The global batch of a step is split: each rank holds BATCH clips of the same source (video: 4 frames, image: 1),
    # and no sample appears on both ranks or twice.
    seen = []
    for step in range(3):
        first, second = (record["batches"][step] for record in ranks)
        assert first["frames"] == second["frames"]
        assert len(first["ids"]) == len(second["ids"]) == BATCH
        assert not set(first["ids"]) & set(second["ids"]), step
        seen += [(first["frames"], sample) for sample in first["ids"] + second["ids"]]
    assert len(seen) == len(set(seen)) == 3 * 2 * BATCH
    # The loss each rank logs is its own batch's (the ranks' batches differ).
    assert ranks[0]["losses"] != ranks[1]["losses"]
    # Throughput counts both ranks' clips.
    speed = ranks[0]["speed"]
    assert speed["perf/clips_per_s"] > 0
    assert speed["perf/tflops"] > 0
