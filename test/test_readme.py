"""README.md is what users read first: its parameter tables must name every parameter the nodes declare."""
from pathlib import Path

from rt1_ros.node.parameters import PARAMETER_SPECS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_rt1_node_parameter_is_documented():
    missing = [name for name in PARAMETER_SPECS if f"| `{name}` |" not in README]
    assert not missing, f"README parameter table lacks {missing}"


def test_every_sim_node_parameter_is_documented():
    from rt1_ros.sim.config import SimNodeConfig
    from dataclasses import fields

    missing = [f.name for f in fields(SimNodeConfig) if f"| `{f.name}` |" not in README]
    assert not missing, f"README sim_node table lacks {missing}"


def test_readme_names_the_two_commands():
    assert "make demo" in README and "make test" in README


def test_parameter_tables_are_generated_from_the_config_fields():
    from rt1_ros.node.parameter_table import readme_tables

    for node, table in readme_tables().items():
        assert table in README, (f"README's {node} parameter table differs from the config fields: paste the output "
                                 f"of `scripts/rt1-env python -m rt1_ros.node.parameter_table {node}`")
