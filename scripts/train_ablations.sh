#!/usr/bin/env bash
# The ablations of the mini model (issue 14; docs/benchmarks.md "Quality of the mini model"), each with
# the data, steps and sizes of the stage it replaces and in the same two passes as the mini recipe
# (they start from scripts/train_mini.sh's base checkpoints, or from the shipped model: see bases()):
#   2-stage: an appearance-only DiT (RGB video model), geometry by mini VGGT on its frames;
#   w/o KL:  the geometry adapter without the KL alignment, then the joint DiT retrained on it.
# The two chains run side by side (one thread each); every stage resumes when the script runs again.
#   bash scripts/train_ablations.sh       # ~2 h on 2 CPU cores
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
G="bash scripts/run gen3r"
A=runs/ablations
resume() { [[ -d "$1" ]] && ls "$1"/checkpoint-* >/dev/null 2>&1 && echo --resume || true; }
once() { [[ -f "$1/model_index.json" ]] || $G assemble "$@"; }  # an assembled checkpoint is kept
# the trained parts of an ablation (float16) go into the repository: benchmarks/quality_mini.py
# assembles the ablation from the shipped model and them where runs/ is absent (a fresh clone)
keep() { bash scripts/run python benchmarks/quality_mini.py --keep "$1"; }  # its list of parts per ablation

# The mini recipe's bases. Where its runs are gone (a fresh clone), they are rebuilt from the shipped
# model: its VGGT and refined VAE, with the adapter and DiT fresh (seed 0, as in runs/mini/base) for
# pass 1 and as shipped for pass 2 (where the ablations replace both). Pass 1 of an ablation then sees
# the refined VAE's latents where the mini model's pass 1 saw the first VAE's.
bases() {
  [[ -f runs/mini/base/model_index.json ]] || \
    $G assemble runs/mini/base --base gen3r/assets/gen3r-mini --fresh adapter --fresh dit
  [[ -f runs/mini/base2/model_index.json ]] || $G assemble runs/mini/base2 --base gen3r/assets/gen3r-mini
}

two_stage() {
  once $A/2stage/base --base runs/mini/base --fresh dit --arch mini-2stage
  $G train dit --preset mini-2stage $(resume $A/2stage/dit)
  once $A/2stage/base2 --base runs/mini/base2 --dit $A/2stage/dit
  $G train dit --preset mini-2stage-refine $(resume $A/2stage/dit2)
  once $A/2stage/model --base $A/2stage/base2 --dit $A/2stage/dit2 --fp16
  keep two_stage
}
no_kl() {
  $G train adapter --preset mini-nokl $(resume $A/nokl/adapter)
  $G train dit --preset mini-nokl $(resume $A/nokl/dit)
  once $A/nokl/base2 --base runs/mini/base2 --adapter $A/nokl/adapter --dit $A/nokl/dit
  $G train adapter --preset mini-nokl-refine $(resume $A/nokl/adapter2)
  $G train dit --preset mini-nokl-refine $(resume $A/nokl/dit2)
  once $A/nokl/model --base $A/nokl/base2 --adapter $A/nokl/adapter2 --dit $A/nokl/dit2 --fp16
  keep no_kl
}
mkdir -p $A/2stage $A/nokl
bases
export OMP_NUM_THREADS=1
two_stage > $A/2stage.log 2>&1 &
no_kl > $A/nokl.log 2>&1 &
wait
