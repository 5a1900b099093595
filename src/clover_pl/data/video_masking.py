"""Video masking: BEiT-style block masks over the video encoder's final token grid (spec 2.2, step 6)."""

from __future__ import annotations

import math

import numpy as np
import torch


class BlockMaskGenerator:
    """BEiT block masking on a patch grid (spec §2.2 step 6): exactly ``num_masked`` cells, grown as blocks.

    Each block has area ~ U[min_block, remaining] (capped by ``max_block``) and aspect ratio log-uniform in
    ``[min_aspect, max_aspect]``; a block is kept only if it adds between 1 and ``remaining`` new cells (10 tries).
    Unlike BEiT, which gives up and returns fewer cells when no block fits, the last cells are then filled one by one
    at random, so the count is always exact. Blocks may span the whole grid side (BEiT requires strictly less;
    identical for Clover's 7x7 grid and 10 cells, where a block side never exceeds 6).

    Args:
        grid: (H, W) patch grid.
        num_masked: cells to mask.
        min_block: smallest block area tried.
        max_block: largest block area; ``None`` means ``num_masked``.
        min_aspect: smallest height/width ratio of a block.
        max_aspect: largest ratio; ``None`` means ``1 / min_aspect``.
    """

    attempts = 10

    def __init__(
        self,
        grid: tuple[int, int] = (7, 7),
        num_masked: int = 10,
        min_block: int = 4,
        max_block: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ) -> None:
        height, width = grid
        if height < 1 or width < 1:
            raise ValueError(f"grid must be positive, got {grid}")
        if not 0 <= num_masked <= height * width:
            raise ValueError(
                f"num_masked must be in [0, {height * width}] for a {height}x{width} grid, got {num_masked}"
            )
        if min_block < 1:
            raise ValueError(f"min_block must be >= 1, got {min_block}")
        max_aspect = 1.0 / min_aspect if max_aspect is None and min_aspect > 0 else max_aspect
        if min_aspect <= 0 or max_aspect is None or max_aspect < min_aspect:
            raise ValueError(f"need 0 < min_aspect <= max_aspect, got {min_aspect} and {max_aspect}")
        self.grid = (height, width)
        self.num_masked = num_masked
        self.min_block = min_block
        self.max_block = num_masked if max_block is None else max_block
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))

    def __call__(self, generator: torch.Generator | np.random.Generator | None = None) -> torch.Tensor:
        """Draw one mask.

        Args:
            generator: a ``torch.Generator`` or ``numpy`` Generator; ``None`` uses torch's global RNG (seeded per
                DataLoader worker by PyTorch, and by ``seed_everything``).

        Returns:
            (H, W) bool tensor with exactly ``num_masked`` True cells.
        """
        draw = _Draw(generator)
        mask = np.zeros(self.grid, dtype=bool)
        count = 0
        while count < self.num_masked:
            added = self._add_block(mask, min(self.num_masked - count, self.max_block), draw)
            if added == 0:
                break
            count += added
        free = list(np.flatnonzero(~mask))
        for _ in range(self.num_masked - count):
            mask.flat[free.pop(draw.integer(0, len(free) - 1))] = True
        return torch.from_numpy(mask)

    def _add_block(self, mask: np.ndarray, max_area: int, draw: _Draw) -> int:
        height, width = self.grid
        for _ in range(self.attempts):
            area = draw.uniform(self.min_block, max_area)
            aspect = math.exp(draw.uniform(*self.log_aspect))
            block_height = round(math.sqrt(area * aspect))
            block_width = round(math.sqrt(area / aspect))
            if not (1 <= block_height <= height and 1 <= block_width <= width):
                continue
            top = draw.integer(0, height - block_height)
            left = draw.integer(0, width - block_width)
            window = mask[top : top + block_height, left : left + block_width]
            added = block_height * block_width - int(window.sum())
            if 0 < added <= max_area:
                window[...] = True
                return added
        return 0


class _Draw:
    """Uniform floats and integers from a torch generator, a numpy generator or torch's global RNG."""

    def __init__(self, generator: torch.Generator | np.random.Generator | None) -> None:
        if generator is not None and not isinstance(generator, (torch.Generator, np.random.Generator)):
            raise TypeError(f"generator must be a torch.Generator, numpy Generator or None, got {type(generator)}")
        self.generator = generator

    def uniform(self, low: float, high: float) -> float:
        if isinstance(self.generator, np.random.Generator):
            unit = float(self.generator.random())
        else:
            unit = float(torch.rand((), generator=self.generator))
        return low + (high - low) * unit

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high], both ends included."""
        if isinstance(self.generator, np.random.Generator):
            return int(self.generator.integers(low, high + 1))
        return int(torch.randint(low, high + 1, (), generator=self.generator))
