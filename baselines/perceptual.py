"""A frozen LPIPS network as a training loss (DQ-VAE's reconstruction loss).

DQ-VAE's code (github.com/CrossmodalGroup/DynamicVectorQuantization, ``modules/losses/lpips.py``
and ``vqperceptual_multidisc.py`` 116-124) trains with ``|x - x_rec| + 1.0 * LPIPS(x, x_rec)``,
LPIPS v0.1 on a VGG16 trunk, inputs in [-1, 1]. Here:

- ``net="vgg"``: LPIPS v0.1 VGG16, the original. Trunk from torchvision's ``vgg16-397923af.pth``
  in the torch hub cache, linear layers from the ``lpips`` package (``weights/v0.1/vgg.pth``).
  Raises :class:`qgvae.errors.MissingWeightsError` when the trunk file is not there (nothing
  is downloaded during training).
- ``net="alex"``: LPIPS v0.1 AlexNet, the network the evaluator measures LPIPS with (the same
  files, loaded by :class:`qgvae.evaluation.image_metrics.LPIPSMetric`). Used by the configs,
  because the VGG16 trunk is not in the harness's offline weights; note that the evaluation
  metric is then also the training loss.

The network is frozen (no parameter requires a gradient), always in evaluation mode, and NOT a
submodule of the model (so it is neither in the state dict nor moved by ``model.to``): it is
loaded once per process and device on first use. Deviation: the original's LPIPS is a submodule
of the Lightning module, so ``model.train()`` switches its dropout layers (p = 0.5 before each
linear layer) on during training; here they stay off (deterministic, like the metric).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["NETS", "VGG16_FILE", "lpips_network", "lpips_loss"]

NETS = ("alex", "vgg")
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def _vgg_network() -> torch.nn.Module:
    import lpips

    from qgvae.errors import MissingWeightsError
    from qgvae.evaluation.weights import hub_checkpoint_dir, lpips_linear_weights_path

    trunk_path = hub_checkpoint_dir() / VGG16_FILE
    if not trunk_path.is_file():
        raise MissingWeightsError(
            f"LPIPS-VGG needs the VGG16 trunk {trunk_path}; download {VGG16_URL} there "
            "(same TORCH_HOME) or set model.lpips_net: alex"
        )
    lin_path = Path(lpips_linear_weights_path()).with_name("vgg.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = lpips.LPIPS(net="vgg", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
        trunk = torch.load(trunk_path, map_location="cpu", weights_only=True)
        lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    mapped = {}
    for key in net.net.state_dict():  # "slice{k}.{i}.{weight|bias}" <- "features.{i}.{...}"
        _, index, kind = key.split(".")
        mapped[key] = trunk[f"features.{index}.{kind}"]
    net.net.load_state_dict(mapped, strict=True)
    net.load_state_dict(lin, strict=False)
    return net


def lpips_network(net: str, device: torch.device | str) -> torch.nn.Module:
    """The frozen LPIPS v0.1 network ``net`` (``"alex"`` or ``"vgg"``) on ``device``."""
    if net not in NETS:
        raise ValueError(f"lpips_net must be one of {', '.join(NETS)}; got {net!r}")
    key = (net, str(device))
    if key not in _CACHE:
        if net == "alex":
            from qgvae.evaluation.image_metrics import LPIPSMetric

            module = LPIPSMetric("cpu").net
        else:
            module = _vgg_network()
        for p in module.parameters():
            p.requires_grad_(False)
        _CACHE[key] = module.eval().to(device)
    return _CACHE[key]


def lpips_loss(recon: Tensor, x: Tensor, net: str) -> Tensor:
    """Mean LPIPS between ``recon`` and ``x`` (``[B, C, H, W]`` in [0, 1]; grayscale repeated to
    RGB), differentiable w.r.t. ``recon``, in float32 (the network is mapped to [-1, 1] by
    ``normalize=True``, the original's input range)."""
    model = lpips_network(net, recon.device)
    a, b = recon.float(), x.float()
    if a.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    with torch.autocast(device_type=recon.device.type, enabled=False):
        return model(a, b, normalize=True).mean()
