"""README's task-family table is the one config/sim.yaml makes."""
import dataclasses
from pathlib import Path

from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.family_table import README_BLOCK, family_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_family_as_config_sim_yaml_declares_it():
    config = SimConfig.from_yaml()
    assert README_BLOCK.current(README) == family_table(config), \
        "README's family table differs from config/sim.yaml: python -m rt1_ros.sim.family_table --write"
    for family in config.tasks.families:
        assert f"| `{family.name}` |" in README


def test_the_table_follows_the_config():
    config = SimConfig.from_yaml()
    narrowed = dataclasses.replace(config, tasks=dataclasses.replace(config.tasks, default_families=("push",)))
    rows = {line.split("|")[1].strip(): line for line in family_table(narrowed).splitlines()[2:]}
    assert rows["`push`"].endswith("| yes |") and rows["`pick`"].endswith("| not yet |")
    assert "“pick up the {colour} {object}”" in rows["`pick`"]
