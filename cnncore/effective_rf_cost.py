"""What an effective receptive field costs, checked before anything is computed.

Two bounds, because neither follows from the other for a stack of convolutions:

- multiply-adds (time): C²·k²·H·W per layer per input (`StackConfig.macs`);
- values kept for the backward pass (memory): autograd keeps every layer's input for every
  random input until the gradient is taken, C·H·W each; the forward's activation outputs and
  the input's gradient come on top (`StackConfig.backward_values`).

With the stacks' C = 4 channels and a 1×1 kernel a layer does only 4 multiply-adds per value it
keeps, so a request under the multiply-add cap alone could keep about 2·10¹⁰ values (a depth
sweep at 256 × 256 pixels, 32 layers, 64 samples, ReLU: 75 GB). Measured peak resident memory is
1.3-1.8 × the values counted here (glibc keeps freed blocks; the backward's transients).
"""

from __future__ import annotations

import math

from cnncore.errors import CNNCoreError

__all__ = ["FLOAT_BYTES", "check_samples", "check_values", "check_work"]

FLOAT_BYTES = 4  # float32


def check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise CNNCoreError(f"samples must be a positive integer, got {samples!r}", "samples",
                           code="positive_integer")  # fmt: skip


def check_work(macs: int, max_macs: int | None) -> None:
    """Refuse more than `max_macs` multiply-adds (None: no limit)."""
    if max_macs is not None and macs > max_macs:
        raise CNNCoreError(
            f"this needs about {macs:,} multiply-adds, over the {max_macs:,} "
            "allowed: use fewer samples, a smaller input or a shallower network",
            "samples",
            code="work_too_large",
            ctx={"macs": macs, "limit": max_macs},
        )


def check_values(values: int, max_values: int | None) -> None:
    """Refuse keeping more than `max_values` float values for one backward pass (None: no
    limit), before any is allocated."""
    if max_values is not None and values > max_values:
        megabytes = math.ceil(values * FLOAT_BYTES / 1e6)
        limit = max_values * FLOAT_BYTES // 1_000_000
        raise CNNCoreError(
            f"this would keep about {megabytes:,} MB of values for its gradient, over the "
            f"{limit:,} MB allowed: use fewer samples, a smaller input or a shallower stack",
            "samples",
            code="memory_too_large",
            ctx={"megabytes": megabytes, "limit": limit},
        )
