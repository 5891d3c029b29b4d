"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), v0.1, written from the paper and the published weight formats, without torchvision.

Computation for images ``x, y`` in ``[0, 1]``:

1. map to ``[-1, 1]`` and apply the scaling layer ``(v - shift) / scale`` with
   ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448, 0.450)`` (per RGB channel);
2. run the ImageNet trunk and tap five ReLU outputs
   (AlexNet: relu1..relu5; VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3);
3. unit-normalise each tap over channels (``f / (||f||_2 + 1e-10)``);
4. square the feature difference, weight channels with the non-negative 1x1 "lin" head of the
   layer, average over space, and sum over the five layers.

Weights come in two published files that :meth:`LPIPS.from_pretrained` reads through explicit
key tables: the torchvision ImageNet backbone (``features.N.weight`` / ``features.N.bias`` of
``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``; ``classifier.*`` keys are ignored) and
the LPIPS v0.1 head (``lin{k}.model.1.weight`` of ``alex.pth`` / ``vgg.pth``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn

from gen3r.atomic import atomic_path
from gen3r.errors import CheckpointError, Gen3RError
from gen3r.eval.image_metrics import check_image_pair
from gen3r.models._loading import check_state_dict, read_weights

logger = logging.getLogger(__name__)

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
_NORM_EPS = 1e-10


@dataclass(frozen=True)
class _TrunkSpec:
    """One backbone: torchvision ``features`` layout, tapped ReLU indices, official file names."""

    layers: tuple[tuple, ...]  # ("conv", in, out, kernel, stride, pad) | ("relu",) | ("pool", kernel, stride)
    taps: tuple[int, ...]  # indices into ``features`` whose outputs are the five LPIPS layers
    min_size: int  # smallest H, W that keeps every tapped map non-empty
    backbone_url: str
    head_url: str


def _vgg16_layers() -> tuple[tuple, ...]:
    """torchvision VGG16 ``features`` (configuration D, no batch norm), up to relu5_3."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    layers: list[tuple] = []
    c_in = 3
    for v in cfg:
        if v == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", c_in, v, 3, 1, 1), ("relu",)]
            c_in = v
    return tuple(layers)


_SPECS: dict[str, _TrunkSpec] = {
    "alex": _TrunkSpec(
        layers=(("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
                ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
                ("conv", 192, 384, 3, 1, 1), ("relu",),
                ("conv", 384, 256, 3, 1, 1), ("relu",),
                ("conv", 256, 256, 3, 1, 1), ("relu",)),
        taps=(1, 4, 7, 9, 11),
        min_size=31,
        backbone_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        head_url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
    ),
    "vgg": _TrunkSpec(
        layers=_vgg16_layers(),
        taps=(3, 8, 15, 22, 29),
        min_size=16,
        backbone_url="https://download.pytorch.org/models/vgg16-397923af.pth",
        head_url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    ),
}


def _build_features(spec: _TrunkSpec) -> nn.Sequential:
    """``nn.Sequential`` whose indices (hence state-dict keys) match torchvision's ``features``."""
    modules: list[nn.Module] = []
    for layer in spec.layers:
        if layer[0] == "conv":
            _, c_in, c_out, k, s, p = layer
            modules.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
        elif layer[0] == "relu":
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(layer[1], stride=layer[2]))
    return nn.Sequential(*modules)


