"""Memory/time table of the full-size Gen3R model, computed from parameter and activation counts.

Parameters come from the official key/shape manifests (tests/data/official-keys); activations from
the tensor sizes each stage holds at its peak (formulas below, bytes per element from the dtype).
FLOPs are 2 x multiply-accumulates of the DiT (the dominant cost). Writes docs/memory.md.

    python benchmarks/memory_estimate.py --out docs/memory.md
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


def param_counts() -> dict[str, int]:
    counts = {}
    for comp in ("text_encoder", "transformer", "clip_image_encoder", "vggt", "geo_adapter", "wan_vae"):
        keys = json.loads((ROOT / "tests/data/official-keys" / f"{comp}.json").read_text())["keys"]
        if comp == "clip_image_encoder":  # the text tower is dropped at load time
            keys = {k: v for k, v in keys.items() if k.startswith("model.visual.")}
        counts[comp] = sum(math.prod(s) for s in keys.values())
    return counts


def activations(frames: int, height: int, width: int, bytes_per: int) -> dict[str, float]:
    """Peak activation bytes per stage (inference, batch 1, CFG batch 2 in the DiT)."""
    f, lh, lw = (frames - 1) // 4 + 1, height // 8, 2 * (width // 8)
    tokens = f * (lh // 2) * (lw // 2)
    dim, ffn, text = 1536, 8960, 512 + 257
    cfg = 2
    # DiT block peak: residual (fp32) + qkv + ffn hidden, with flash/mem-efficient attention (O(N)).
    dit = cfg * tokens * (dim * 4 + 3 * dim * bytes_per + ffn * bytes_per + text * 0)
    dit_math_attn = cfg * 12 * tokens * tokens * bytes_per  # if SDPA falls back to materialised scores
    # VGGT aggregator on the condition frames (worst case allview: all frames); 4 tapped layers kept.
    p = (height // 14) * (width // 14) + 5
    vggt_tokens = 4 * frames * p * 2048 * bytes_per
    vggt_block = frames * p * 1024 * bytes_per * (3 + 4)  # qkv + mlp hidden of one block
    # Geometry adapter decode output (10240 ch on the token grid) + one decoder activation.
    adapter = (10240 * frames * (height // 14) * (width // 14)
               + 1024 * 4 * (height // 8) * (width // 8)) * bytes_per
    # Wan VAE decode: one latent frame -> 4 frames at full res, widest full-res activations (96-192 ch).
    vae = 4 * 192 * height * width * bytes_per * 3
    # DPT heads, chunks of 8 frames at full resolution (128 ch) + the token projections.
    dpt = 8 * 128 * height * width * bytes_per * 2
    return {"transformer": dit, "transformer (math attention)": dit_math_attn, "vggt": vggt_tokens + vggt_block,
            "geo_adapter": adapter, "wan_vae": vae, "dpt heads": dpt, "tokens": tokens}


def dit_tflops(frames: int, height: int, width: int, steps: int) -> float:
    f, lh, lw = (frames - 1) // 4 + 1, height // 8, 2 * (width // 8)
    n = f * (lh // 2) * (lw // 2)
    dim, ffn, layers = 1536, 8960, 30
    per_layer = n * (4 * dim * dim + 2 * dim * ffn) + 2 * n * n * dim + n * (2 * dim * dim) + 2 * n * 769 * dim
    return 2 * per_layer * layers * 2 * steps / 1e12  # x2 for CFG


def build_table(frames: int, height: int, width: int, steps: int) -> str:
    counts = param_counts()
    rows = []
    for dtype, b in (("fp32", 4), ("bf16", 2)):
        w = {k: v * b / GB for k, v in counts.items()}
        act = activations(frames, height, width, b)
        peak_act = max(v for k, v in act.items() if k not in ("tokens", "transformer (math attention)")) / GB
        resident = sum(w.values())
        no_t5 = resident - w["text_encoder"]
        offload = max(w.values()) / 30 * 2  # group offload, one DiT block (+ prefetch) resident
        rows.append((dtype, w, resident, no_t5, offload, peak_act, act))
    lines = [f"# Memory and time of the full-size model ({frames} frames, {height}x{width}, {steps} steps)", "",
             "Computed by `python benchmarks/memory_estimate.py --out docs/memory.md` from the official "
             "parameter manifests and the activation sizes of each stage (see the script for the formulas). "
             "Numbers are estimates of accelerator memory for batch 1; add ~1-2 GB for the CUDA context.", "",
             "## Parameters", "", "| component | parameters | fp32 GB | bf16 GB |", "|---|---:|---:|---:|"]
    for k, v in counts.items():
        lines.append(f"| {k} | {v / 1e9:.3f} B | {v * 4 / GB:.2f} | {v * 2 / GB:.2f} |")
    total = sum(counts.values())
    lines += [f"| **total** | {total / 1e9:.3f} B | {total * 4 / GB:.2f} | {total * 2 / GB:.2f} |", "",
              "(clip_image_encoder counts only the vision tower we keep; the official file also holds an "
              "unused 0.56 B-parameter text tower.)", "", "## Peak activations per stage", "",
              "| stage | fp32 GB | bf16 GB |", "|---|---:|---:|"]
    a32, a16 = rows[0][6], rows[1][6]
    for k in a32:
        if k != "tokens":
            lines.append(f"| {k} | {a32[k] / GB:.2f} | {a16[k] / GB:.2f} |")
    lines += ["", f"DiT sequence: {a32['tokens']:,} tokens. With a math (materialised-score) attention backend "
              "the DiT alone needs the row above: use SDPA flash / memory-efficient kernels (the default on CUDA).",
              "", "## What fits where", "",
              "| GPU memory | how | weights resident (bf16) | peak estimate |", "|---|---|---:|---:|"]
    w16, res16, no_t5_16, off16, act16 = rows[1][1], rows[1][2], rows[1][3], rows[1][4], rows[1][5]
    plans = [
        ("80 GB", "everything on the GPU, bf16 (or fp32: "
         f"{rows[0][2] + rows[0][5]:.0f} GB)", res16, res16 + act16),
        ("48 GB", "everything on the GPU, bf16", res16, res16 + act16),
        ("24 GB", "bf16, `--text-encoder-cpu` (UMT5 runs on the CPU, once per prompt)", no_t5_16, no_t5_16 + act16),
        ("16 GB", "bf16, `--text-encoder-cpu --offload --vae-tiling` (group offloading: one block resident)",
         off16 + w16["wan_vae"], off16 + w16["wan_vae"] + act16),
    ]
    for gpu, how, resident, peak in plans:
        lines.append(f"| {gpu} | {how} | {resident:.1f} GB | {peak:.1f} GB |")
    lines += ["", "## Compute", "",
              f"DiT: {dit_tflops(frames, height, width, steps):,.0f} TFLOPs for {steps} steps with CFG "
              f"(~{dit_tflops(frames, height, width, steps) / 400 / 60:.1f} min at a sustained 400 TFLOP/s bf16). "
              "VGGT, the adapter and the VAE add a few percent.", ""]
    return "\n".join(lines)


def run_cli(build, description: str) -> None:
    """``--frames/--height/--width/--steps/--out`` -> ``build(frames, height, width, steps)`` printed
    (and written to ``--out``): the command line of this script and of scaling_estimate.py."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--height", type=int, default=560)
    parser.add_argument("--width", type=int, default=560)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = build(args.frames, args.height, args.width, args.steps)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    run_cli(build_table, __doc__.split("\n\n")[0])
