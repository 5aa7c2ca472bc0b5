#!/usr/bin/env bash
# Does a policy trained on ordinary-topic imports still manipulate? Records expert episodes as the bags a robot
# without rt1_ros's ArmCommand gives (tf, joint_states, odom, camera), imports them through
# config/rosbag_mapping_ordinary.yaml, fine-tunes the shipped policy on the imports and evaluates it. Two baselines on
# the same seeds: the same fine-tune on the same episodes recorded natively (rt1-generate: the expert's commanded
# actions), which isolates what the import changes, and the shipped policy itself (docs/results.md).
#
#   scripts/train_on_ordinary_bags.sh                       # defaults below
#   EPISODES=50 STEPS=600 WORKDIR=outputs/ordinary scripts/train_on_ordinary_bags.sh
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
EPISODES=${EPISODES:-12}          # expert episodes per family (train seeds 0..EPISODES-1)
STEPS=${STEPS:-300}               # fine-tuning optimiser steps
EVAL_EPISODES=${EVAL_EPISODES:-50}  # evaluation episodes per family (dev seeds)
WORKDIR=${WORKDIR:-outputs/ordinary_bags}
FAMILIES=${FAMILIES:-"pick push move_near"}
run() { echo "+ $*"; PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" scripts/rt1-env "$@"; }

# 1. Expert episodes as ordinary-topic bags (PNG-compressed camera), one bag and sidecar per episode.
run python -m rt1_ros.training.ordinary_bags record --output "$WORKDIR/bags" --families $FAMILIES \
  --episodes-per-family "$EPISODES" --image-format png
# 2. Import them through the mapping (each bag's <bag>.segments.yaml gives its instruction and success), then show
#    how close the imported actions are to what the expert commanded.
run python -m rt1_ros.data.rosbag_import "$WORKDIR"/bags/*/ --mapping config/rosbag_mapping_ordinary.yaml \
  --output "$WORKDIR/data" --frame-size 144
run python -m rt1_ros.training.ordinary_bags compare --bags "$WORKDIR/bags" --dataset "$WORKDIR/data" || true
# 3. The same episodes (families, seeds, scenes, instructions) recorded natively, for the baseline.
run python -m rt1_ros.training.demonstrations --output "$WORKDIR/native_data" --families $FAMILIES \
  --episodes-per-family "$EPISODES" --frame-size 144 --workers 2
# 4. Fine-tune the shipped policy on the imports, and the same way on the native recordings. Imports carry no
#    privileged scene state, so the training-only heads are off; the rest follows config/recipe_sim.yaml.
for name in data native_data; do
  run python -m rt1_ros.training --data "$WORKDIR/$name" --output "$WORKDIR/model_$name" --set \
    init_checkpoint=models/rt1_sim total_steps="$STEPS" time_budget_min=0 learning_rate=0.0003 warmup_steps=20 \
    target_sigma_bins=4.0 auxiliary_state_weight=0 target_cell_weight=0 backbone_learning_rate_ratio=0.3 \
    crop_scale_min=0.95 val_fraction=0.05 eval_every=100 checkpoint_every=100
done
# 5. Closed-loop success on the dev seeds, through the ROS nodes: fine-tuned on imports, on native recordings, and
#    the shipped policy they started from.
evaluate() {
  run python -m rt1_ros.closed_loop.evaluation --checkpoint "$2" --families $FAMILIES \
    --episodes-per-family "$EVAL_EPISODES" --workers 2 --output "$WORKDIR/eval_$1"
}
evaluate imports "$WORKDIR/model_data/best"
evaluate native "$WORKDIR/model_native_data/best"
evaluate shipped models/rt1_sim
