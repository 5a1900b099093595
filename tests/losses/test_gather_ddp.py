"""Two real CPU processes (gloo) against one process holding the whole batch.

Why the relations below hold, with W ranks each holding a slice of the global batch and a gradient-summing gather:

* every rank gathers the same global features, so every rank's loss is the single-process loss L of the full batch;
* the gather's backward sums what all W ranks' losses send to a slice, so rank r's input gradient is W * dL/dx_r;
* rank r's parameter gradient is therefore W * (the part of dL/dtheta that flows through slice r), and DDP averages
  over ranks: (1/W) * sum_r W * (that part) = dL/dtheta, the single-process gradient.

The release's gather (local slice only, no sum) would give dL/dx_r and (1/W) dL/dtheta instead (spec 3.8).
"""

import datetime
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.testing import assert_close

from clover_pl.data.mixing import all_ranks_have_a_batch
from clover_pl.losses import TriModalAlignmentLoss, VideoTextContrastiveLoss, gather_uneven

WORLD_SIZE = 2
BATCH, IN_DIM, EMBED_DIM = 8, 4, 6  # BATCH is the global batch


def _problem() -> tuple[torch.Tensor, nn.Linear]:
    """The same inputs (anchor, complete, masked, fused) and encoder in every process."""
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(4, BATCH, IN_DIM, generator=generator)
    encoder = nn.Linear(IN_DIM, EMBED_DIM)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(EMBED_DIM, IN_DIM, generator=generator))
        encoder.bias.copy_(torch.randn(EMBED_DIM, generator=generator))
    return inputs, encoder


def _losses(encoder: nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    anchor, complete, masked, fused = encoder(inputs).unbind(0)
    # A temperature of 0.2 keeps the softmaxes away from saturation, so that the gradients are not all near zero.
    tri = TriModalAlignmentLoss(temperature=0.2, rank_margin=2.0)(anchor, complete, masked, fused)
    pair = VideoTextContrastiveLoss(temperature=0.2)(anchor, complete)
    return {"tri": tri["loss"], "rank": tri["rank"], "pair": pair["loss"]}


def _worker(rank: int, out_dir: str) -> None:
    # A broken rendezvous fails after 240 s instead of hanging (and `run_ranks` kills the ranks at its own deadline).
    dist.init_process_group(
        "gloo",
        # A file rendezvous needs no port: a free port picked in advance can be taken by another process's store
        # before rank 0 binds it, and the ranks would then wait on a stranger's store forever.
        init_method=f"file://{out_dir}/rendezvous",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=240),
    )
    try:
        inputs, encoder = _problem()
        local_batch = BATCH // WORLD_SIZE
        local = inputs[:, rank * local_batch : (rank + 1) * local_batch].clone().requires_grad_(True)
        model = DistributedDataParallel(encoder)
        losses = _losses(model, local)
        (losses["tri"] + losses["pair"]).backward()
        result = {name: value.detach() for name, value in losses.items()}
        result["input_grad"] = local.grad
        result["weight_grad"] = encoder.weight.grad
        result["bias_grad"] = encoder.bias.grad
        # Evaluation gathers: rank 0 holds rows 0-2, rank 1 rows 3-7 (ranks' held-out shards differ in size).
        rows = torch.arange(8.0)[:, None].repeat(1, 2)
        result["uneven"] = gather_uneven(rows[:3] if rank == 0 else rows[3:])
        # Only rank 1 still has a batch: both must agree that the epoch is over.
        result["both_have_a_batch"] = torch.tensor(all_ranks_have_a_batch(rank == 1))
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(400)
@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_whole_batch(tmp_path: Path, run_ranks) -> None:
    run_ranks(_worker, args=(str(tmp_path),), nprocs=WORLD_SIZE, timeout=330)

    inputs, encoder = _problem()
    full = inputs.clone().requires_grad_(True)
    expected = _losses(encoder, full)  # no process group here: the gather is the identity
    (expected["tri"] + expected["pair"]).backward()
    assert expected["rank"] > 0  # the ranking term takes part in the gradients being compared

    local_batch = BATCH // WORLD_SIZE
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for name in ("tri", "rank", "pair"):
            assert_close(result[name], expected[name].detach(), msg=f"rank {rank}: {name}")
        local_slice = slice(rank * local_batch, (rank + 1) * local_batch)
        assert_close(result["input_grad"], WORLD_SIZE * full.grad[:, local_slice], msg=f"rank {rank}: inputs")
        assert_close(result["weight_grad"], encoder.weight.grad, msg=f"rank {rank}: weight")
        assert_close(result["bias_grad"], encoder.bias.grad, msg=f"rank {rank}: bias")
        assert_close(result["uneven"], torch.arange(8.0)[:, None].repeat(1, 2))
        assert not result["both_have_a_batch"]
