"""rt1-recipe: a policy from nothing in one command: generate demonstrations, train on them, ship the best weights.

    rt1-recipe --config config/recipe_sim.yaml                   # make model: models/rt1_sim
    rt1-recipe --config config/recipe_sim.yaml --set run=outputs/model/try ship="" \
        generate.output=data/try train.data=data/try generate.episodes_per_family=50 train.total_steps=300  # a try

One file holds every option of both steps, seeds included: ``generate:`` is rt1-generate's `GenerateConfig`,
``train:`` rt1-train's `TrainConfig` (its ``data`` must be the generated dataset). So a recipe is reproduced from the
file alone. Generation resumes (seeds already in the dataset are kept); training starts fresh in ``run``, or
continues there with ``--resume``. ``<run>/recipe.json`` records the wall time of each step and the CPU it ran on.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rt1_ros.training.demonstrations import GenerateConfig, check_config, generate, report
from rt1_ros.training.config import TrainConfig
from rt1_ros.configuration.yaml_config import add_override_argument, apply_overrides, load_dataclass, to_mapping

RECIPE_FILE = "recipe.json"
SHIPPED_FILES = ("model.safetensors", "config.yaml")


@dataclass(frozen=True)
class RecipeConfig:
    generate: GenerateConfig
    train: TrainConfig
    run: str  # rt1-train's output directory
    ship: str = ""  # copy the run's best checkpoint (weights and config.yaml) here; "" = do not ship

    def __post_init__(self) -> None:
        if self.train.data != self.generate.output or self.train.extra_data:
            raise ValueError(f"train.data must be the generated dataset {self.generate.output!r} and nothing else "
                             f"(found data {self.train.data!r}, extra_data {list(self.train.extra_data)})")


def cpu_name() -> str:
    """The CPU's model name, which every timing is reported with."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_recipe(recipe: RecipeConfig, resume: bool = False, progress: bool = True) -> dict:
    from rt1_ros.training.trainer import Trainer

    timings = {"cpu": cpu_name(), "cores": len(__import__("os").sched_getaffinity(0))}
    started = time.perf_counter()
    outcomes = generate(recipe.generate, progress=progress)
    timings["generate_min"] = round((time.perf_counter() - started) / 60, 2)
    print(report(recipe.generate, outcomes, time.perf_counter() - started), flush=True)
    trained = time.perf_counter()
    trainer = Trainer(recipe.train, Path(recipe.run), resume=resume, progress=progress)
    result = trainer.run()
    timings["train_min"] = round((time.perf_counter() - trained) / 60, 2)
    timings["total_min"] = round((time.perf_counter() - started) / 60, 2)
    if recipe.ship:
        ship = Path(recipe.ship)
        ship.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_FILES:
            shutil.copyfile(Path(recipe.run) / "best" / name, ship / name)
    record = {"recipe": to_mapping(recipe), "timings": timings,
              "result": {k: v for k, v in result.items() if isinstance(v, (int, float, str))}}
    Path(recipe.run, RECIPE_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe YAML (config/recipe_sim.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue training from <run>/latest")
    add_override_argument(parser, "override recipe keys, dotted into a section (e.g. train.total_steps=800)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        recipe = apply_overrides(load_dataclass(RecipeConfig, args.config), args.set, where="recipe")
        check_config(recipe.generate)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc).strip('"'))
    record = run_recipe(recipe, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(record["timings"], indent=1))
    if recipe.ship:
        print(f"shipped {recipe.run}/best to {recipe.ship}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
