"""One source of truth per ROS parameter: the config fields. config/rt1.yaml, docs/parameters.md's tables and the
declarations must agree with them. No middleware needed."""
from __future__ import annotations

import dataclasses

import pytest

from rt1_ros.configuration.parameter_spec import (check_parameters, from_parameters, parameter, parameter_defaults,
                                                  parameter_fields, parameter_values)
from rt1_ros.node.parameters import PARAMETER_SPECS, NodeConfig, params_file_section
from rt1_ros.runtime.controller import ControllerConfig
from rt1_ros.inference.options import InferenceOptions
from rt1_ros.runtime.policy_loading import PolicySource
from rt1_ros.sim.config import SimConfig, SimNodeConfig

ROS_TYPES = (bool, int, float, str)


def test_config_rt1_yaml_holds_every_parameter_with_its_default():
    """Every key present, none unknown, each with the field's default and type (a params file's ``3`` for a double
    parameter is refused by rclpy, so ``3`` ≠ ``3.0`` here)."""
    section = {k: v for k, v in params_file_section().items() if k != "use_sim_time"}
    defaults = parameter_defaults(NodeConfig)
    assert list(section) == list(defaults), "config/rt1.yaml must list every parameter, in the declaration order"
    wrong = {name: (section[name], default) for name, default in defaults.items()
             if type(section[name]) is not type(default) or section[name] != default}
    assert not wrong, f"config/rt1.yaml (value, field default) differ: {wrong}"


def test_the_node_config_is_the_runtime_configs_and_nothing_repeated():
    fields = parameter_fields(NodeConfig)
    assert [f.name for f in fields] == list(PARAMETER_SPECS)
    by_name = {f.name: f for f in fields}
    for runtime_config, prefix in ((PolicySource, "policy"), (ControllerConfig, "controller")):
        for field in parameter_fields(runtime_config):
            assert by_name[field.name].path == (prefix, *field.path), field.name
            assert by_name[field.name].spec is field.spec
    assert by_name["inference_threads"].path == ("policy", "inference", "num_threads")
    own = [f.name for f in dataclasses.fields(NodeConfig) if f.name not in ("policy", "controller")]
    runtime_names = {f.name for c in (PolicySource, ControllerConfig) for f in dataclasses.fields(c)}
    assert not set(own) & runtime_names, "a runtime config's field declared again on NodeConfig"
    defaults = parameter_defaults(NodeConfig)
    assert defaults["ema_alpha"] == ControllerConfig().ema_alpha and defaults["device"] == PolicySource().device
    assert defaults["inference_threads"] == InferenceOptions().num_threads


@pytest.mark.parametrize("config_type", [NodeConfig, SimNodeConfig])
def test_every_parameter_is_described_and_ros_typed(config_type):
    for field in parameter_fields(config_type):
        assert field.spec.description.strip(), field.name
        assert field.type in ROS_TYPES, f"{field.name}: {field.type} is no ROS parameter type"
        assert not (field.spec.range and field.spec.choices), field.name
        assert field.spec.range is None or field.type in (int, float), field.name
        assert not field.spec.choices or field.type is str, field.name


def test_defaults_are_inside_their_ranges():
    check_parameters(NodeConfig())
    check_parameters(SimConfig.from_yaml().node)


def test_flat_parameters_round_trip_through_the_nested_config():
    config = NodeConfig()
    changed = config.with_parameters({"ema_alpha": 0.25, "inference_threads": 2, "control_rate_hz": 5.0,
                                      "device": "cpu"})
    assert (changed.controller.ema_alpha, changed.policy.inference.num_threads) == (0.25, 2)
    assert (changed.control_rate_hz, changed.policy.device) == (5.0, "cpu")
    assert changed.policy.inference.fold_batch_norm == config.policy.inference.fold_batch_norm  # no parameter
    values = parameter_values(changed)
    assert from_parameters(NodeConfig, values) == changed
    assert config.with_parameters({}) == config


def test_updates_outside_ranges_choices_or_cross_field_rules_are_refused():
    config = NodeConfig()
    with pytest.raises(ValueError, match="ema_alpha"):
        config.with_parameters({"ema_alpha": 5.0})
    with pytest.raises(ValueError, match="device"):
        config.with_parameters({"device": "tpu"})
    with pytest.raises(ValueError, match="gripper"):
        config.with_parameters({"gripper_open_threshold": 0.9})  # above the close threshold
    with pytest.raises(ValueError, match="unknown"):
        config.with_parameters({"no_such_parameter": 1})


def test_a_parameter_needs_a_description():
    with pytest.raises(ValueError):
        parameter(1.0, "")