def _check_net(net: str) -> _TrunkSpec:
    if net not in _SPECS:
        raise Gen3RError(f"LPIPS: unknown net {net!r}; choose one of {sorted(_SPECS)}")
    return _SPECS[net]


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity with an AlexNet or VGG16 trunk.

    A freshly constructed module has randomly initialised trunk weights and all-ones heads: it
    is NOT a perceptual metric (not even the paper's uncalibrated baseline, which needs an
    ImageNet-pretrained trunk) and serves shapes/tests only; use :meth:`from_pretrained` for the metric
    reported in papers. ``forward(pred, gt)`` takes ``(..., 3, H, W)`` images in ``[0, 1]`` and
    returns ``(...)`` distances (0 for identical images, larger is more different).
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        spec = _check_net(net)
        self.net = net
        self.taps = spec.taps
        self.min_size = spec.min_size
        self.features = _build_features(spec)
        channels = [cast(nn.Conv2d, self.features[i - 1]).out_channels for i in spec.taps]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        for lin in self.lins:
            nn.init.ones_(cast(nn.Conv2d, lin).weight)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @property
    def channels(self) -> list[int]:
        """Channel count of each of the five tapped layers."""
        return [cast(nn.Conv2d, lin).in_channels for lin in self.lins]

    def layer_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped trunk activations of ``(N, 3, H, W)`` images in ``[0, 1]`` (before normalising)."""
        x = (2.0 * images - 1.0 - self.shift) / self.scale
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
                if i == self.taps[-1]:
                    break
        return feats

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS distance ``(...)`` between ``(..., 3, H, W)`` images in ``[0, 1]``."""
        check_image_pair(pred, gt, "LPIPS", min_size=self.min_size)
        lead = pred.shape[:-3]
        dtype = self.shift.dtype
        x = pred.reshape(-1, *pred.shape[-3:]).to(dtype)
        y = gt.reshape(-1, *gt.shape[-3:]).to(dtype)
        total = x.new_zeros(x.shape[0])
        for fx, fy, lin in zip(self.layer_features(x), self.layer_features(y), self.lins):
            diff = (_unit_normalise(fx) - _unit_normalise(fy)).square()
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total.reshape(lead)

    @classmethod
    def from_pretrained(cls, path_or_url: str | os.PathLike | None = None, *, net: str = "alex",
                        backbone: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None) -> LPIPS:
        """Build LPIPS with the published ImageNet trunk and LPIPS v0.1 linear heads.

        Args:
            path_or_url: the LPIPS head file (``alex.pth`` / ``vgg.pth``, keys
                ``lin{k}.model.1.weight``) as a local path or URL, or a local folder holding
                both the head file and the torchvision backbone file under their official names.
                ``None`` downloads the official head.
            net: ``"alex"`` or ``"vgg"``.
            backbone: torchvision ``features`` weights (``alexnet-owt-7be5be79.pth`` /
                ``vgg16-397923af.pth``) as a path or URL; ``None`` takes the file from the
                folder given as ``path_or_url``, else downloads the official file.
            cache_dir: where downloads go (default ``$GEN3R_CACHE`` or ``~/.cache/gen3r``,
                sub-folder ``lpips``). Nothing is downloaded unless a URL is needed.

        Returns:
            An eval-mode module with frozen parameters.
        """
        spec = _check_net(net)
        head_name = Path(urllib.parse.urlparse(spec.head_url).path).name
        backbone_name = Path(urllib.parse.urlparse(spec.backbone_url).path).name
        head_src: str | os.PathLike = spec.head_url if path_or_url is None else path_or_url
        if path_or_url is not None and Path(path_or_url).is_dir():
            head_src = Path(path_or_url) / head_name
            if backbone is None:
                backbone = Path(path_or_url) / backbone_name
        backbone_src = spec.backbone_url if backbone is None else backbone

        model = cls(net)
        model.load_backbone(read_weights(_resolve(backbone_src, cache_dir)))
        model.load_heads(read_weights(_resolve(head_src, cache_dir)))
        model.requires_grad_(False)
        return model.eval()

    def load_backbone(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision AlexNet/VGG16 state dict strictly on ``features.*`` (``classifier.*`` ignored)."""
        table = backbone_key_table(self.net)
        kept = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
        expected = {src: tuple(self.state_dict()[dst].shape) for src, dst in table.items()}
        check_state_dict(expected, kept, f"LPIPS {self.net} backbone")
        with torch.no_grad():
            for src, dst in table.items():
                self.get_parameter(dst).copy_(kept[src])

    def load_heads(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the official LPIPS v0.1 head file strictly; its weights must be non-negative."""
        table = head_key_table(self.net)
        expected = {src: tuple(self.state_dict()[dst].shape) for src, dst in table.items()}
        check_state_dict(expected, state_dict, f"LPIPS {self.net} linear heads")
        for src in table:
            if (state_dict[src] < 0).any() or not torch.isfinite(state_dict[src]).all():
                raise CheckpointError(f"LPIPS {self.net} head {src} has negative or non-finite weights; "
                                      "use the official LPIPS v0.1 head file")
        with torch.no_grad():
            for src, dst in table.items():
                self.get_parameter(dst).copy_(state_dict[src])


def backbone_key_table(net: str) -> dict[str, str]:
    """Torchvision key -> our key for the trunk (identical names: ``features.N.{weight,bias}``)."""
    spec = _check_net(net)
    return {f"features.{i}.{p}": f"features.{i}.{p}"
            for i, layer in enumerate(spec.layers) if layer[0] == "conv" for p in ("weight", "bias")}


def head_key_table(net: str) -> dict[str, str]:
    """Official LPIPS v0.1 head key -> our key (``lin{k}.model.1.weight`` -> ``lins.{k}.weight``)."""
    spec = _check_net(net)
    return {f"lin{k}.model.1.weight": f"lins.{k}.weight" for k in range(len(spec.taps))}


def _unit_normalise(f: torch.Tensor) -> torch.Tensor:
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + _NORM_EPS)


