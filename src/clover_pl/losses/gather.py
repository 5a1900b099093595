"""All-gather with a correct gradient: the one place where losses reach across processes (spec 3.8)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


class _AllGatherSum(torch.autograd.Function):
    """Forward: concatenate every rank's (B, ...) slice. Backward: sum the gradients of all ranks, keep ours."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        world_size = dist.get_world_size()
        ctx.rank = dist.get_rank()
        ctx.batch_size = tensor.shape[0]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        # Every rank computed a loss over the whole gathered batch, so our slice received a gradient on every rank;
        # the total derivative is their sum. all_reduce (rather than reduce_scatter) because gloo has no
        # reduce_scatter and the tensors are small (embeddings, not activations). Clone: grad_output is not ours to
        # modify in place.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.batch_size
        return grad[start : start + ctx.batch_size]


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate a per-rank batch over all ranks, in rank order, keeping a correct gradient.

    The gradient of the local slice is the sum, over all ranks, of the gradients that each rank's loss sends to that
    slice. Every rank computes the same loss over the gathered batch, so with DDP's averaging of parameter gradients
    the update equals the one a single process holding the whole batch would make.

    This deliberately differs from the release: its gather returned only the local slice of the incoming gradient,
    without summing across ranks, so after DDP's averaging the contrastive and ranking gradients were scaled by 1/W
    (W = world size) while the MLM gradient was not (spec 3.8). To replicate the release's weighting, divide the
    gathered losses by W.

    Every rank must hold the same batch size: the underlying ``all_gather`` needs equal shapes (use ``drop_last`` for
    training loaders). Every rank must call this function, and later run the backward, the same number of times.

    Args:
        tensor: (B, ...) local batch.

    Returns:
        (W * B, ...) batches of ranks 0..W-1 concatenated along dim 0. When ``torch.distributed`` is unavailable,
        not initialised or has a single process, the input itself is returned.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _AllGatherSum.apply(tensor)


def gather_uneven(tensor: Tensor) -> Tensor:
    """All-gather tensors whose first dimension differs between ranks (evaluation; no gradient).

    Each rank's rows are padded to the largest count, gathered, and the padding is cut again, so the result is the
    concatenation in rank order of exactly the rows every rank had. Identity without a process group.

    Args:
        tensor: (N_r, ...) on rank r.

    Returns:
        (sum_r N_r, ...).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    largest = int(max(c.item() for c in counts))
    padded = tensor.new_zeros((largest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([part[: int(c.item())] for part, c in zip(gathered, counts, strict=True)])
