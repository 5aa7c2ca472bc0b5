#!/usr/bin/env bash
# Does a policy trained on ordinary-topic imports still manipulate? Records expert episodes as the bags a robot
# without rt1_ros's ArmCommand gives (tf, joint_states, odom, camera), imports them through
# config/rosbag_mapping_ordinary.yaml, fine-tunes the shipped policy on the imports and evaluates it, with the
# shipped policy on the same seeds as the baseline (docs/training.md).
#
#   scripts/train_on_ordinary_bags.sh                       # defaults below
#   EPISODES=100 STEPS=600 WORKDIR=outputs/ordinary scripts/train_on_ordinary_bags.sh
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
EPISODES=${EPISODES:-50}          # expert episodes per family (train seeds 0..EPISODES-1)
STEPS=${STEPS:-300}               # fine-tuning optimiser steps
EVAL_EPISODES=${EVAL_EPISODES:-20}  # evaluation episodes per family (dev seeds)
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
# 3. Fine-tune the shipped policy on the imports only. Imports carry no privileged scene state, so the training-only
#    heads are off; the rest follows config/recipe_sim.yaml.
run python -m rt1_ros.training --data "$WORKDIR/data" --output "$WORKDIR/model" --set \
  init_checkpoint=models/rt1_sim total_steps="$STEPS" time_budget_min=0 learning_rate=0.0003 warmup_steps=20 \
  target_sigma_bins=4.0 auxiliary_state_weight=0 target_cell_weight=0 backbone_learning_rate_ratio=0.3 \
  crop_scale_min=0.95 val_fraction=0.05 eval_every=100 checkpoint_every=100
# 4. Closed-loop success on the dev seeds, through the ROS nodes: the fine-tuned policy, then the shipped one.
run python -m rt1_ros.closed_loop.evaluation --checkpoint "$WORKDIR/model/best" --families $FAMILIES \
  --episodes-per-family "$EVAL_EPISODES" --output "$WORKDIR/eval_fine_tuned"
run python -m rt1_ros.closed_loop.evaluation --checkpoint models/rt1_sim --families $FAMILIES \
  --episodes-per-family "$EVAL_EPISODES" --output "$WORKDIR/eval_shipped"
