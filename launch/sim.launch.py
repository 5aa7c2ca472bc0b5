"""The embedded MuJoCo simulator and rt1_node together, on sim time — the demo's loop for `ros2 launch` users.

    ros2 launch rt1_ros sim.launch.py task_family:=pick seed:=100003          # the shipped policy models/rt1_sim
    ros2 launch rt1_ros sim.launch.py checkpoint:=/path/to/checkpoint         # your own
    ros2 launch rt1_ros sim.launch.py checkpoint:="" model_size:=tiny        # an untrained model (plumbing only)
    ros2 launch rt1_ros sim.launch.py lifecycle:=true    # rt1_node managed: configure and activate it to start

The simulator runs in lockstep with the policy (one control period per policy action), so the loop runs as fast as
inference allows; set lockstep:=false for a free-running simulator at real time.

Episodes run one after another: when one is done (the policy terminates, or the step budget is used up), the next
seed's episode of the same family starts next_episode_after_s (2 s) later. next_episode_after_s:=0 runs one episode,
then waits for `ros2 service call /reset_episode rt1_ros/srv/ResetEpisode "{task_family: pick, seed: 7}"`.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from rt1_ros.node.launch_arguments import profile_variables, user_profile

# (argument, default, type, node) — each argument is a parameter of that node
PARAMETER_ARGUMENTS = (
    ("task_family", "move_near", str, "sim_node"),
    ("seed", "0", int, "sim_node"),
    ("lockstep", "true", bool, "sim_node"),
    ("next_episode_after_s", "2.0", float, "sim_node"),
    ("checkpoint", None, str, "rt1_node"),  # default: the package's shipped models/rt1_sim (below)
    ("model_size", "sim", str, "rt1_node"),
    ("device", "auto", str, "rt1_node"),
)


# Fast DDS reads its XML profile from FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE (the 2.x name,
# which 3.x still reads). config/fastdds.xml gives participants shared-memory segments large enough for camera frames
# (docs/reliability.md, Transport); a profile the user already set in either variable is kept, as scripts/env.sh keeps it.
def transport_profile_actions(share) -> list:
    distro = os.environ.get("ROS_DISTRO", "")
    default = user_profile(os.environ, distro) or PathJoinSubstitution([share, "config", "fastdds.xml"])
    return [DeclareLaunchArgument("fastdds_profile", default_value=default,
                                  description="Fast DDS XML profile for the launched nodes (default: the one set in "
                                              "FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE, else config/fastdds.xml)"),
            SetEnvironmentVariable(profile_variables(distro)[0], LaunchConfiguration("fastdds_profile"))]


def _overrides(node_name: str) -> dict:
    return {name: ParameterValue(LaunchConfiguration(name), value_type=kind)
            for name, _, kind, node in PARAMETER_ARGUMENTS if node == node_name}


# lifecycle:=true runs the same node as a managed node, unconfigured until configured and activated
# (docs/lifecycle.md); the node's name, topics and parameters are the same either way.
def node_executable_actions() -> tuple[list, PythonExpression]:
    argument = DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                                     description="true: rt1_lifecycle_node (managed), false: rt1_node (plain)")
    executable = PythonExpression(["'rt1_lifecycle_node' if '", LaunchConfiguration("lifecycle"),
                                   "' == 'true' else 'rt1_node'"])
    return [argument], executable


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("rt1_ros")
    arguments = transport_profile_actions(share)
    defaults = {"checkpoint": PathJoinSubstitution([share, "models", "rt1_sim"])}
    arguments += [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                        description=f"{node} parameter {name}")
                  for name, default, _, node in PARAMETER_ARGUMENTS]
    lifecycle_arguments, executable = node_executable_actions()
    arguments += lifecycle_arguments
    sim = Node(
        package="rt1_ros", executable="sim_node", name="sim_node", output="screen",
        parameters=[{"use_sim_time": False}, _overrides("sim_node")],  # the simulator is the clock
    )
    rt1 = Node(
        package="rt1_ros", executable=executable, name="rt1_node", output="screen",
        parameters=[PathJoinSubstitution([share, "config", "rt1.yaml"]), _overrides("rt1_node"),
                    {"use_sim_time": True, "control_trigger": "image", "start_enabled": True}],
        remappings=[("image", "camera/image_raw")],
    )
    return LaunchDescription([*arguments, sim, rt1])
