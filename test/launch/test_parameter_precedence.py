"""rt1.launch.py's parameter precedence on a real rt1_node process: the node's defaults, then the user's params_file,
then the launch arguments the user gave; an argument left out must not override the file with a launch default.

The process is started as launch_ros starts rt1.launch.py's node: `--params-file` the user's file, then
`--params-file` a file of the given arguments under `/**` (launch_ros writes a parameters dict so for a node given no
namespace; test_launch_files.py evaluates the launch file itself where launch is installed). Which arguments go into
that file is `given_parameters`, what the launch file calls.
"""
from __future__ import annotations

import os

import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")

from rcl_interfaces.srv import GetParameters  # noqa: E402

from ros_harness import NodeProcess, biased_checkpoint, wait_for  # noqa: E402
from rt1_ros.node.launch_arguments import NOT_GIVEN, RT1_PARAMETER_ARGUMENTS, given_parameters  # noqa: E402
from rt1_ros.node.ros_graph import InProcessGraph  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

START_TIMEOUT_S = 180.0  # imports and model load of a node process on two shared cores


def parameter_values(graph: InProcessGraph, names: list[str], process: NodeProcess) -> dict:
    """The node's parameters as `ros2 param get /rt1_node ...` reads them, over its parameter service."""
    import rclpy

    peer = graph.add(rclpy.create_node("precedence_peer", context=graph.context))
    client = peer.create_client(GetParameters, "/rt1_node/get_parameters")
    assert wait_for(lambda: client.service_is_ready() or process.process.poll() is not None,
                    timeout=START_TIMEOUT_S), f"the node did not start\n{process.output()[-3000:]}"
    assert process.process.poll() is None, process.output()[-3000:]
    # The service exists from the node's first moments; it answers once the node spins, after the model loaded.
    response = client.call(GetParameters.Request(names=names), timeout_sec=START_TIMEOUT_S)
    assert response is not None, "no answer from /rt1_node/get_parameters"
    values = {}
    for name, value in zip(names, response.values):
        values[name] = {1: value.bool_value, 4: value.string_value}[value.type]  # ParameterType BOOL, STRING
    return values


def test_a_users_params_file_holds_where_no_launch_argument_was_given(tmp_path):
    """The README's Gazebo recipe: a copy of config/rt1.yaml with the user's model, device and start_enabled; the
    user launches with start_enabled:=false only. Before: all five arguments went to the node with their launch
    defaults (paper, auto, checkpoint "" = an untrained model, start_enabled false, use_sim_time false)."""
    checkpoint = biased_checkpoint(tmp_path / "mine", mode=1, bins={})
    params_file = tmp_path / "my_robot.yaml"
    params_file.write_text(yaml.safe_dump({"rt1_node": {"ros__parameters": {
        "model_size": "tiny", "checkpoint": str(checkpoint), "device": "cpu", "start_enabled": True,
        "use_sim_time": True}}}))
    arguments = {name: NOT_GIVEN for name, _ in RT1_PARAMETER_ARGUMENTS} | {"start_enabled": "false"}
    given = given_parameters(arguments)
    given_file = tmp_path / "launch_params"
    given_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": given}}))

    with InProcessGraph() as graph:
        process = NodeProcess("/", {}, env=dict(os.environ, ROS_DOMAIN_ID=str(graph.domain_id)),
                              params_files=[params_file, given_file])
        try:
            values = parameter_values(graph, [name for name, _ in RT1_PARAMETER_ARGUMENTS], process)
        finally:
            process.stop()
    assert values == {"model_size": "tiny", "checkpoint": str(checkpoint), "device": "cpu",
                      "start_enabled": False, "use_sim_time": True}
