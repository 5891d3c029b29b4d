#!/usr/bin/env bash
# The mini Gen3R recipe, in the method's order (docs/mini-model.md). Every stage resumes from its
# newest checkpoint when run again, so the script can be restarted after any stop.
#   bash scripts/train_mini.sh            # everything, ~4.5 h on 2 CPU cores
# Runs live in runs/ (git-ignored); the result is written to gen3r/assets/gen3r-mini (float16).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
G="bash scripts/run gen3r"
resume() { [[ -d "$1" ]] && ls "$1"/checkpoint-* >/dev/null 2>&1 && echo --resume || true; }

# 1. data: 3000 training scenes, 200 dev scenes (17 frames of 112 x 112)
$G cache runs/cache/train --seeds 0:3000 --workers 2
$G cache runs/cache/dev --seeds 1000000:1000200 --workers 2
# 2. base models from scratch, side by side (one thread each). VGGT: the mini schedule up to step
#    2500, then the camera-weighted phase to 5000 (docs/mini-model.md says why).
vggt() {
  if [[ ! -d runs/mini/vggt/checkpoint-0002500 ]]; then
    OMP_NUM_THREADS=1 $G train vggt --preset mini --stop-at 2500 $(resume runs/mini/vggt)
  fi
  OMP_NUM_THREADS=1 $G train vggt --preset mini-cameras --resume
}
mkdir -p runs/mini
vggt > runs/mini/vggt.log 2>&1 &
OMP_NUM_THREADS=1 $G train vae --preset mini $(resume runs/mini/vae) > runs/mini/vae.log 2>&1 &
wait
# 3. base checkpoint: trained VGGT + VAE (latent statistics fitted on the cache), fresh adapter/DiT/towers
$G assemble runs/mini/base --vggt runs/mini/vggt --vae runs/mini/vae --cache runs/cache/train --overwrite
# 4. geometry adapter with the KL alignment to the mini VAE posterior
$G train adapter --preset mini $(resume runs/mini/adapter)
# 5. joint DiT (latents of the first 640 scenes encoded once)
$G train dit --preset mini $(resume runs/mini/dit)
# 6. second pass: the VAE refined (a new run from its weights), then the adapter and the DiT continued
#    on it from their first-pass weights (docs/mini-model.md says why)
$G train vae --preset mini-refine $(resume runs/mini/vae2)
$G assemble runs/mini/base2 --base runs/mini/base --vae runs/mini/vae2 --adapter runs/mini/adapter \
    --dit runs/mini/dit --cache runs/cache/train --overwrite
$G train adapter --preset mini-refine $(resume runs/mini/adapter2)
$G train dit --preset mini-refine $(resume runs/mini/dit2)
# 7. the shipped model
$G assemble gen3r/assets/gen3r-mini --base runs/mini/base2 --adapter runs/mini/adapter2 --dit runs/mini/dit2 \
    --fp16 --overwrite
