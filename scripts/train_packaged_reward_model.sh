#!/usr/bin/env bash
# Reproduces the packaged reward model, sarm2_gym/pretrained/sarm2_sim/: SARM2 (default CPU-sized
# config, EfficientNet-Lite0 features at 48 px) trained on the training split of the default
# ten-task benchmark, then stored with float16 weights (it loads as float32).
# Usage: bash scripts/train_packaged_reward_model.sh [WORK_DIR]
# About 28 min for the data and 30 min for features and training on 2 CPU cores; every step
# resumes (make-benchmark skips finished episodes, train-rm continues from its checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/packaged_reward_model}"
sarm2="${SARM2:-.venv/bin/sarm2}"
python="${PYTHON:-.venv/bin/python}"
dest="sarm2_gym/pretrained/sarm2_sim"

"$sarm2" make-benchmark --out "$work/data" --num-workers 2
if [[ -f "$work/model/train_state/latest.json" ]]; then resume=(--resume); else resume=(); fi
"$sarm2" train-rm --data "$work/data/train" --out "$work/model" \
    --config scripts/packaged_reward_model.json --steps 3000 --seed 0 --batch-size 64 \
    --num-workers 2 "${resume[@]}"
"$python" - "$work/model" "$dest" <<'EOF'
import sys

from sarm2_gym.reward import SARM2RewardModel

SARM2RewardModel.from_pretrained(sys.argv[1]).half().save_pretrained(sys.argv[2])
EOF
echo "packaged $(du -sh "$dest" | cut -f1) reward model in $dest"
