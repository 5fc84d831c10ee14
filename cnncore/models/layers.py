"""Spatial sizes through conv and pooling modules, asked of `cnncore.arithmetic`.

Models whose classifier depends on the input size (LeNet-5, TinyVGG, the autoencoder's decoder)
size their layers with these, and `cnncore.inspect` uses them to say which input axis is too small
when a forward pass refuses an input. A failure names the axis (`height` or `width`), the field a
student can change.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from cnncore.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    resolve_padding,
)
from cnncore.errors import CNNCoreError

__all__ = ["feature_map_size", "module_pairs", "spatial_output_size"]

_AXES = ("height", "width")


def module_pairs(module: nn.Module, *names: str) -> list[tuple[int, int]]:
    """Module attributes as (height, width) pairs; torch stores either an int or a tuple."""
    values = [getattr(module, name, 1) for name in names]
    return [(v, v) if isinstance(v, int) else (v[0], v[1]) for v in values]


def _per_axis(sizes: tuple[int, int], size_of_axis) -> tuple[int, int]:
    out = []
    for axis, (field, size) in enumerate(zip(_AXES, sizes, strict=True)):
        try:
            out.append(size_of_axis(axis, size))
        except CNNCoreError as exc:
            # the arithmetic's code and numbers travel on, so the page can say why in Korean
            raise CNNCoreError(
                f"the input {field} is too small: {exc}", field, code=exc.code, ctx=exc.ctx
            ) from exc
    return out[0], out[1]


def spatial_output_size(module: nn.Module, height: int, width: int) -> tuple[int, int]:
    """(H', W') after one module: conv, transposed conv, pooling or adaptive pooling.

    Every other module keeps the spatial size (activations, batch norm, dropout, identity).
    """
    if isinstance(module, nn.ConvTranspose2d):
        kernel, stride, dilation, padding, out_pad = module_pairs(
            module, "kernel_size", "stride", "dilation", "padding", "output_padding"
        )
        return _per_axis(
            (height, width),
            lambda a, n: conv_transpose_output_size(
                n, kernel[a], stride[a], padding[a], dilation[a], out_pad[a]
            ),
        )
    if isinstance(module, nn.Conv2d):
        kernel, stride, dilation = module_pairs(module, "kernel_size", "stride", "dilation")
        pads = resolve_padding(module.padding, kernel, stride, dilation)
        axis_pads = (pads.height, pads.width)
        return _per_axis(
            (height, width),
            lambda a, n: conv_output_size(n, kernel[a], stride[a], axis_pads[a], dilation[a]),
        )
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        # AvgPool2d has no dilation attribute: `module_pairs` reads it as 1.
        kernel, stride, padding, dilation = module_pairs(
            module, "kernel_size", "stride", "padding", "dilation"
        )
        return _per_axis(
            (height, width),
            lambda a, n: pool_output_size(
                n, kernel[a], stride[a], padding[a], dilation[a], module.ceil_mode
            ),
        )
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = module.output_size
        target = (size, size) if isinstance(size, int) else tuple(size)
        return (target[0] or height, target[1] or width)
    return height, width


def feature_map_size(layers: Iterable[nn.Module], height: int, width: int) -> tuple[int, int]:
    """Spatial size after a chain of modules applied in order (e.g. a `features` Sequential)."""
    for module in layers:
        if next(module.children(), None) is not None:
            height, width = feature_map_size(module.children(), height, width)
        else:
            height, width = spatial_output_size(module, height, width)
    return height, width
