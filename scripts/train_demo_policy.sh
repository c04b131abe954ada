#!/usr/bin/env bash
# Reproduces the demo's packaged base policy, sarm2_gym/pretrained/tinyvla_fold_shorts/:
# 20 expert FoldShorts demonstrations (seeds 0-19; the demo evaluates on seeds from 3,000,000),
# then plain behaviour cloning of TinyVLA (CNN encoder, 64 px, default sizes).
# Usage: bash scripts/train_demo_policy.sh [WORK_DIR]   (about 30 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/demo_policy}"
sarm2="${SARM2:-.venv/bin/sarm2}"
dest="sarm2_gym/pretrained/tinyvla_fold_shorts"

"$sarm2" collect --task SARM2-FoldShorts-v0 --episodes 20 --seed 0 --quality expert \
    --image-size 96 --out "$work/demos"
if [[ -f "$work/bc/train_state/latest.json" ]]; then resume=(--resume); else resume=(); fi
"$sarm2" bc --data "$work/demos" --out "$work/bc" --steps 3000 --batch-size 64 --lr 1e-3 \
    --image-size 64 --seed 0 "${resume[@]}"
mkdir -p "$dest"
cp "$work/bc/config.json" "$work/bc/model.safetensors" "$dest/"
echo "packaged $(du -sh "$dest" | cut -f1) policy in $dest"
