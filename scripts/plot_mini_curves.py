"""Loss curves of the mini recipe's runs -> docs/mini-model/curves.png, and of the ablations next to the
runs they replace -> docs/mini-model/ablation-curves.png (thin wrapper over gen3r.train.curves).

The curves are drawn from the copies of each run's metrics.jsonl kept in docs/mini-model/runs/ (runs/
is not in git); ``--collect`` first refreshes those copies from the run folders that are present.

    python scripts/plot_mini_curves.py [--ablations] [--collect]
"""

import shutil
import sys
from pathlib import Path

from gen3r.train.curves import plot_runs

KEPT = Path("docs/mini-model/runs")
ADAPTER = ["recon", "camera", "depth", "kl", "similarity"]
# panel -> (run folder, name of its kept copy, loss terms)
MINI = {"VGGT": ("runs/mini/vggt", "vggt", ["camera", "depth", "point"]),
        "Wan VAE": ("runs/mini/vae", "vae", ["l1", "gradient"]),
        "geometry adapter": ("runs/mini/adapter", "adapter", ADAPTER),
        "joint DiT": ("runs/mini/dit", "dit", ["loss"]),
        "Wan VAE, pass 2": ("runs/mini/vae2", "vae2", ["l1", "gradient"]),
        "geometry adapter, pass 2": ("runs/mini/adapter2", "adapter2", ADAPTER),
        "joint DiT, pass 2": ("runs/mini/dit2", "dit2", ["loss"])}
ABLATIONS = {"adapter (KL)": MINI["geometry adapter"],
             "adapter w/o KL": ("runs/ablations/nokl/adapter", "ablation-nokl-adapter", ADAPTER),
             "joint DiT": MINI["joint DiT"],
             "joint DiT on w/o-KL latents": ("runs/ablations/nokl/dit", "ablation-nokl-dit", ["loss"]),
             "2-stage RGB DiT": ("runs/ablations/2stage/dit", "ablation-2stage-dit", ["loss"]),
             "joint DiT, pass 2": MINI["joint DiT, pass 2"],
             "2-stage RGB DiT, pass 2": ("runs/ablations/2stage/dit2", "ablation-2stage-dit2", ["loss"]),
             "adapter w/o KL, pass 2": ("runs/ablations/nokl/adapter2", "ablation-nokl-adapter2", ADAPTER),
             "joint DiT on w/o-KL latents, pass 2": ("runs/ablations/nokl/dit2", "ablation-nokl-dit2", ["loss"])}
table, out = (ABLATIONS, "docs/mini-model/ablation-curves.png") if "--ablations" in sys.argv else \
    (MINI, "docs/mini-model/curves.png")
if "--collect" in sys.argv:
    for run, kept, _ in table.values():
        if (Path(run) / "metrics.jsonl").is_file():
            shutil.copy(Path(run) / "metrics.jsonl", KEPT / f"{kept}.jsonl")
present = {name: KEPT / f"{kept}.jsonl" for name, (_, kept, _) in table.items() if (KEPT / f"{kept}.jsonl").is_file()}
plot_runs(present, out, keys={name: table[name][2] for name in present}, window=30)
print(f"wrote {out}")
