"""rt1-convert: a released RT-1 TensorFlow checkpoint -> an rt1_ros checkpoint directory (docs/released_weights.md
weights"). Needs no TensorFlow.

    rt1-convert trained_checkpoints/rt1main/ckpt-424760 models/rt1main
    rt1-convert trained_checkpoints/rt1main models/rt1main           (a SavedModel directory, or the newest ckpt-N)
    ros2 launch rt1_ros rt1.launch.py checkpoint:=models/rt1main ...
"""
from __future__ import annotations

import argparse
import sys

from rt1_ros.convert.official_checkpoint import ConversionError, describe, write_converted
from rt1_ros.convert.tensor_bundle import TensorBundleError
from rt1_ros.model.checkpoint import read_checkpoint_config
from rt1_ros.model.rt1 import RT1Config, count_parameters
from rt1_ros.configuration.yaml_config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rt1-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="ckpt-N (prefix or .index), a directory holding ckpt-N.index, or a "
                                       "TF-Agents SavedModel directory (variables/variables.index)")
    parser.add_argument("output", help="checkpoint directory to write (model.safetensors + config.yaml)")
    parser.add_argument("--model-size", default="official",
                        help="named config of config/model.yaml the checkpoint is built as (default: official)")
    parser.add_argument("--model-config", default=None,
                        help="a YAML file holding that named config instead of config/model.yaml")
    args = parser.parse_args(argv)
    try:
        config = RT1Config.from_yaml(args.model_size, args.model_config)
        directory = write_converted(args.source, args.output, config)
        model_config, _, extra = read_checkpoint_config(directory)
    except (ConversionError, TensorBundleError, ConfigError, OSError, KeyError) as exc:
        print(f"rt1-convert: {exc}", file=sys.stderr)
        return 1
    source = extra["converted_from"]
    from rt1_ros.model.checkpoint import from_pretrained

    model, _, _ = from_pretrained(directory)
    print(f"rt1-convert: {source['variables_mapped']} variables mapped ({source['values']:,} values, "
          f"{count_parameters(model):,} model parameters), {source['variables_skipped']} skipped (optimizer state, "
          f"counters); step {source['step']}; {describe(model_config)} -> {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
