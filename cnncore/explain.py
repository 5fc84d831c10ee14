"""Why this prediction: class-activation maps, pixel attributions and occlusion for one picture.

One forward and one backward pass through the model's traced graph (`cnncore.features`) give,
for the score S (the chosen class's logit, before the softmax) and the target layer's maps A_k:
- Grad-CAM (Selvaraju et al., ICCV 2017): relu(Σ_k α_k A_k) with α_k the mean over the map of
  ∂S/∂A_k;
- Grad-CAM++ (Chattopadhay et al., WACV 2018, with the exponential-score closed form as
  pytorch-grad-cam writes it): α_kij = g² / (2g² + Σ_ab A_kab g³), w_k = Σ_ij α_kij relu(g_kij);
- LayerCAM (Jiang et al., IEEE TIP 2021): relu(Σ_k relu(∂S/∂A_k) ⊙ A_k);
- saliency (Simonyan et al., 2014): max over colour channels of |∂S/∂x|;
and integrated gradients (Sundararajan et al., ICML 2017) come from Captum's
`IntegratedGradients` over the same graph (baseline: the all-zero normalised picture, i.e. the
dataset's mean colour), summed over channels in absolute value.

The CAM family is written here rather than taken from Captum's `LayerGradCam`: Captum's layer
methods put forward hooks on the model's modules, and the zoo models are shared by every request
of the server (a feature request running at the same moment would fire them); Captum has no
Grad-CAM++ or LayerCAM, and all three come from the one backward pass that saliency needs.
The graph is run by a `torch.fx.Interpreter` of this request, which keeps the target layer's
output as a tensor of its own (later in-place activations change a copy).

Occlusion (Zeiler & Fergus, ECCV 2014) slides a patch of the baseline over the picture and
records the drop of S; each pixel gets the mean drop of the patches covering it (Captum's
`Occlusion` convention). It runs in batches so a caller can show progress and stop it.

Maps are returned at the layer's size and upsampled bilinearly to the picture, scaled to [0, 1]
by their maximum (a map that is zero everywhere stays zero).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx

from cnncore.errors import CNNCoreError
from cnncore.features import LayerGraph

__all__ = [
    "CAM_METHODS",
    "METHODS",
    "Explanation",
    "OcclusionPlan",
    "cam_maps",
    "default_target_layer",
    "explain",
    "forward_macs",
    "integrated_gradients",
    "occlusion",
    "occlusion_plan",
    "upsample",
]

CAM_METHODS = ("gradcam", "gradcam_pp", "layercam")
METHODS = (*CAM_METHODS, "saliency", "integrated_gradients")


@dataclass(frozen=True)
class Explanation:
    """Maps of one picture for class `target`, each (H, W) in [0, 1] at the picture's size."""

    layer: str
    layer_shape: tuple[int, ...]
    target: int
    score: float  # the logit of `target`
    probability: float
    maps: dict[str, np.ndarray]
    cams: dict[str, np.ndarray]  # the CAMs at the layer's size, before upsampling and scaling


class _Keep(fx.Interpreter):
    """Runs the graph with gradients and keeps the output of `node` (a copy flows on)."""

    def __init__(self, layers: LayerGraph, node: fx.Node) -> None:
        super().__init__(layers.graph_module)
        self.node = node
        self.kept: torch.Tensor | None = None

    def run_node(self, n: fx.Node):  # noqa: ANN201
        value = super().run_node(n)
        if n is self.node:
            self.kept = value
            return value.clone()  # an in-place activation after it must not change `kept`
        return value


def default_target_layer(layers: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> str:
    """The deepest layer whose output still has a spatial map larger than 1×1: the most
    class-specific maps that still say where (Selvaraju et al. use the last convolution)."""
    spatial = [n for n in layers.layer_names if len(shapes[n]) == 3 and max(shapes[n][1:]) > 1]
    if not spatial:
        raise CNNCoreError("this model has no layer with a spatial map", "layer",
                           code="no_spatial_layer")  # fmt: skip
    return spatial[-1]


def _node(layers: LayerGraph, layer: str) -> fx.Node:
    for node, name in layers.names.items():
        if name == layer:
            return node
    raise CNNCoreError(
        f"no layer named {layer!r} in this model", "layer", code="unknown_layer",
        ctx={"expected": layers.layer_names},
    )  # fmt: skip


def _check_target(target: int, classes: int) -> None:
    if not 0 <= target < classes:
        raise CNNCoreError(
            f"class {target} is not one of this model's {classes} classes (0 to {classes - 1})",
            "target", code="unknown_class", ctx={"classes": classes},
        )  # fmt: skip


def cam_maps(activations: torch.Tensor, gradients: torch.Tensor) -> dict[str, torch.Tensor]:
    """Grad-CAM, Grad-CAM++ and LayerCAM from A and ∂S/∂A (both K×h×w), each h×w, ≥ 0."""
    a, g = activations.double(), gradients.double()
    gradcam = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    g2, g3 = g.pow(2), g.pow(3)
    denominator = 2 * g2 + (a.sum((1, 2))[:, None, None] * g3)
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * torch.relu(g)).sum((1, 2))
    gradcam_pp = torch.relu((weights[:, None, None] * a).sum(0))
    layercam = torch.relu((torch.relu(g) * a).sum(0))
    return {"gradcam": gradcam, "gradcam_pp": gradcam_pp, "layercam": layercam}


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A map brought to the picture's size (bilinear), scaled to [0, 1] by its maximum."""
    up = F.interpolate(cam[None, None].double(), size=size, mode="bilinear", align_corners=False)
    up = up[0, 0].clamp_min(0)
    top = float(up.max())
    return (up / top if top > 0 else up).float().numpy()


