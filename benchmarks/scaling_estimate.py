"""Computed (not measured) numbers for docs/scaling.md: per-GPU memory of full-size DiT training with
DDP vs FSDP2, and the expected generation speed-up of context parallelism with N GPUs.

Parameters come from the official manifests (as benchmarks/memory_estimate.py); FLOPs and token
counts from the same formulas. Assumptions are stated in the output.

    python benchmarks/scaling_estimate.py --out docs/scaling-numbers.md
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
_spec = importlib.util.spec_from_file_location("memory_estimate", ROOT / "benchmarks" / "memory_estimate.py")
memory_estimate = importlib.util.module_from_spec(_spec)
sys.modules["memory_estimate"] = memory_estimate
_spec.loader.exec_module(memory_estimate)

DIM, FFN, LAYERS, TEXT_TOKENS = 1536, 8960, 30, 512 + 257
#: Assumed hardware for the time estimates: H100 SXM, sustained bf16 throughput and NVLink bandwidth.
SUSTAINED_TFLOPS, NVLINK_GBPS, IB_GBPS = 400.0, 450.0, 50.0


def dit_tokens(frames: int, height: int, width: int) -> int:
    return ((frames - 1) // 4 + 1) * (height // 16) * (2 * width // 16)


def training_memory(counts: dict[str, int], gpus: int, frames: int, height: int, width: int) -> dict[str, dict]:
    """Per-GPU GB of DiT training (batch 1 per GPU, bf16 autocast, gradient checkpointing on)."""
    p = counts["transformer"]
    frozen = 2 * (counts["vggt"] + counts["wan_vae"] + counts["geo_adapter"] + counts["clip_image_encoder"])
    t5 = 2 * counts["text_encoder"]
    n = dit_tokens(frames, height, width)
    checkpoints = n * DIM * 4 * LAYERS  # fp32 residual saved at every block boundary
    block_peak = n * (DIM * 4 * 6 + (3 * DIM + FFN) * 2 * 3)  # one block recomputed + its backward
    block_params = p / LAYERS
    ddp = {"weights fp32": 4 * p, "gradients fp32": 4 * p, "AdamW moments fp32": 8 * p,
           "DDP bucket copy of gradients": 4 * p}
    fsdp = {"weights fp32 (shard)": 4 * p / gpus, "gradients fp32 (shard)": 4 * p / gpus,
            "AdamW moments fp32 (shard)": 8 * p / gpus,
            "gathered bf16 blocks (current + prefetched)": 2 * 2 * block_params,
            "reduce-scatter buffer of one block (fp32)": 4 * block_params}
    common = {"frozen VGGT, VAE, adapter, CLIP (bf16)": frozen, "UMT5 (bf16; 0 with cached prompts)": t5,
              "activations (checkpointed residuals + one block)": checkpoints + block_peak}
    return {name: {**parts, **common} for name, parts in (("DDP", ddp), ("FSDP2", fsdp))}


def generation_speedup(gpus: int, frames: int, height: int, width: int, steps: int, interconnect_gbps: float) -> dict:
    """Ulysses context parallelism: compute split N ways, plus 4 all-to-alls (q, k, v, out) per attention."""
    n = dit_tokens(frames, height, width)
    total_flops = memory_estimate.dit_tflops(frames, height, width, steps) * 1e12
    compute_s = total_flops / (SUSTAINED_TFLOPS * 1e12)
    calls = steps * 2 * LAYERS  # CFG doubles the batch: one call of batch 2 per step and layer
    # each all-to-all moves (N-1)/N of a (2, n, dim) bf16 tensor out of every GPU
    bytes_per_a2a = 2 * n * DIM * 2 * (gpus - 1) / gpus
    comm_s = calls * 4 * bytes_per_a2a / (interconnect_gbps * 1e9) if gpus > 1 else 0.0
    parallel_s = compute_s / gpus + comm_s
    return {"gpus": gpus, "compute_1gpu_s": compute_s, "time_s": parallel_s, "speedup": compute_s / parallel_s}


def build(frames: int, height: int, width: int, steps: int) -> str:
    counts = memory_estimate.param_counts()
    lines = [f"Computed by `python benchmarks/scaling_estimate.py` for {frames} frames of {height} x {width} "
             f"({dit_tokens(frames, height, width):,} DiT tokens), not measured.", ""]
    lines += ["### Per-GPU memory of full-size DiT training (batch 1 per GPU, bf16 autocast, gradient checkpointing)",
              ""]
    for gpus in (8, 16, 32):
        mem = training_memory(counts, gpus, frames, height, width)
        if gpus == 8:
            keys = list(dict.fromkeys(k for parts in mem.values() for k in parts))
            lines += ["| part | DDP GB | FSDP2 GB (8 GPUs) |", "|---|---|---|"]
            for k in keys:
                d, f = mem["DDP"].get(k), mem["FSDP2"].get(k)
                ddp, fsdp = ('-' if v is None else f'{v / GB:.1f}' for v in (d, f))
                lines.append(f"| {k} | {ddp} | {fsdp} |")
            lines.append(f"| **total** | **{sum(mem['DDP'].values()) / GB:.1f}** | "
                         f"**{sum(mem['FSDP2'].values()) / GB:.1f}** |")
            lines.append("")
    def total(gpus: int, kind: str) -> float:
        return sum(training_memory(counts, gpus, frames, height, width)[kind].values()) / GB

    totals = [(g, total(g, "FSDP2")) for g in (2, 4, 8, 16, 32)]
    lines += ["FSDP2 total by GPU count: " + ", ".join(f"{g} GPUs {t:.1f} GB" for g, t in totals) +
              f"; DDP is the same on any count ({total(1, 'DDP'):.1f} GB).", ""]
    lines += [f"### Expected generation speed-up with Ulysses context parallelism ({steps} steps, CFG)", "",
              f"Assumes {SUSTAINED_TFLOPS:.0f} TFLOP/s sustained bf16 per GPU and all-to-all at {NVLINK_GBPS:.0f} GB/s "
              f"(NVLink, one node) or {IB_GBPS:.0f} GB/s (InfiniBand, across nodes); encoders, VAE and VGGT (a few "
              "percent) stay on rank 0 and are not counted.", "",
              "| GPUs | DiT time, NVLink | speed-up | DiT time, InfiniBand | speed-up |", "|---|---|---|---|---|"]
    for gpus in (1, 2, 4, 8, 16):
        a = generation_speedup(gpus, frames, height, width, steps, NVLINK_GBPS)
        b = generation_speedup(gpus, frames, height, width, steps, IB_GBPS)
        lines.append(f"| {gpus} | {a['time_s']:.0f} s | {a['speedup']:.2f}x "
                     f"| {b['time_s']:.0f} s | {b['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    memory_estimate.run_cli(build, __doc__.split("\n\n")[0])
