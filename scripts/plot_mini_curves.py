"""Loss curves of the mini recipe's runs -> docs/mini-model/curves.png, and of the ablations next to the
runs they replace -> docs/mini-model/ablation-curves.png (thin wrapper over gen3r.train.curves).

    python scripts/plot_mini_curves.py [--ablations]
"""

import sys
from pathlib import Path

from gen3r.train.curves import plot_runs

ADAPTER = ["recon", "camera", "depth", "kl", "similarity"]
MINI = {"VGGT": ("runs/mini/vggt", ["camera", "depth", "point"]), "Wan VAE": ("runs/mini/vae", ["l1", "gradient"]),
        "geometry adapter": ("runs/mini/adapter", ADAPTER), "joint DiT": ("runs/mini/dit", ["loss"]),
        "Wan VAE, pass 2": ("runs/mini/vae2", ["l1", "gradient"]),
        "geometry adapter, pass 2": ("runs/mini/adapter2", ADAPTER), "joint DiT, pass 2": ("runs/mini/dit2", ["loss"])}
ABLATIONS = {"adapter (KL)": ("runs/mini/adapter", ADAPTER), "adapter w/o KL": ("runs/ablations/nokl/adapter", ADAPTER),
             "joint DiT": ("runs/mini/dit", ["loss"]),
             "joint DiT on w/o-KL latents": ("runs/ablations/nokl/dit", ["loss"]),
             "2-stage RGB DiT": ("runs/ablations/2stage/dit", ["loss"]),
             "joint DiT, pass 2": ("runs/mini/dit2", ["loss"]),
             "2-stage RGB DiT, pass 2": ("runs/ablations/2stage/dit2", ["loss"]),
             "adapter w/o KL, pass 2": ("runs/ablations/nokl/adapter2", ADAPTER),
             "joint DiT on w/o-KL latents, pass 2": ("runs/ablations/nokl/dit2", ["loss"])}
table, out = (ABLATIONS, "docs/mini-model/ablation-curves.png") if "--ablations" in sys.argv else \
    (MINI, "docs/mini-model/curves.png")
present = {name: Path(run) for name, (run, _) in table.items() if (Path(run) / "metrics.jsonl").is_file()}
plot_runs(present, out, keys={name: table[name][1] for name in present}, window=30)
print(f"wrote {out}")
