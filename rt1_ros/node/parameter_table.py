"""The parameter tables of docs/parameters.md, generated from the config fields that declare the parameters.

    scripts/rt1-env python -m rt1_ros.node.parameter_table              # print both tables
    scripts/rt1-env python -m rt1_ros.node.parameter_table sim_node     # print one
    scripts/rt1-env python -m rt1_ros.node.parameter_table --write      # rewrite them in docs/parameters.md

test/test_docs.py fails when docs/parameters.md's tables differ from these.
"""
from __future__ import annotations

import sys
from pathlib import Path

from rt1_ros.configuration.parameter_spec import markdown_table

PARAMETERS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"


def parameter_tables() -> dict[str, str]:
    """Node name -> its parameter table in docs/parameters.md: rt1_node's defaults are its config's fields',
    sim_node's come from config/sim.yaml. Imports both configs, and with them torch."""
    from rt1_ros.node.parameters import NodeConfig
    from rt1_ros.sim.config import SimConfig, SimNodeConfig

    return {"rt1_node": markdown_table(NodeConfig),
            "sim_node": markdown_table(SimNodeConfig, SimConfig.from_yaml().node, detailed=False)}


def write_tables(page: Path = PARAMETERS_PAGE) -> None:
    """Replace each table in ``page`` that has the generated table's header row and follows the node's heading."""
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    for node, table in parameter_tables().items():
        heading = next(i for i, line in enumerate(lines) if line.startswith("## ") and f"`{node}`" in line)
        start = next(i for i in range(heading, len(lines)) if lines[i].startswith("| parameter |"))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        lines[start:end] = [table]
    page.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or ["rt1_node", "sim_node"]
    if names == ["--write"]:
        write_tables()
        print(f"rewrote the tables in {PARAMETERS_PAGE}")
        return 0
    tables = parameter_tables()
    unknown = [name for name in names if name not in tables]
    if unknown:
        print(f"unknown node(s) {unknown}; known: {sorted(tables)}", file=sys.stderr)
        return 2
    print("\n".join(tables[name] for name in names), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
