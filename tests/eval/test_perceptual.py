"""LPIPS: architecture, weight loading from files in the official formats, and the formula.

The real ImageNet / LPIPS weights cannot be downloaded in CI, so the files here are generated
locally with the exact key names and shapes of ``alexnet-owt-7be5be79.pth`` /
``vgg16-397923af.pth`` (torchvision) and ``alex.pth`` / ``vgg.pth`` (LPIPS v0.1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.eval import LPIPS, lpips
from gen3r.eval.perceptual import backbone_key_table, head_key_table

# torchvision ``features`` convolutions: index -> (out, in, kernel, stride, padding)
ALEX_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1),
              8: (256, 384, 3, 1, 1), 10: (256, 256, 3, 1, 1)}
ALEX_POOL_AFTER = {1, 4}  # max-pool 3/2 follows these ReLUs (indices 2 and 5)
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def _vgg_convs() -> dict[int, tuple[int, int, int, int, int]]:
    convs, idx, c_in = {}, 0, 3
    for v in VGG_CFG:
        if v == "M":
            idx += 1
        else:
            convs[idx] = (v, c_in, 3, 1, 1)
            c_in = v
            idx += 2
    return convs


CONVS = {"alex": ALEX_CONVS, "vgg": _vgg_convs()}
CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}
FILES = {"alex": ("alexnet-owt-7be5be79.pth", "alex.pth"), "vgg": ("vgg16-397923af.pth", "vgg.pth")}


def _backbone_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for idx, (c_out, c_in, k, _, _) in CONVS[net].items():
        fan_in = c_in * k * k
        sd[f"features.{idx}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * (2.0 / fan_in) ** 0.5
        sd[f"features.{idx}.bias"] = 0.01 * torch.randn(c_out, generator=gen)
    # torchvision files also carry the classifier; it is ignored (small stand-in shapes here,
    # the real ones are 100+ MB)
    for idx in ((1, 4, 6) if net == "alex" else (0, 3, 6)):
        sd[f"classifier.{idx}.weight"] = torch.zeros(4, 4)
        sd[f"classifier.{idx}.bias"] = torch.zeros(4)
    return sd


def _head_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) / c
            for k, c in enumerate(CHANNELS[net])}


@pytest.fixture(scope="module", params=["alex", "vgg"])
def weights_dir(request, tmp_path_factory) -> tuple[str, Path]:
    net = request.param
    folder = tmp_path_factory.mktemp(f"lpips_{net}")
    torch.save(_backbone_state(net, 0), folder / FILES[net][0])
    torch.save(_head_state(net, 1), folder / FILES[net][1])
    return net, folder


def _reference_lpips(x: torch.Tensor, y: torch.Tensor, net: str, backbone: dict, head: dict) -> torch.Tensor:
    """The published formula with plain functional ops: (N, 3, H, W) in [0, 1] -> (N,)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(img: torch.Tensor) -> list[torch.Tensor]:
        h = ((img * 2 - 1) - shift) / scale
        out = []
        convs = sorted(CONVS[net])
        for n, idx in enumerate(convs):
            _, _, _, stride, pad = CONVS[net][idx]
            h = F.relu(F.conv2d(h, backbone[f"features.{idx}.weight"], backbone[f"features.{idx}.bias"],
                                stride=stride, padding=pad))
            nxt = convs[n + 1] if n + 1 < len(convs) else None
            if net == "alex":
                out.append(h)
                if idx + 1 in ALEX_POOL_AFTER:
                    h = F.max_pool2d(h, 3, 2)
            elif nxt is None or nxt - idx == 3:  # a pool sits between: end of a VGG block
                out.append(h)
                if nxt is not None:
                    h = F.max_pool2d(h, 2, 2)
        return out

    total = torch.zeros(x.shape[0])
    for k, (a, b) in enumerate(zip(taps(x), taps(y))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = head[f"lin{k}.model.1.weight"]
        total += F.conv2d((a - b) ** 2, w).mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize(("net", "size", "shapes"), [
    ("alex", 64, [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]),
    ("vgg", 64, [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]),
])
def test_layer_shapes(net, size, shapes):
    model = LPIPS(net)
    feats = model.layer_features(torch.rand(2, 3, size, size))
    assert [tuple(f.shape[1:]) for f in feats] == shapes
    assert model.channels == CHANNELS[net]
    assert [tuple(lin.weight.shape) for lin in model.lins] == [(1, c, 1, 1) for c in CHANNELS[net]]


def test_key_tables_match_the_official_formats():
    for net in ("alex", "vgg"):
        table = backbone_key_table(net)
        assert sorted(table) == sorted(k for k in _backbone_state(net, 0) if k.startswith("features."))
        assert sorted(head_key_table(net)) == sorted(_head_state(net, 0))
    assert head_key_table("alex")["lin3.model.1.weight"] == "lins.3.weight"


def test_from_pretrained_folder_loads_every_tensor(weights_dir):
    net, folder = weights_dir
    model = LPIPS.from_pretrained(folder, net=net)
    backbone = torch.load(folder / FILES[net][0], weights_only=True)
    head = torch.load(folder / FILES[net][1], weights_only=True)
    ours = model.state_dict()
    for src, dst in backbone_key_table(net).items():
        assert torch.equal(ours[dst], backbone[src])
    for src, dst in head_key_table(net).items():
        assert torch.equal(ours[dst], head[src])
    assert all((lin.weight >= 0).all() for lin in model.lins)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_matches_functional_reference(weights_dir):
    net, folder = weights_dir
    model = LPIPS.from_pretrained(folder / FILES[net][1], net=net, backbone=folder / FILES[net][0])
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, 48, 40, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    backbone = torch.load(folder / FILES[net][0], weights_only=True)
    head = torch.load(folder / FILES[net][1], weights_only=True)
    expected = _reference_lpips(x, y, net, backbone, head)
    torch.testing.assert_close(model(x, y), expected, rtol=1e-5, atol=1e-7)


def test_zero_symmetric_positive_and_batched(weights_dir):
    net, folder = weights_dir
    model = LPIPS.from_pretrained(folder, net=net)
    gen = torch.Generator().manual_seed(6)
    a = torch.rand(2, 2, 3, 32, 32, generator=gen)
    b = torch.rand(2, 2, 3, 32, 32, generator=gen)
    same = lpips(a, a, model=model)
    assert same.shape == (2, 2) and same.dtype == torch.float64
    assert torch.all(same.abs() < 1e-6)
    d_ab, d_ba = lpips(a, b, model=model), lpips(b, a, model=model)
    torch.testing.assert_close(d_ab, d_ba)
    assert torch.all(d_ab > 1e-3)
    # a stronger corruption is farther
    mild = (a + 0.02 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    assert torch.all(lpips(a, mild, model=model) < d_ab)


def test_download_from_url_into_cache(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    backbone_bytes_path = src / "alexnet-tmp.pth"
    torch.save(_backbone_state("alex", 2), backbone_bytes_path)
    digest = hashlib.sha256(backbone_bytes_path.read_bytes()).hexdigest()
    named = src / f"alexnet-owt-{digest[:8]}.pth"
    backbone_bytes_path.rename(named)
    torch.save(_head_state("alex", 3), src / "alex.pth")
    cache = tmp_path / "cache"
    model = LPIPS.from_pretrained((src / "alex.pth").as_uri(), net="alex", backbone=named.as_uri(),
                                  cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([named.name, "alex.pth"])
    assert torch.equal(model.lins[0].weight, _head_state("alex", 3)["lin0.model.1.weight"])


def test_download_with_wrong_hash_prefix_leaves_no_file(tmp_path):
    bad = tmp_path / "alexnet-owt-deadbeef.pth"
    torch.save(_backbone_state("alex", 2), bad)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="SHA-256"):
        LPIPS.from_pretrained(tmp_path / "missing-but-unused.pth", net="alex", backbone=bad.as_uri(),
                              cache_dir=cache)
    assert not any(cache.iterdir())


def test_strict_loading_errors(tmp_path):
    backbone = _backbone_state("alex", 0)
    del backbone["features.3.bias"]
    backbone["features.99.weight"] = torch.zeros(1)
    torch.save(backbone, tmp_path / "bb.pth")
    torch.save(_head_state("alex", 0), tmp_path / "alex.pth")
    with pytest.raises(CheckpointError, match=r"missing \[features\.3\.bias\].*unexpected \[features\.99"):
        LPIPS.from_pretrained(tmp_path / "alex.pth", backbone=tmp_path / "bb.pth")

    torch.save(_backbone_state("alex", 0), tmp_path / "bb.pth")
    head = _head_state("alex", 0)
    head["lin2.model.1.weight"] = -head["lin2.model.1.weight"]
    torch.save(head, tmp_path / "neg.pth")
    with pytest.raises(CheckpointError, match="negative"):
        LPIPS.from_pretrained(tmp_path / "neg.pth", backbone=tmp_path / "bb.pth")

    torch.save(_head_state("vgg", 0), tmp_path / "vgg_head.pth")
    with pytest.raises(CheckpointError, match="shape-mismatched"):
        LPIPS.from_pretrained(tmp_path / "vgg_head.pth", backbone=tmp_path / "bb.pth")

    with pytest.raises(CheckpointError, match="does not exist"):
        LPIPS.from_pretrained(tmp_path / "nope.pth", backbone=tmp_path / "bb.pth")


def test_bad_arguments():
    with pytest.raises(Gen3RError, match="unknown net"):
        LPIPS("squeeze")
    model = LPIPS("alex")
    with pytest.raises(Gen3RError, match="31x31"):
        model(torch.rand(3, 30, 64), torch.rand(3, 30, 64))
    with pytest.raises(Gen3RError, match="shape"):
        model(torch.rand(3, 32, 32), torch.rand(3, 32, 33))


def test_functional_default_downloads_official_files_once(tmp_path, monkeypatch):
    """``lpips(pred, gt)`` without a model fetches the two official files (here: file:// stand-ins
    under the official names) into $GEN3R_CACHE/lpips and reuses the built model."""
    import dataclasses
    import importlib

    lp = importlib.import_module("gen3r.eval.perceptual")

    src = tmp_path / "mirror"
    src.mkdir()
    backbone = src / "alexnet-tmp.pth"
    torch.save(_backbone_state("alex", 4), backbone)
    named = src / f"alexnet-owt-{hashlib.sha256(backbone.read_bytes()).hexdigest()[:8]}.pth"
    backbone.rename(named)
    torch.save(_head_state("alex", 5), src / "alex.pth")
    spec = dataclasses.replace(lp._SPECS["alex"], backbone_url=named.as_uri(), head_url=(src / "alex.pth").as_uri())
    monkeypatch.setitem(lp._SPECS, "alex", spec)
    monkeypatch.setattr(lp, "_DEFAULT_MODELS", {})
    monkeypatch.setenv("GEN3R_CACHE", str(tmp_path / "cache"))

    gen = torch.Generator().manual_seed(7)
    a, b = torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)
    first = lpips(a, b)
    assert sorted(p.name for p in (tmp_path / "cache" / "lpips").iterdir()) == sorted([named.name, "alex.pth"])
    named.unlink()  # a second call must not download again
    torch.testing.assert_close(lpips(a, b), first)
    reference = LPIPS.from_pretrained(tmp_path / "cache" / "lpips" / "alex.pth",
                                      backbone=tmp_path / "cache" / "lpips" / named.name)
    torch.testing.assert_close(first, reference(a, b).double())
