"""Loss curves of the mini recipe's runs -> docs/mini-model/curves.png (thin wrapper over gen3r.train.curves)."""

import sys
from pathlib import Path

from gen3r.train.curves import plot_runs

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/mini")
RUNS = {"VGGT": ("vggt", ["camera", "depth", "point"]), "Wan VAE": ("vae", ["l1", "gradient"]),
        "geometry adapter": ("adapter", ["recon", "camera", "depth", "kl", "similarity"]),
        "joint DiT": ("dit", ["loss"]), "Wan VAE, pass 2": ("vae2", ["l1", "gradient"]),
        "geometry adapter, pass 2": ("adapter2", ["recon", "camera", "depth", "kl", "similarity"]),
        "joint DiT, pass 2": ("dit2", ["loss"])}
present = {name: ROOT / run for name, (run, _) in RUNS.items() if (ROOT / run / "metrics.jsonl").is_file()}
plot_runs(present, "docs/mini-model/curves.png", keys={name: RUNS[name][1] for name in present}, window=30)
print("wrote docs/mini-model/curves.png")
