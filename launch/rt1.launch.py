"""Start rt1_node with config/rt1.yaml, or your own params_file. Topic arguments remap the node's default names onto
your robot's.

    ros2 launch rt1_ros rt1.launch.py image_topic:=/head_camera/image_raw use_sim_time:=true \
        checkpoint:=/path/to/checkpoint start_enabled:=true
    ros2 launch rt1_ros rt1.launch.py params_file:=my_robot.yaml    # every parameter from the file
    ros2 launch rt1_ros rt1.launch.py lifecycle:=true    # managed: then `ros2 lifecycle set /rt1_node configure`

The parameter arguments (use_sim_time, device, checkpoint, model_size, start_enabled) override params_file only when
given: left out, the file's value (or the node's default) holds (rt1_ros/node/launch_arguments.py).
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from rt1_ros.node.launch_arguments import NOT_GIVEN, RT1_PARAMETER_ARGUMENTS, given_parameters, profile_variables, \
    user_profile

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


# lifecycle:=true runs the same node as a managed node, unconfigured until configured and activated
# (docs/lifecycle.md); the node's name, topics and parameters are the same either way.
def node_executable_actions() -> tuple[list, PythonExpression]:
    argument = DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                                     description="true: rt1_lifecycle_node (managed), false: rt1_node (plain)")
    executable = PythonExpression(["'rt1_lifecycle_node' if '", LaunchConfiguration("lifecycle"),
                                   "' == 'true' else 'rt1_node'"])
    return [argument], executable


def rt1_node_actions(context, executable) -> list:
    """rt1_node with params_file, then the parameter arguments the user gave (evaluated at launch: an argument left
    at NOT_GIVEN adds nothing, so the file's value holds)."""
    given = given_parameters({name: LaunchConfiguration(name).perform(context)
                              for name, _ in RT1_PARAMETER_ARGUMENTS})
    parameters = [LaunchConfiguration("params_file")] + ([given] if given else [])
    return [Node(
        package="rt1_ros",
        executable=executable,
        name="rt1_node",
        output="screen",
        emulate_tty=True,
        parameters=parameters,
        remappings=[(REMAPPED_NAMES[name], LaunchConfiguration(name)) for name, _, _ in TOPIC_ARGUMENTS],
    )]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("rt1_ros"), "config", "rt1.yaml"])
    arguments = transport_profile_actions(FindPackageShare("rt1_ros"))
    arguments += [DeclareLaunchArgument("params_file", default_value=default_params,
                                        description="rt1_node parameters (ROS params file)")]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, default, text in TOPIC_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=NOT_GIVEN,
                                        description=f"rt1_node parameter {name}; overrides params_file when given")
                  for name, _ in RT1_PARAMETER_ARGUMENTS]
    lifecycle_arguments, executable = node_executable_actions()
    arguments += lifecycle_arguments
    return LaunchDescription([*arguments, OpaqueFunction(function=rt1_node_actions, args=[executable])])
