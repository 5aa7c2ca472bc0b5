"""Print the parameter tables of docs/parameters.md, generated from the config fields that declare the parameters.

    scripts/rt1-env python -m rt1_ros.node.parameter_table            # both nodes
    scripts/rt1-env python -m rt1_ros.node.parameter_table sim_node   # one

test/test_docs.py fails when docs/parameters.md's tables differ from these: paste the output there.
"""
from __future__ import annotations

import sys

from rt1_ros.configuration.parameter_spec import markdown_table


def parameter_tables() -> dict[str, str]:
    """Node name -> its parameter table in docs/parameters.md: rt1_node's defaults are its config's fields',
    sim_node's come from config/sim.yaml. Imports both configs, and with them torch."""
    from rt1_ros.node.parameters import NodeConfig
    from rt1_ros.sim.config import SimConfig, SimNodeConfig

    return {"rt1_node": markdown_table(NodeConfig),
            "sim_node": markdown_table(SimNodeConfig, SimConfig.from_yaml().node, detailed=False)}


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or ["rt1_node", "sim_node"]
    tables = parameter_tables()
    unknown = [name for name in names if name not in tables]
    if unknown:
        print(f"unknown node(s) {unknown}; known: {sorted(tables)}", file=sys.stderr)
        return 2
    print("\n".join(tables[name] for name in names), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
