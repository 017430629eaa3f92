#!/usr/bin/env bash
# Train the bundled default model reproducibly: generated ISPRS-like scenes -> rsseg prepare ->
# rsseg train -> fp16 model file at rsseg/models/weights/default.pt -> held-out mIoU.
# About 20 minutes on a 2-core CPU. Usage: bash scripts/train_default_model.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-8}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/default_model}
MODEL=rsseg/models/weights/default.pt
mkdir -p "$WORK/scenes" rsseg/models/weights

images=(); labels=()
for seed in 11 12 13 14 15; do                      # training scenes
  img="$WORK/scenes/train_$seed.tif"; lab="$WORK/scenes/train_${seed}_labels.tif"
  [ -f "$img" ] || "$BIN/python" scripts/make_samples.py --width 1536 --height 1536 --seed "$seed" \
      --out-image "$img" --out-labels "$lab"
  images+=(--image "$img"); labels+=(--labels "$lab")
done
heldout="$WORK/scenes/heldout_99.tif"               # a scene training never sees
[ -f "$heldout" ] || "$BIN/python" scripts/make_samples.py --width 1536 --height 1536 --seed 99 \
    --out-image "$heldout" --out-labels "$WORK/scenes/heldout_99_labels.tif"

"$BIN/rsseg" prepare generic "${images[@]}" "${labels[@]}" --classes isprs --patch 256 --stride 192 \
    --val-fraction 0.25 -o "$WORK/patches" --overwrite
"$BIN/rsseg" train --data "$WORK/patches" --model abcnet --set model.backbone=mobilenetv2_100 \
    --epochs "$EPOCHS" --batch-size 8 --tile 256 -o "$WORK/run" --overwrite

"$BIN/python" - "$WORK/run/best.pt" "$MODEL" <<'PY'
import sys
from rsseg.models import load_checkpoint, save_checkpoint
model, card = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], half=True, classes=card.classes, input=card.input, tile_size=card.tile_size,
                extra=card.extra)
print(f"wrote {sys.argv[2]} (float16 weights)")
PY
"$BIN/rsseg" evaluate --checkpoint "$MODEL" --scene "$heldout" --labels "$WORK/scenes/heldout_99_labels.tif" \
    -o "$WORK/heldout_metrics.json"
