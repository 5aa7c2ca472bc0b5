"""sim_node: the embedded MuJoCo mobile manipulator as a ROS 2 node (camera, clock, odometry, joints, episodes).

Topics (relative names, so a namespace or remapping moves them):
  out  camera/image_raw (sensor_msgs/Image, rgb8), /clock (rosgraph_msgs/Clock, sim time), odom (nav_msgs/Odometry),
       joint_states (sensor_msgs/JointState), episode_status (rt1_ros/EpisodeStatus),
       instruction (std_msgs/String, reliable + transient local: the current episode's instruction),
       end_effector_pose (geometry_msgs/PoseStamped: the measured grip site in base_frame),
       tf and tf_static (tf2_msgs/TFMessage, rt1_ros.sim.robot_frames: odom -> base_link -> arm_base_link ->
       gripper, base_link -> camera_frame; only where the tf2_msgs Python package is installed)
  in   cmd_vel (geometry_msgs/Twist, or TwistStamped with cmd_vel_stamped), arm_command (rt1_ros/ArmCommand),
       rt1_action (rt1_ros/RT1Action: lockstep pacing and the policy's terminate)
  srv  reset_episode (rt1_ros/ResetEpisode)

Stepping modes
  free run   physics advances in chunks of 1/state_rate_hz sim seconds, paced at real_time_factor sim seconds per
             wall second; images go out every 1/camera_rate_hz of sim time. Commands apply when they arrive.
  lockstep   the simulation starts once camera/image_raw has a subscriber and pauses while an episode is done
             (until reset_episode). After each image it waits (wall clock) for the policy's rt1_action whose
             header.stamp equals that image's stamp, then for the arm_command carrying the same stamp (at most
             lockstep_command_grace_s: the policy node publishes its rt1_action and its motion commands in the same
             step, in either order), applies the command, advances exactly one control period, and publishes the
             next image. With no action within lockstep_timeout_s it warns, stops the robot (zero twist, no arm
             delta) and steps anyway, so a dead policy cannot hang an evaluation. An action with enabled=false
             (dry run) moves nothing.
             An answer computed under another instruction than the episode's (RT1Action.instruction names the
             previous one: the policy had not taken the new instruction yet, which travels on its own topic)
             neither paces nor terminates the episode; the sim publishes the same image again. Arm commands are
             applied when the sim steps, so only the counted answer's moves the arm.

Arm commands are per-step deltas (see MobileManipulatorSim): one ArmCommand moves the arm target once, spread over
one control period. An ArmCommand whose stamp equals the previous one (a republished command) only updates the
gripper, so a policy node that repeats its last command cannot make the arm travel twice.

Episodes end (EpisodeStatus.done) when the policy sends mode terminate or the family's step budget runs out; success
is then latched until the next reset: a reset_episode call, or with next_episode_after_s > 0 the next episode (seed + 1,
the same task family request) that many wall seconds later. Rendering happens only on the simulation thread, which
owns the GL context.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped, Quaternion, Transform, TransformStamped, Twist, TwistStamped, Vector3
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String

from rt1_ros.node import qos
from rt1_ros.msg import ArmCommand, EpisodeStatus, RT1Action
from rt1_ros.node.node_process import run_node
from rt1_ros.node.parameter_declaration import declare_parameters
from rt1_ros.configuration.parameter_spec import ParameterSpec, from_parameters, parameter_specs
from rt1_ros.node.ros_graph import NANOSECONDS, stamp_ns, to_stamp
from rt1_ros.sim.config import SimConfig, SimNodeConfig
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
from rt1_ros.sim.robot_frames import dynamic_transforms, end_effector_pose, static_transforms
from rt1_ros.srv import ResetEpisode

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # no tf2_msgs wheel: no tf topics; end_effector_pose, odom and joint_states still go out
    TFMessage = None

NODE_NAME = "sim_node"
CATCH_UP_LIMIT_S = 0.5  # free run behind schedule by more than this: re-anchor instead of bursting to catch up
LOCKSTEP_POLL_S = 0.1  # wake-up period while waiting, so shutdown is noticed promptly
LOCKSTEP_REASK_PAUSE_S = 0.005  # before asking again for an image answered under another instruction
WARNING_THROTTLE_S = 5.0
NEXT_SEED_ATTEMPTS = 10  # next_episode_after_s: seeds tried in turn when one has no visible layout


# Declared from SimNodeConfig's fields (descriptions, ranges, read-only flags); defaults from config/sim.yaml.
PARAMETER_SPECS: dict[str, ParameterSpec] = parameter_specs(SimNodeConfig)


@dataclass
class _PolicyStep:
    """The newest rt1_action and arm_command stamps seen, for lockstep pacing."""

    action_stamp_ns: int = -1
    action_enabled: bool = False
    arm_stamp_ns: int = -1
    arm_command: tuple[np.ndarray, float] | None = None  # lockstep: the newest (delta, gripper), applied at the step
    superseded_stamp_ns: int = -1  # the image an answer under another instruction answered (lockstep asks again)
    superseded_instruction: str = ""


class SimNode(Node):
    def __init__(self, config: SimConfig | None = None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.sim_config = config or SimConfig.from_yaml()
        self.params = declare_parameters(self, self.sim_config.node)
        largest = self.sim_config.camera.max_render_size
        if max(self.params.camera_width, self.params.camera_height) > largest:
            raise ValueError(f"camera size above camera.max_render_size={largest} in config/sim.yaml")
        if self.params.condition not in self.sim_config.condition_names:
            raise ValueError(f"condition {self.params.condition!r} is not one of "
                             f"{list(self.sim_config.condition_names)} (config/sim.yaml conditions)")
        self.sim = MobileManipulatorSim(self.sim_config, condition=self.params.condition)
        self._control_period = self.sim_config.physics.control_period_s
        # One lock for the simulator and all episode/command state; the condition wakes the lockstep wait.
        self._cond = threading.Condition(threading.RLock())
        self._policy = _PolicyStep()
        self._episode_generation = 0
        self._observation_due = True
        self._awaited_stamp_ns = -1  # stamp of the newest published image
        self._last_cmd_vel_time = 0.0
        self._next_image_time = 0.0
        self.images_published = 0
        self.lockstep_timeouts = 0
        self.superseded_answers = 0  # answers computed under another instruction than the episode's (not counted)
        self.achieved_real_time_factor = 0.0

        self._image_pub = self.create_publisher(Image, "camera/image_raw", qos.camera(self.params.image_reliability))
        self._clock_pub = self.create_publisher(Clock, "/clock", qos.COMMANDS_AND_STATE)
        self._odom_pub = self.create_publisher(Odometry, "odom", qos.COMMANDS_AND_STATE)
        self._joint_pub = self.create_publisher(JointState, "joint_states", qos.COMMANDS_AND_STATE)
        self._create_frame_publishers()
        self._status_pub = self.create_publisher(EpisodeStatus, "episode_status", qos.LATCHED)
        self._instruction_pub = self.create_publisher(String, "instruction", qos.LATCHED)
        twist_type = TwistStamped if self.params.cmd_vel_stamped else Twist
        self.create_subscription(twist_type, "cmd_vel", self._on_cmd_vel, qos.COMMANDS_AND_STATE)
        self.create_subscription(ArmCommand, "arm_command", self._on_arm_command, qos.COMMANDS_AND_STATE)
        self.create_subscription(RT1Action, "rt1_action", self._on_rt1_action, qos.COMMANDS_AND_STATE)
        self.create_service(ResetEpisode, "reset_episode", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._start_episode(self.params.task_family or None, self.params.seed)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="sim_loop", daemon=True)
        self._thread.start()
        mode = "lockstep" if self.params.lockstep else f"free run at {self.params.real_time_factor:g}x real time"
        self.get_logger().info(f"{mode}; condition {self.params.condition}; episode: {self.task.instruction!r}")

    # -- parameters ----------------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        # Ranges and read-only flags are enforced by rclpy from the descriptors; only dynamic values reach here.
        with self._cond:
            updates = {p.name: p.value for p in parameters if p.name in PARAMETER_SPECS}
            if updates:
                self.params = from_parameters(SimNodeConfig, updates, base=self.params)
            self._cond.notify_all()
        return SetParametersResult(successful=True)

    # -- episodes ------------------------------------------------------------------------------------------------
    def _start_episode(self, task_family: str | None, seed: int):
        """Reset the simulator (caller holds the lock or is the constructor); announces the new instruction."""
        with self._cond:
            self.task = self.sim.reset(task_family, seed)
            self._episode_generation += 1
            self._episode_steps = 0
            self._episode_start_time = self.sim.sim_time
            self._episode_start_ns = self._now_ns()
            self._terminated = False
            self._done = False
            self._done_at = 0.0  # time.monotonic() when done
            self._family_request = task_family
            self._latched_success = False
            self._policy = _PolicyStep()
            self._last_cmd_vel_time = self.sim.sim_time
            self._next_image_time = self.sim.sim_time
            self._observation_due = True
            family = self.sim_config.tasks.family(self.task.family)
            self._max_steps = self.params.max_episode_steps or family.max_steps
            if self.params.publish_instruction:
                self._instruction_pub.publish(String(data=self.task.instruction))
            self._publish_static_frames()
            self._cond.notify_all()
            return self.task

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        try:
            task = self._start_episode(request.task_family or None, int(request.seed))
        except (KeyError, RuntimeError) as exc:
            response.success = False
            response.message = str(exc)
            return response
        self._publish_status()
        response.success = True
        response.message = f"{task.family} episode, seed {task.seed}"
        response.instruction = task.instruction
        self.get_logger().info(f"reset: {task.instruction!r} ({response.message})")
        return response

    def _update_episode(self) -> None:
        if self._done:
            return
        if self._terminated or self._episode_steps >= self._max_steps:
            self._done = True
            self._done_at = time.monotonic()
            self._latched_success = self.sim.success()
            outcome = "success" if self._latched_success else "failure"
            reason = "policy terminated" if self._terminated else "step budget used up"
            after = (f"the next episode in {self.params.next_episode_after_s:g} s" if self.params.next_episode_after_s
                     else "call reset_episode for the next one")
            self.get_logger().info(f"episode done after {self._episode_steps} steps ({reason}): {outcome}; {after}")

    def _next_episode_in_s(self) -> float | None:
        """Wall seconds until the next episode starts by itself (next_episode_after_s after this one is done); None
        while the episode runs or when the parameter is 0. Caller holds the lock."""
        if not self._done or self.params.next_episode_after_s <= 0:
            return None
        return self._done_at + self.params.next_episode_after_s - time.monotonic()

    def _start_next_episode(self) -> None:
        """The episode after a done one, on the simulation thread: the next seed with a visible layout, the task
        family request the done one was started with."""
        seed = int(self.task.seed)
        for _ in range(NEXT_SEED_ATTEMPTS):
            seed = (seed + 1) % 2**32
            try:
                task = self._start_episode(self._family_request, seed)
            except RuntimeError as exc:
                self.get_logger().warning(f"next episode: seed {seed} skipped: {exc}")
                continue
            self._publish_status()
            self.get_logger().info(f"next episode: {task.instruction!r} ({task.family} episode, seed {task.seed})")
            return
        self.get_logger().error(f"next episode: no layout in {NEXT_SEED_ATTEMPTS} seeds; waiting for reset_episode")
        self._done_at = math.inf

    # -- inputs --------------------------------------------------------------------------------------------------
    def _on_cmd_vel(self, message) -> None:
        twist = message.twist if isinstance(message, TwistStamped) else message
        values = np.array([twist.linear.x, twist.linear.y, twist.angular.z])
        if not np.all(np.isfinite(values)):
            self.get_logger().warning("ignoring non-finite cmd_vel", throttle_duration_sec=WARNING_THROTTLE_S)
            return
        with self._cond:
            self.sim.command_base(values)
            self._last_cmd_vel_time = self.sim.sim_time

    def _on_arm_command(self, message: ArmCommand) -> None:
        frame = message.header.frame_id
        if frame not in ("", self.params.base_frame):
            self.get_logger().warning(f"ignoring arm_command in frame {frame!r}: deltas must be in "
                                      f"{self.params.base_frame!r}", throttle_duration_sec=WARNING_THROTTLE_S)
            return
        delta = np.array([message.translation.x, message.translation.y, message.translation.z,
                          message.rotation.x, message.rotation.y, message.rotation.z])
        if not (np.all(np.isfinite(delta)) and math.isfinite(message.gripper)):
            self.get_logger().warning("ignoring non-finite arm_command", throttle_duration_sec=WARNING_THROTTLE_S)
            return
        stamp = stamp_ns(message.header.stamp)
        with self._cond:
            if self.params.lockstep:
                # Applied when the simulation steps on the answer it belongs to: an answer the sim asks again for
                # (computed under another instruction) has its arm_command replaced by the new answer's.
                self._policy.arm_command = (delta, float(message.gripper))
            elif stamp == self._policy.arm_stamp_ns:
                self.sim.command_gripper(message.gripper)  # a repeat: gripper only, no second delta
            else:
                self.sim.command_arm(delta, message.gripper)
            self._policy.arm_stamp_ns = stamp
            self._cond.notify_all()

    def _answers_this_episode(self, instruction: str) -> bool:
        """Whether an rt1_action computed under ``instruction`` may count for the current episode: not when the sim
        announces the episode's instruction and the policy names another (it had not taken the new one yet: the
        instruction and the first image travel on separate topics and may arrive in either order). An empty one is
        a policy that does not say. Both sides are whitespace-collapsed already (sim.tasks words them so, rt1_node
        reports what it runs so). Caller holds the lock."""
        return not (self.params.publish_instruction and instruction) or instruction == self.task.instruction

    def _on_rt1_action(self, message: RT1Action) -> None:
        stamp = stamp_ns(message.header.stamp)
        with self._cond:
            if not self._answers_this_episode(message.instruction):
                # Neither its terminate nor its pacing counts; in lockstep the image is asked again.
                self.superseded_answers += 1
                self._policy.superseded_stamp_ns = stamp
                self._policy.superseded_instruction = message.instruction
                self._cond.notify_all()
                return
            self._policy.action_stamp_ns = stamp
            self._policy.action_enabled = bool(message.enabled)
            if (message.mode == RT1Action.MODE_TERMINATE and message.enabled
                    and stamp >= self._episode_start_ns and not self._done):
                self._terminated = True
            self._cond.notify_all()

    # -- outputs -------------------------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return round(self.sim.sim_time * NANOSECONDS)

    def _publish_state(self) -> None:
        stamp = to_stamp(self._now_ns())
        self._clock_pub.publish(Clock(clock=stamp))
        odom = self.sim.odometry()
        message = Odometry()
        message.header.stamp = stamp
        message.header.frame_id = self.params.odom_frame
        message.child_frame_id = self.params.base_frame
        message.pose.pose.position.x = odom.x
        message.pose.pose.position.y = odom.y
        message.pose.pose.orientation.z = math.sin(odom.yaw / 2)
        message.pose.pose.orientation.w = math.cos(odom.yaw / 2)
        message.twist.twist.linear.x = odom.vx
        message.twist.twist.linear.y = odom.vy
        message.twist.twist.angular.z = odom.yaw_rate
        self._odom_pub.publish(message)
        joints = self.sim.joint_states()
        self._joint_pub.publish(JointState(
            header=Header(stamp=stamp),
            name=list(joints.names),
            position=joints.positions.tolist(),
            velocity=joints.velocities.tolist(),
            effort=joints.efforts.tolist(),
        ))
        self._publish_frames(stamp)

    def _create_frame_publishers(self) -> None:
        """end_effector_pose, and tf / tf_static where tf2_msgs is installed (warned about once otherwise)."""
        self._state_stamp_ns = -1  # stamp of the newest state published
        self._pose_pub = self.create_publisher(PoseStamped, "end_effector_pose", qos.COMMANDS_AND_STATE)
        self._tf_pub = self._tf_static_pub = None
        if TFMessage is None:
            self.get_logger().warning("tf2_msgs is not installed: no tf and tf_static (end_effector_pose carries the "
                                      "end effector's pose)")
            return
        self._tf_pub = self.create_publisher(TFMessage, "tf", qos.TRANSFORMS)
        self._tf_static_pub = self.create_publisher(TFMessage, "tf_static", qos.LATCHED)

    def _transform_message(self, transforms, stamp):
        return TFMessage(transforms=[TransformStamped(
            header=Header(stamp=stamp, frame_id=t.parent), child_frame_id=t.child,
            transform=Transform(translation=Vector3(x=float(t.translation[0]), y=float(t.translation[1]),
                                                    z=float(t.translation[2])),
                                rotation=Quaternion(x=float(t.rotation[0]), y=float(t.rotation[1]),
                                                    z=float(t.rotation[2]), w=float(t.rotation[3]))))
            for t in transforms])

    def _publish_static_frames(self) -> None:
        """tf_static for this episode (a reset may move the camera's mounting)."""
        if self._tf_static_pub is not None:
            transforms = static_transforms(self.sim, self.params.base_frame, self.params.camera_frame)
            self._tf_static_pub.publish(self._transform_message(transforms, to_stamp(self._now_ns())))

    def _publish_frames(self, stamp) -> None:
        """tf (odometry and the arm) and end_effector_pose at ``stamp``, with the rest of the state."""
        self._state_stamp_ns = stamp_ns(stamp)
        position, quaternion = end_effector_pose(self.sim)
        pose = PoseStamped(header=Header(stamp=stamp, frame_id=self.params.base_frame))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in position)
        orientation = pose.pose.orientation
        orientation.x, orientation.y, orientation.z, orientation.w = (float(v) for v in quaternion)
        self._pose_pub.publish(pose)
        if self._tf_pub is not None:
            transforms = dynamic_transforms(self.sim, self.params.odom_frame, self.params.base_frame)
            self._tf_pub.publish(self._transform_message(transforms, stamp))

    def _publish_observation(self) -> None:
        """Render and publish one camera image (simulation thread only), then the episode status."""
        if self._state_stamp_ns != self._now_ns():
            self._publish_state()  # a first image after a reset: the state it shows, at its stamp
        width, height = self.params.camera_width, self.params.camera_height
        rgb = self.sim.render(width, height)  # (H, W, 3) uint8
        now_ns = self._now_ns()
        message = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
        message.header.stamp = to_stamp(now_ns)
        message.header.frame_id = self.params.camera_frame
        message.data = rgb.tobytes()
        self._image_pub.publish(message)
        self._awaited_stamp_ns = now_ns
        self.images_published += 1
        self._update_episode()
        self._publish_status()

    def _publish_status(self) -> None:
        with self._cond:
            message = EpisodeStatus()
            message.header.stamp = to_stamp(self._now_ns())
            message.instruction = self.task.instruction
            message.task_family = self.task.family
            message.seed = int(self.task.seed)
            message.step = int(self._episode_steps)
            message.elapsed_s = float(self.sim.episode_time)
            message.success = bool(self._latched_success if self._done else self.sim.success())
            message.done = bool(self._done)
            self._status_pub.publish(message)

    # -- the simulation thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.params.lockstep:
                self._run_lockstep()
            else:
                self._run_free()
        except Exception as exc:  # noqa: BLE001 — report instead of dying silently in a daemon thread
            if not self._running or not self.context.ok():
                return  # shutting down: a publish on a finished context is expected, not an error
            self.get_logger().error(f"simulation thread stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.sim.close()  # EGL contexts can only be released by the thread that made them current

    def _advance_to(self, end_time: float) -> None:
        """Advance to sim time ``end_time`` in state-rate chunks, publishing clock, odometry and joints after each.

        Absolute end times keep a control period that is not a whole number of physics steps from drifting: step k
        ends at the physics step nearest to episode start + k periods.
        """
        chunk = 1.0 / self.params.state_rate_hz
        half_step = self.sim.model.opt.timestep / 2
        while end_time - self.sim.sim_time > half_step:
            self.sim.advance(min(chunk, end_time - self.sim.sim_time))
            self._publish_state()

    def _run_free(self) -> None:
        wall_next = time.monotonic()
        wall_start, sim_start = wall_next, self.sim.sim_time
        while self._running:
            with self._cond:
                chunk = 1.0 / self.params.state_rate_hz
                timeout = self.params.cmd_vel_timeout_s
                if timeout > 0 and self.sim.sim_time - self._last_cmd_vel_time > timeout:
                    self.sim.command_base(np.zeros(3))
                self._advance_to(self.sim.sim_time + chunk)
                self._episode_steps = int(self.sim.episode_time / self._control_period)
                next_in_s = self._next_episode_in_s()
                if next_in_s is not None and next_in_s <= 0:
                    self._start_next_episode()
                if self.sim.sim_time >= self._next_image_time - 1e-9:
                    self._publish_observation()
                    self._next_image_time = max(self._next_image_time + 1.0 / self.params.camera_rate_hz,
                                                self.sim.sim_time)
                rate = self.params.real_time_factor
            wall_next += chunk / rate
            delay = wall_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -CATCH_UP_LIMIT_S:
                wall_next = time.monotonic()
            elapsed = time.monotonic() - wall_start
            if elapsed > 0:
                self.achieved_real_time_factor = (self.sim.sim_time - sim_start) / elapsed

    def _run_lockstep(self) -> None:
        while self._running:
            with self._cond:
                if self._done or self._image_pub.get_subscription_count() == 0:
                    # Nothing to step for: the episode is over (wait for a reset, or the next episode's time), or no
                    # policy listens yet (an image now would be lost and cost a timeout).
                    next_in_s = self._next_episode_in_s()
                    if next_in_s is not None and next_in_s <= 0:
                        self._start_next_episode()
                        continue
                    self._cond.wait(LOCKSTEP_POLL_S if next_in_s is None else min(LOCKSTEP_POLL_S, next_in_s))
                    continue
                if self._observation_due:
                    self._observation_due = False
                    self._publish_observation()
                    if self._done:
                        continue
                generation = self._episode_generation
                awaited = self._awaited_stamp_ns
                deadline = time.monotonic() + self.params.lockstep_timeout_s
                while (self._running and generation == self._episode_generation
                       and self._policy.action_stamp_ns != awaited and time.monotonic() < deadline):
                    if self._policy.superseded_stamp_ns == awaited:
                        # That answer was computed under the previous instruction: once the policy has taken this
                        # episode's, the same image (same stamp) is answered for this episode.
                        self._policy.superseded_stamp_ns = -1
                        self._policy.arm_command = None
                        self._cond.wait(LOCKSTEP_REASK_PAUSE_S)
                        if generation == self._episode_generation and self._policy.action_stamp_ns != awaited:
                            self._publish_observation()
                        continue
                    self._cond.wait(min(LOCKSTEP_POLL_S, max(0.0, deadline - time.monotonic())))
                if not self._running:
                    return
                if generation != self._episode_generation:
                    continue  # reset while waiting: the new episode's first image is due
                if self._policy.action_stamp_ns != awaited:
                    self.lockstep_timeouts += 1
                    other = self._policy.superseded_instruction
                    why = (f" (answers came under the instruction {other!r}, not this episode's "
                           f"{self.task.instruction!r}: does the policy read this sim's `instruction`?)"
                           if other else "")
                    self.get_logger().warning(
                        f"lockstep: no rt1_action for the image at {awaited / NANOSECONDS:.3f} s within "
                        f"{self.params.lockstep_timeout_s:g} s{why}; stepping with a zero command "
                        f"({self.lockstep_timeouts} so far)", throttle_duration_sec=WARNING_THROTTLE_S)
                    self.sim.stop()
                elif not self._policy.action_enabled:
                    self.sim.stop()  # dry run: the policy computed an action but sends no motion
                else:
                    grace_end = time.monotonic() + self.params.lockstep_command_grace_s
                    while self._running and self._policy.arm_stamp_ns != awaited and time.monotonic() < grace_end:
                        self._cond.wait(max(0.0, grace_end - time.monotonic()))
                    if self._policy.arm_stamp_ns == awaited and self._policy.arm_command is not None:
                        self.sim.command_arm(*self._policy.arm_command)
                    else:
                        self.sim.command_arm(np.zeros(6), self.sim.gripper_command)  # this image gets no arm step
                self._policy.arm_command = None
                self._advance_to(self._episode_start_time + (self._episode_steps + 1) * self._control_period)
                self._episode_steps += 1
                self._observation_due = True

    # -- shutdown ------------------------------------------------------------------------------------------------
    def destroy_node(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(NODE_NAME, SimNode, num_threads=2, args=args)


if __name__ == "__main__":
    sys.exit(main())
