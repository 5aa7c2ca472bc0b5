"""rt1-train: behaviour cloning of RT-1 on an episode dataset (rt1_ros.data.dataset).

    rt1-train --data data/sim --output checkpoints/tiny_sim                # config/train.yaml defaults
    rt1-train --output checkpoints/tiny_sim --resume                       # continue from checkpoints/.../latest
    rt1-train --output ... --set total_steps=200 time_budget_min=0 learning_rate=3e-4
    torchrun --nproc_per_node=4 -m rt1_ros.training --output ...              # multi-GPU (DistributedDataParallel)

Objective: cross-entropy per action dimension (256 bins; the mode dimension over its 3 valid classes only),
averaged over the 11 dimensions. AdamW, linear warm-up then cosine decay, gradient-norm clipping, autocast on CUDA.

Training windows follow inference exactly: 6 frames ending at the target step, front-padded by repeating frame 0
(`pad_window_indices`), frames resized with `resize_for_model`. The frozen sentence encoder runs once per distinct
instruction before training; only the (B,384) embeddings enter the loop.

A converted release (rt1-convert) fine-tunes as it was trained: init_checkpoint=<converted dir>, windows of 6
consecutive steps with a loss at every frame's 11 action positions, its tokenizer, bounds and 256×320 frames, 512-d
Universal Sentence Encoder embeddings (text_encoder=use:<dir> or embeddings:<map>); config/finetune_released.yaml
and docs/training.md "Fine-tuning Google's released RT-1".

Efficiency: a batch is a few runs of consecutive steps. Each frame of a run is encoded once by the backbone and its
tokens are gathered into every window that contains it (the tokens of a frame depend only on that frame and the
instruction, which is what the node's frame-token cache relies on too). One crop and one colour jitter per run, as a
real camera would drift, not flicker.

Output directory::

    latest/   model.safetensors + config.yaml (what rt1_node loads) + optimizer.safetensors + trainer_state.json
    best/     the same, for the lowest validation loss
    metrics.csv, train_config.yaml

No pickle anywhere: optimizer tensors go to safetensors, the rest of its state (param groups, step) to JSON.

Multi-GPU: under torchrun (WORLD_SIZE > 1) each process takes one GPU (LOCAL_RANK), wraps the model in
DistributedDataParallel (NCCL; gloo on CPU) and draws its own batches (seeded by rank); rank 0 validates, logs and
writes checkpoints. The batch given in the config is per process. BatchNorm statistics stay per process.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rt1_ros.training.config import TrainConfig, parse_overrides
from rt1_ros.training.trainer import Trainer
from rt1_ros.configuration.yaml_config import add_override_argument


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="training YAML (default config/train.yaml)")
    parser.add_argument("--data", default=None, help="dataset directory (overrides the config's `data`)")
    parser.add_argument("--output", required=True, help="run directory for checkpoints and metrics.csv")
    parser.add_argument("--resume", action="store_true", help="continue from <output>/latest if it exists")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_override_argument(parser, "override config keys (e.g. --set total_steps=800 learning_rate=3e-4)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = TrainConfig.from_yaml(args.config)
    overrides = list(args.set) + ([f"data={args.data}"] if args.data else [])
    try:
        config = parse_overrides(config, overrides)
    except ValueError as exc:
        parser.error(str(exc))
    trainer = Trainer(config, Path(args.output), resume=args.resume, progress=not args.no_progress,
                      device=args.device)
    result = trainer.run()
    if trainer.dist.is_main:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}, indent=1))
        print(f"node-loadable checkpoint: {Path(args.output) / 'best'}")
    return 0

