"""Start rt1_node with config/rt1.yaml. Topic arguments remap the node's default names onto your robot's.

    ros2 launch rt1_ros rt1.launch.py image_topic:=/head_camera/image_raw use_sim_time:=true \
        checkpoint:=/path/to/checkpoint start_enabled:=true
    ros2 launch rt1_ros rt1.launch.py lifecycle:=true    # managed: then `ros2 lifecycle set /rt1_node configure`
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# (argument, default, description); the node's own name for each topic is the part after 'remap:'.
TOPIC_ARGUMENTS = (
    ("image_topic", "/camera/image_raw", "remap: image (sensor_msgs/Image)"),
    ("compressed_image_topic", "/camera/image_raw/compressed", "remap: image/compressed (CompressedImage)"),
    ("instruction_topic", "/instruction", "remap: instruction (std_msgs/String)"),
    ("cmd_vel_topic", "/cmd_vel", "remap: cmd_vel (Twist or TwistStamped)"),
    ("arm_command_topic", "/arm_command", "remap: arm_command (rt1_ros/ArmCommand)"),
    ("servo_twist_topic", "/servo_node/delta_twist_cmds", "remap: servo_twist (TwistStamped for MoveIt Servo)"),
    ("action_topic", "/rt1_action", "remap: rt1_action (rt1_ros/RT1Action)"),
)
REMAPPED_NAMES = {"image_topic": "image", "compressed_image_topic": "image/compressed",
                  "instruction_topic": "instruction", "cmd_vel_topic": "cmd_vel", "arm_command_topic": "arm_command",
                  "servo_twist_topic": "servo_twist", "action_topic": "rt1_action"}
# (argument = node parameter, default, type)
PARAMETER_ARGUMENTS = (
    ("use_sim_time", "false", bool),
    ("device", "auto", str),
    ("checkpoint", "", str),
    ("model_size", "paper", str),
    ("start_enabled", "false", bool),
)


# Fast DDS reads its XML profile from FASTDDS_DEFAULT_PROFILES_FILE (3.x: Kilted on) or FASTRTPS_DEFAULT_PROFILES_FILE
# (2.x: Humble, Jazzy; 3.x still reads it but warns). config/fastdds.xml gives participants shared-memory segments
# large enough for camera frames (docs/reliability.md, Transport); a profile already set in the environment is kept.
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def transport_profile_actions(share) -> list:
    profile = PathJoinSubstitution([share, "config", "fastdds.xml"])
    variables = ["FASTDDS_DEFAULT_PROFILES_FILE"]
    if os.environ.get("ROS_DISTRO", "") in FAST_DDS_2_DISTROS:
        variables = ["FASTRTPS_DEFAULT_PROFILES_FILE"]
    arguments = [DeclareLaunchArgument("fastdds_profile", default_value=EnvironmentVariable(
        variables[0], default_value=profile), description="Fast DDS XML profile for the launched nodes")]
    return arguments + [SetEnvironmentVariable(name, LaunchConfiguration("fastdds_profile")) for name in variables]


# lifecycle:=true runs the same node as a managed node, unconfigured until configured and activated
# (docs/lifecycle.md); the node's name, topics and parameters are the same either way.
def node_executable_actions() -> tuple[list, PythonExpression]:
    argument = DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                                     description="true: rt1_lifecycle_node (managed), false: rt1_node (plain)")
    executable = PythonExpression(["'rt1_lifecycle_node' if '", LaunchConfiguration("lifecycle"),
                                   "' == 'true' else 'rt1_node'"])
    return [argument], executable


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("rt1_ros"), "config", "rt1.yaml"])
    arguments = transport_profile_actions(FindPackageShare("rt1_ros"))
    arguments += [DeclareLaunchArgument("params_file", default_value=default_params,
                                        description="rt1_node parameters (ROS params file)")]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, default, text in TOPIC_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=f"rt1_node parameter {name}")
                  for name, default, _ in PARAMETER_ARGUMENTS]
    lifecycle_arguments, executable = node_executable_actions()
    arguments += lifecycle_arguments
    overrides = {name: ParameterValue(LaunchConfiguration(name), value_type=kind)
                 for name, _, kind in PARAMETER_ARGUMENTS}
    node = Node(
        package="rt1_ros",
        executable=executable,
        name="rt1_node",
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[(REMAPPED_NAMES[name], LaunchConfiguration(name)) for name, _, _ in TOPIC_ARGUMENTS],
    )
    return LaunchDescription([*arguments, node])
