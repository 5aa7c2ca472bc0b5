"""`rt1-bench` / `python -m rt1_ros.bench`: run the selected sections, write the JSON, print the table."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from rt1_ros import bench
from rt1_ros.bench import cuda, lucidrains
from rt1_ros.bench.backends import bench_backends
from rt1_ros.bench.config import BenchConfig
from rt1_ros.bench.latency import bench_latency, bench_thread_sweep
from rt1_ros.bench.machine import machine_state
from rt1_ros.bench.node import bench_node
from rt1_ros.bench.node_cpu import bench_node_cpu
from rt1_ros.bench.profiling import profile_step
from rt1_ros.bench.report import BenchReport
from rt1_ros.bench.targets import evaluate_targets
from rt1_ros.bench.throughput import bench_throughput
from rt1_ros.configuration.yaml_config import add_override_argument, apply_overrides

SECTIONS = ("latency", "backends", "throughput", "node", "node_cpu", "lucidrains", "cuda", "profile")


def run_bench(config: BenchConfig, sections: tuple[str, ...] = SECTIONS, smoke: bool = False) -> BenchReport:
    device = torch.device("cpu")
    previous_threads = torch.get_num_threads()
    report = BenchReport(smoke=smoke, config=config, machine=machine_state())
    results = report.sections
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        if "latency" in sections:
            results["latency"] = bench_latency(config, device)
            results["thread_sweep"] = bench_thread_sweep(config, device)
        if "backends" in sections:
            results["backends"] = bench_backends(config)
        if "throughput" in sections:
            results["throughput"] = bench_throughput(config, device)
        if "node" in sections:
            results["node"] = bench_node(config)
        if "node_cpu" in sections:
            results["node_cpu"] = bench_node_cpu(config)
        if "lucidrains" in sections:
            try:
                results["lucidrains"] = lucidrains.bench_lucidrains(config, device)
            except Exception as exc:  # a third-party model failing must not lose the rest of the run
                results["lucidrains"] = lucidrains.skipped(f"failed to run: {type(exc).__name__}: {exc}")
        if "cuda" in sections:
            results["cuda"] = cuda.bench_cuda(config)
        if "profile" in sections:
            results["profile"] = profile_step(config, device)
    finally:
        torch.set_num_threads(previous_threads)
    report.load_average_at_end = list(os.getloadavg())
    report.targets = evaluate_targets(report.as_dict())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-bench", description=bench.__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long CI run (tiny model, few steps)")
    parser.add_argument("--config", default=None, help="bench YAML (default: config/bench.yaml)")
    parser.add_argument("--output", default="bench.json", help="where the JSON results go")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    add_override_argument(parser, "override BenchConfig fields over the chosen section; dotted keys reach nested "
                                  "ones (e.g. node.messages=20)")
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    config = BenchConfig.from_yaml("smoke" if args.smoke else "default", args.config)
    try:
        config = apply_overrides(config, args.set, where="rt1-bench --set")
    except ValueError as exc:
        parser.error(str(exc))
    report = run_bench(config, sections, smoke=args.smoke)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    print(report.format())
    print(f"\nresults: {output.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
