"""Where a trained run's image encoder thinks the named object is, on its validation episodes: the training-only
target-cell head (rt1-train `target_cell_weight`) read on each episode's first frame (where the policy must find
the object among the others, before any motion) and on every frame, against the cell the object is in.

    scripts/rt1-env python scripts/target_cell_report.py outputs/model/rt1_sim/best [--data data/rt1_sim]

Prints JSON per family: first-frame and all-frame accuracy (argmax cell = the object's cell), the share within one
cell of it, and the mean distance in cells. The validation split is the run's own (val_fraction and seed of its
train config), so these are episodes the run never trained on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run's best/ or latest/ (with target_cell_head.safetensors)")
    parser.add_argument("--data", default=None, help="dataset (default: the run's own)")
    args = parser.parse_args(argv)

    from safetensors.torch import load_file

    from rt1_ros.data.dataset import EpisodeDataset
    from rt1_ros.model.checkpoint import from_pretrained
    from rt1_ros.model.rt1 import images_to_tensor
    from rt1_ros.training.heads import TargetCellHead
    from rt1_ros.inference.image_decoding import resize_for_model
    from rt1_ros.runtime.policy_loading import shared_text_encoder
    from rt1_ros.training.sampler import split_episodes
    from rt1_ros.training.objective import TARGET_CELL_HEAD_FILE

    directory = Path(args.checkpoint)
    model, _, extra = from_pretrained(directory)
    model.eval()
    train_config = extra["train_config"]
    dataset = EpisodeDataset(args.data or train_config["data"], successful_only=train_config["successful_only"])
    _, val = split_episodes(list(dataset), train_config["val_fraction"], train_config["seed"])
    names = val[0].info.extra["scene_state_names"]
    columns = (names.index("target_image_u"), names.index("target_image_v"))
    weights = load_file(str(directory / TARGET_CELL_HEAD_FILE))
    head = TargetCellHead(weights["projection.weight"].shape[1], columns)
    head.load_state_dict(weights)
    encoder = shared_text_encoder(train_config["text_encoder"])

    rows: dict[str, list[tuple[int, bool, bool, float]]] = {}  # family -> (step, exact, within one, distance)
    with torch.no_grad():
        for episode in val:
            conditioning = model.embed_instruction(encoder.encode([episode.info.instruction]))  # (1,D)
            images = images_to_tensor(np.stack([resize_for_model(f, model.config.image_size)
                                                for f in np.asarray(episode.frames)]))  # (T,3,S,S)
            logits = head(model.image_encoder(images, conditioning.expand(len(images), -1)))  # (T,g²)
            grid = round(logits.shape[1] ** 0.5)
            known, cells = head.object_cells(torch.from_numpy(np.asarray(episode.scene_state)), grid)
            steps = torch.nonzero(known).flatten().tolist()
            for step, cell, predicted in zip(steps, cells.tolist(), logits[known].argmax(dim=1).tolist()):
                (row, column), (p_row, p_column) = divmod(cell, grid), divmod(predicted, grid)
                rows.setdefault(episode.info.task_family, []).append(
                    (step, cell == predicted, max(abs(p_row - row), abs(p_column - column)) <= 1,
                     float(np.hypot(p_row - row, p_column - column))))

    def summary(entries) -> dict:
        return {"frames": len(entries), "exact": round(float(np.mean([e[1] for e in entries])), 3),
                "within_one_cell": round(float(np.mean([e[2] for e in entries])), 3),
                "mean_distance_cells": round(float(np.mean([e[3] for e in entries])), 2)}

    report = {"checkpoint": str(directory), "val_episodes": len(val), "grid": grid}
    for family, entries in sorted(rows.items()):
        report[family] = {"first_frame": summary([e for e in entries if e[0] == 0]), "all_frames": summary(entries)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