def explain(
    layers: LayerGraph,
    picture: torch.Tensor,
    *,
    target: int | None = None,
    layer: str,
) -> Explanation:
    """Grad-CAM, Grad-CAM++, LayerCAM and saliency of `picture` (1×C×H×W, preprocessed) for
    class `target` (default: the top class) at `layer`, from one forward and one backward."""
    node = _node(layers, layer)
    run = _Keep(layers, node)
    x = picture.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = run.run(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise CNNCoreError("this model does not output class scores", "target",
                               code="no_class_scores")  # fmt: skip
        classes = logits.shape[1]
        chosen = int(logits[0].argmax()) if target is None else target
        _check_target(chosen, classes)
        kept = run.kept
        if kept is None or kept.dim() != 4:
            raise CNNCoreError(f"layer {layer} has no spatial map to explain with", "layer",
                               code="no_spatial_layer")  # fmt: skip
        grad_a, grad_x = torch.autograd.grad(logits[0, chosen], [kept, x])
    logits = logits.detach()
    size = tuple(picture.shape[-2:])
    cams = cam_maps(kept[0].detach(), grad_a[0])
    maps = {name: upsample(cam, size) for name, cam in cams.items()}
    saliency = grad_x[0].abs().amax(0)
    top = float(saliency.max())
    maps["saliency"] = (saliency / top if top > 0 else saliency).float().numpy()
    probability = float(torch.softmax(logits[0].double(), 0)[chosen])
    return Explanation(
        layer, tuple(kept.shape[1:]), chosen, float(logits[0, chosen]), probability, maps,
        {name: cam.float().numpy() for name, cam in cams.items()},
    )  # fmt: skip


def _forward(layers: LayerGraph) -> Callable[[torch.Tensor], torch.Tensor]:
    """The graph as a function of a batch: a fresh interpreter per call (nothing shared)."""
    return lambda batch: fx.Interpreter(layers.graph_module).run(batch)


def integrated_gradients(
    layers: LayerGraph, picture: torch.Tensor, target: int, *, steps: int = 32
) -> np.ndarray:
    """Captum's integrated gradients from the zero (mean-colour) baseline, |Σ_c attr| in [0, 1]."""
    from captum.attr import IntegratedGradients  # imported when first asked for: ~1 s

    method = IntegratedGradients(_forward(layers))
    with torch.enable_grad():
        attributions = method.attribute(
            picture.detach(), target=target, n_steps=steps, internal_batch_size=steps
        )
    summed = attributions[0].sum(0).abs()
    top = float(summed.max())
    return (summed / top if top > 0 else summed).float().numpy()


@dataclass(frozen=True)
class OcclusionPlan:
    """Patch positions of an occlusion: top-left rows and columns, every `stride` pixels."""

    patch: int
    stride: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def windows(self) -> int:
        return len(self.rows) * len(self.cols)


def occlusion_plan(height: int, width: int, patch: int, stride: int) -> OcclusionPlan:
    """Positions as Captum's `Occlusion`: floor((H − patch) / stride) + 1 per axis."""
    if not 1 <= patch <= min(height, width):
        raise CNNCoreError(
            f"the patch ({patch}) must fit the picture ({height}×{width})", "patch",
            code="patch_too_large", ctx={"size": min(height, width), "kernel": patch},
        )  # fmt: skip
    rows = tuple(range(0, height - patch + 1, stride))
    cols = tuple(range(0, width - patch + 1, stride))
    return OcclusionPlan(patch, stride, rows, cols)


def occlusion(
    layers: LayerGraph,
    picture: torch.Tensor,
    target: int,
    plan: OcclusionPlan,
    *,
    batch: int = 16,
    progress: Callable[[int, int], bool] | None = None,
) -> np.ndarray | None:
    """Mean drop of the target's logit per pixel when a zero patch covers it (H×W, may be < 0).

    `progress(done, total)` is called after each batch of windows; returning False stops the
    work and the result is None.
    """
    forward = _forward(layers)
    _c, height, width = picture.shape[1:]
    positions = [(r, c) for r in plan.rows for c in plan.cols]
    with torch.inference_mode():
        base = float(forward(picture)[0, target])
        total = torch.zeros(height, width, dtype=torch.float64)
        count = torch.zeros(height, width, dtype=torch.float64)
        p = plan.patch
        for start in range(0, len(positions), batch):
            chunk = positions[start : start + batch]
            occluded = picture.repeat(len(chunk), 1, 1, 1)
            for i, (r, c) in enumerate(chunk):
                occluded[i, :, r : r + p, c : c + p] = 0
            drops = base - forward(occluded)[:, target].double()
            for i, (r, c) in enumerate(chunk):
                total[r : r + p, c : c + p] += drops[i]
                count[r : r + p, c : c + p] += 1
            if progress is not None and not progress(start + len(chunk), len(positions)):
                return None
    return torch.where(count > 0, total / count.clamp_min(1), 0).float().numpy()


def forward_macs(layers: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> int:
    """Multiply-adds of one forward pass: each convolution's and linear layer's outputs times
    the weights one output reads (the rest of the graph is small beside them)."""
    total = 0
    for node, name in layers.names.items():
        if node.op != "call_module" or name not in shapes:
            continue
        module = layers.graph_module.get_submodule(str(node.target))
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            per_output = (
                module.weight[0].numel()
                if isinstance(module, torch.nn.Conv2d)
                else (module.weight.numel() // max(module.weight.shape[0], 1))
            )
            total += math.prod(shapes[name]) * per_output
    return total


def scaled(values: np.ndarray) -> np.ndarray:
    """Signed values scaled to [0, 1] by the largest |value| (0.5 is no change)."""
    top = float(np.abs(values).max()) if values.size else 0.0
    return 0.5 + 0.5 * values / top if top > 0 and math.isfinite(top) else np.full_like(values, 0.5)
