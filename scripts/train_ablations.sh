#!/usr/bin/env bash
# The ablations of the mini model (issue 14; docs/benchmarks.md "Quality of the mini model"), each with
# the data, steps and sizes of the stage it replaces and in the same two passes as the mini recipe
# (scripts/train_mini.sh must have run: they start from its base checkpoints and latent settings):
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

two_stage() {
  once $A/2stage/base --base runs/mini/base --fresh dit --arch mini-2stage
  $G train dit --preset mini-2stage $(resume $A/2stage/dit)
  once $A/2stage/base2 --base runs/mini/base2 --dit $A/2stage/dit
  $G train dit --preset mini-2stage-refine $(resume $A/2stage/dit2)
  once $A/2stage/model --base $A/2stage/base2 --dit $A/2stage/dit2 --fp16
}
no_kl() {
  $G train adapter --preset mini-nokl $(resume $A/nokl/adapter)
  $G train dit --preset mini-nokl $(resume $A/nokl/dit)
  once $A/nokl/base2 --base runs/mini/base2 --adapter $A/nokl/adapter --dit $A/nokl/dit
  $G train adapter --preset mini-nokl-refine $(resume $A/nokl/adapter2)
  $G train dit --preset mini-nokl-refine $(resume $A/nokl/dit2)
  once $A/nokl/model --base $A/nokl/base2 --adapter $A/nokl/adapter2 --dit $A/nokl/dit2 --fp16
}
mkdir -p $A/2stage $A/nokl
export OMP_NUM_THREADS=1
two_stage > $A/2stage.log 2>&1 &
no_kl > $A/nokl.log 2>&1 &
wait
