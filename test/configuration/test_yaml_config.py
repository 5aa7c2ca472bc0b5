"""The one override syntax (`--set key=value`) of rt1-train, rt1-eval, rt1-bench and the demo."""
from __future__ import annotations

import pytest

from rt1_ros.bench.config import BenchConfig
from rt1_ros.configuration.yaml_config import ConfigError, apply_overrides


def test_overrides_are_parsed_as_yaml_type_checked_and_reach_nested_configs():
    config = BenchConfig.from_yaml("smoke")
    changed = apply_overrides(config, ["node.messages=7", "node.image_width=320"])
    assert (changed.node.messages, changed.node.image_width) == (7, 320)
    assert changed.node.model_size == config.node.model_size  # untouched fields keep their values
    with pytest.raises(ConfigError, match="no_such"):
        apply_overrides(config, ["node.no_such=1"])
    with pytest.raises(ConfigError, match="messages"):
        apply_overrides(config, ["node.messages=many"])
    with pytest.raises(ConfigError, match="not a nested config"):
        apply_overrides(config, ["node.messages.deeper=1"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(config, ["node.messages"])


def test_every_command_line_tool_takes_set_and_names_an_unknown_key(capsys):
    from rt1_ros.bench.cli import main as bench_main
    from rt1_ros.closed_loop.demo import main as demo_main
    from rt1_ros.closed_loop.evaluation import main as eval_main
    from rt1_ros.training.cli import main as train_main

    for main, argv in ((bench_main, ["--smoke"]), (eval_main, []), (train_main, ["--output", "unused"])):
        with pytest.raises(SystemExit) as exited:
            main(argv + ["--set", "no_such_key=1"])
        assert exited.value.code == 2
        assert "no_such_key" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no_such_key"):
        demo_main(["--set", "no_such_key=1"])


def test_repeated_set_flags_accumulate():
    """`--set a=1 --set b=2` sets both: with a plain nargs flag the last one silently replaced the others (a
    training run given `--set total_steps=800 --set eval_every=200` trained the YAML's 100000 steps)."""
    import argparse

    from rt1_ros.configuration.yaml_config import add_override_argument

    parser = argparse.ArgumentParser()
    add_override_argument(parser, "overrides")
    assert parser.parse_args(["--set", "a=1", "b=2", "--set", "c=3"]).set == ["a=1", "b=2", "c=3"]
    assert parser.parse_args([]).set == []


def test_every_tool_keeps_an_earlier_set_flag(capsys):
    from rt1_ros.bench.cli import main as bench_main
    from rt1_ros.training.cli import main as train_main

    for main, argv, valid in ((bench_main, ["--smoke"], "warmup_steps=1"),
                              (train_main, ["--output", "unused"], "total_steps=3")):
        with pytest.raises(SystemExit) as exited:
            main(argv + ["--set", "no_such_key=1", "--set", valid])
        assert exited.value.code == 2
        assert "no_such_key" in capsys.readouterr().err


def test_a_source_checkout_reads_its_own_config_directory():
    """Not an installed copy's: edits to config/ take effect where the code is run from."""
    from pathlib import Path

    from rt1_ros.configuration.yaml_config import config_dir

    assert config_dir() == Path(__file__).resolve().parents[2] / "config"
