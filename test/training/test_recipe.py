"""rt1-recipe: one file holds a policy's whole recipe; running it generates, trains and ships what the file says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rt1_ros.configuration.yaml_config import load_dataclass, to_mapping
from rt1_ros.model.checkpoint import read_checkpoint_config
from rt1_ros.sim.config import SimConfig
from rt1_ros.training.config import TrainConfig, parse_overrides
from rt1_ros.training.demonstrations import GenerateConfig, check_config
from rt1_ros.training.recipe import RECIPE_FILE, SHIPPED_FILES, RecipeConfig, main, run_recipe

from .conftest import FAST

REPOSITORY = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPOSITORY / "config").glob("recipe_*.yaml"))


def test_the_shipped_recipe_is_among_the_recipe_files():
    assert REPOSITORY / "config" / "recipe_sim.yaml" in RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_each_recipe_file_is_complete_and_runnable_as_written(path):
    """Every key of both steps is in the file (nothing left to a default that may change), the generation is one
    rt1-generate accepts (train seeds, known families and condition), training reads only what it generates, and a
    fine-tuning recipe starts from a committed checkpoint of its own model size."""
    recipe = load_dataclass(RecipeConfig, path)
    text = path.read_text(encoding="utf-8")
    for section, config in (("generate", recipe.generate), ("train", recipe.train)):
        for key in to_mapping(config):
            assert f"\n  {key}:" in text, f"{path.name}: {section}.{key} is not written in the file"
    check_config(recipe.generate)
    seeds = SimConfig.from_yaml().seeds.train
    assert seeds.first <= recipe.generate.seed_start
    assert recipe.generate.seed_start + recipe.generate.episodes_per_family - 1 <= seeds.last
    assert recipe.train.data == recipe.generate.output and not recipe.train.extra_data
    if recipe.train.init_checkpoint:
        start = REPOSITORY / recipe.train.init_checkpoint
        assert (start / "model.safetensors").is_file(), f"{path.name}: {start} is not a committed checkpoint"
        assert read_checkpoint_config(start)[2]["train_config"]["model_size"] == recipe.train.model_size


def test_a_recipe_training_on_other_data_than_it_generates_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(REPOSITORY / "config" / "recipe_sim.yaml"), "--set", "train.data=data/elsewhere"])
    assert exit_info.value.code == 2
    assert "train.data must be the generated dataset" in capsys.readouterr().err
    with pytest.raises(ValueError, match="extra_data"):
        RecipeConfig(generate=GenerateConfig(output="d"), train=TrainConfig(data="d", extra_data=("more",)),
                     run=str(tmp_path / "run"))


def tiny_recipe(tmp_path: Path, ship: str = "", seed_start: int = 0) -> RecipeConfig:
    """Two pick episodes at 48 px, four steps of the tiny model: a whole recipe in seconds."""
    data = str(tmp_path / "data")
    return RecipeConfig(
        generate=GenerateConfig(output=data, families=("pick",), episodes_per_family=2, seed_start=seed_start,
                                frame_size=48),
        train=parse_overrides(TrainConfig(), FAST + [f"data={data}", "total_steps=4", "val_fraction=0.5"]),
        run=str(tmp_path / "run"), ship=ship)


def test_a_recipe_generates_trains_ships_its_best_weights_and_records_itself(tmp_path):
    recipe = tiny_recipe(tmp_path, ship=str(tmp_path / "ship"), seed_start=5)

    record = run_recipe(recipe, progress=False)

    manifest = [json.loads(line) for line in (tmp_path / "data" / "manifest.jsonl").read_text().splitlines()]
    assert sorted((m["task_family"], m["seed"]) for m in manifest) == [("pick", 5), ("pick", 6)]
    for name in SHIPPED_FILES:
        assert (tmp_path / "ship" / name).read_bytes() == (tmp_path / "run" / "best" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ship").iterdir()) == sorted(SHIPPED_FILES)
    written = json.loads((tmp_path / "run" / RECIPE_FILE).read_text())
    assert written == json.loads(json.dumps(record))
    assert written["recipe"] == json.loads(json.dumps(to_mapping(recipe)))  # the file alone reproduces the run
    timings = written["timings"]
    assert timings["cpu"] and timings["cores"] >= 1
    assert 0 <= timings["generate_min"] <= timings["total_min"] and 0 <= timings["train_min"] <= timings["total_min"]
    assert written["result"]["step"] == 4


def test_a_recipe_without_ship_leaves_the_run_only(tmp_path):
    run_recipe(tiny_recipe(tmp_path), progress=False)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]