def _default_cache_dir() -> Path:
    return Path(os.environ.get("GEN3R_CACHE", Path.home() / ".cache" / "gen3r")) / "lpips"


def _resolve(src: str | os.PathLike, cache_dir: str | os.PathLike | None) -> Path:
    """Local path as is; a URL is downloaded once into the cache (atomically) and its path returned."""
    scheme = urllib.parse.urlparse(str(src)).scheme
    if scheme not in ("http", "https", "file"):
        path = Path(src)
        if not path.is_file():
            raise CheckpointError(f"LPIPS weight file {path} does not exist; pass an existing file or a URL")
        return path
    target = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    dest = target / Path(urllib.parse.urlparse(str(src)).path).name
    if dest.is_file():
        return dest
    logger.info("downloading %s to %s", src, dest)
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(str(src), timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
            _check_hash_prefix(tmp, dest.name)
    except OSError as exc:
        raise CheckpointError(f"cannot download {src} ({exc}); check the network or pass local files "
                              "to LPIPS.from_pretrained") from exc
    return dest


def _check_hash_prefix(path: Path, name: str) -> None:
    """Torchvision file names end in the first hex digits of their SHA-256; verify when present."""
    match = re.search(r"-([0-9a-f]{8,})\.pth$", name)
    if match is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise CheckpointError(f"downloaded {name} has SHA-256 {digest[:12]}..., expected prefix "
                              f"{match.group(1)}; delete it from the cache and retry")


_DEFAULT_MODELS: dict[str, LPIPS] = {}


def lpips(pred: torch.Tensor, gt: torch.Tensor, net: str = "alex", model: LPIPS | None = None) -> torch.Tensor:
    """Per-image LPIPS distance between ``(..., 3, H, W)`` images in ``[0, 1]``.

    Args:
        pred: predicted images.
        gt: ground-truth images of the same shape.
        net: ``"alex"`` (the usual choice for novel-view synthesis tables) or ``"vgg"``; used
            only when ``model`` is ``None``, to build (once per process) the pretrained metric via
            :meth:`LPIPS.from_pretrained` (downloads the official weights on first use).
        model: an :class:`LPIPS` instance to use instead.

    Returns:
        ``(...)`` float64 tensor of distances, computed without gradients.
    """
    if model is None:
        if net not in _DEFAULT_MODELS:
            _DEFAULT_MODELS[net] = LPIPS.from_pretrained(net=net)
        model = _DEFAULT_MODELS[net]
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(pred.to(device), gt.to(device)).to(torch.float64)


__all__ = ["LPIPS", "lpips", "backbone_key_table", "head_key_table", "LPIPS_SHIFT", "LPIPS_SCALE"]
