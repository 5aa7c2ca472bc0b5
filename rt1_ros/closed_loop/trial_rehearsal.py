"""Rehearse rt1-trial without a robot: sim_node (free run, on sim time) stands in for the robot, the real rt1_node
drives it, and a scripted operator plays the person at the robot.

    python -m rt1_ros.closed_loop.trial_rehearsal --output outputs/trials/rehearsal       # 6 episodes, models/rt1_sim
    python -m rt1_ros.closed_loop.trial_rehearsal --families pick --seeds 100000 100001 100002 --output ...

The scripted operator acts on rt1-trial's `~/state`: to set a scene it calls the sim's `reset_episode` with the
episode's family and seed (whose instruction is the one the plan gives, read off a twin simulator); while the episode
runs it calls `~/stop` once the sim reports the episode done (the family's step budget spent, as an operator with a
stopwatch would); for the verdict it calls `~/verdict` with the sim's success for that episode (latched when the sim
ended it, else the success at the stop). rt1-trial itself is the real one, over real topics, in this process. The
scenes are drawn from the condition the checkpoint was trained on unless --condition names another.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Callable

from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt1_ros.closed_loop.trial_plan import TrialTask
from rt1_ros.closed_loop.trial_run import TrialRun, TrialSettings
from rt1_ros.msg import EpisodeStatus
from rt1_ros.node import qos
from rt1_ros.node.ros_graph import InProcessGraph, call_service
from rt1_ros.srv import ResetEpisode

SERVICE_TIMEOUT_S = 30.0
DEFAULT_SEEDS = (100_000, 100_001)  # rt1-eval's first dev seeds: never training seeds


def rehearsal_plan(families, seeds, condition: str) -> list[tuple[str, int, TrialTask]]:
    """(family, seed, task) per episode, seeds inside families; the instruction is the one the sim lays out."""
    from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim

    twin = MobileManipulatorSim(condition=condition)
    try:
        return [(family, seed, TrialTask(task=family, instruction=twin.reset(family, seed).instruction))
                for family in families for seed in seeds]
    finally:
        twin.close()


def start_stand_in(graph, namespace: str, checkpoint: str, sim_parameters: dict | None = None,
                   node_parameters: dict | None = None):
    """(rt1_node, sim_node) in ``graph``: rt1_node as on a robot (timer trigger, start disabled) but on sim time,
    its `image` remapped onto the sim's camera; the sim in free run, not publishing instructions (rt1-trial does)."""
    from rt1_ros.node.rt1_node import Rt1Node
    from rt1_ros.node.sim_node import SimNode

    policy = dict(checkpoint=str(Path(checkpoint).resolve()) if checkpoint else "", device="cpu",
                  control_trigger="timer", start_enabled=False, ema_alpha=1.0, use_sim_time=True)
    policy.update(node_parameters or {})
    rt1 = graph.add(Rt1Node(namespace=namespace, context=graph.context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in policy.items()],
                            cli_args=["--ros-args", "-r", "image:=camera/image_raw"]))
    sim = dict(lockstep=False, publish_instruction=False)
    sim.update(sim_parameters or {})
    sim_node = graph.add(SimNode(namespace=namespace, context=graph.context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in sim.items()]))
    return rt1, sim_node


class ScriptedOperator(Node):
    """The person at the robot, scripted. Each new `~/state` of rt1-trial (a new session, phase, episode or attempt)
    runs the handler for its phase on a thread of its own: ``scene``, ``running`` and ``verdict`` (each
    ``handler(operator, state)``). The defaults set the scene with the sim's reset_episode (``scenes``: episode ->
    (family, seed)), stop the episode once the sim reports it done, and score it from the sim's episode_status.
    Exceptions in handlers are kept in ``errors``."""

    def __init__(self, namespace: str, context, scenes: dict[int, tuple[str, int]], trial_node: str = "rt1_trial",
                 handlers: dict[str, Callable] | None = None) -> None:
        super().__init__(f"scripted_operator_{uuid.uuid4().hex[:6]}", namespace=namespace, context=context)
        self.scenes = scenes
        self.handlers = {"scene": ScriptedOperator.set_scene, "running": ScriptedOperator.stop_when_sim_done,
                         "verdict": ScriptedOperator.score_from_sim}
        self.handlers.update(handlers or {})
        self.errors: list[BaseException] = []
        self.states: list[dict] = []  # every state received, in order
        self._condition = threading.Condition()
        self._state: dict | None = None
        self._status = None
        self._scene: tuple[str, int, str] | None = None  # (family, seed, instruction) of the scene set last
        self._closing = False
        self.reset_client = self.create_client(ResetEpisode, "reset_episode")
        self.scene_ready_client = self.create_client(Trigger, f"{trial_node}/scene_ready")
        self.stop_client = self.create_client(Trigger, f"{trial_node}/stop")
        self.skip_client = self.create_client(Trigger, f"{trial_node}/skip")
        self.verdict_client = self.create_client(SetBool, f"{trial_node}/verdict")
        self.create_subscription(String, f"{trial_node}/state", self._on_state, qos.LATCHED)
        self.create_subscription(EpisodeStatus, "episode_status", self._on_status, qos.LATCHED)
        self._worker = threading.Thread(target=self._act, name="scripted_operator", daemon=True)
        self._worker.start()

    # -- what it hears -------------------------------------------------------------------------------------------
    def _on_state(self, message) -> None:
        state = json.loads(message.data)
        with self._condition:
            self.states.append(state)
            self._state = state
            self._condition.notify_all()

    def _on_status(self, message) -> None:
        with self._condition:
            self._status = message
            self._condition.notify_all()

    @staticmethod
    def key(state: dict | None) -> tuple:
        return (None,) if state is None else tuple(state.get(k) for k in ("session", "phase", "episode", "attempt"))

    def wait(self, predicate, state: dict, timeout_s: float | None = None) -> bool:
        """Until ``predicate()`` holds (-> True), or the trial has left ``state`` (-> False), or ``timeout_s``."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._closing or predicate() or self.key(self._state) != self.key(state), timeout_s) \
                and predicate()

    def wait_for_state(self, predicate, timeout_s: float) -> dict | None:
        """The first state received (from now on, or the current one) that satisfies ``predicate``."""
        with self._condition:
            if self._condition.wait_for(lambda: self._state is not None and predicate(self._state), timeout_s):
                return self._state
            return None

    # -- what it does --------------------------------------------------------------------------------------------
    def _act(self) -> None:
        handled = self.key(None)
        while True:
            with self._condition:
                while not (self._closing or self.key(self._state) != handled):
                    self._condition.wait()
                if self._closing:
                    return
                state = self._state
                handled = self.key(state)
            handler = self.handlers.get(state["phase"])
            if handler is None:
                continue
            try:
                handler(self, state)
            except Exception as exc:  # noqa: BLE001 — kept for the caller to report
                self.errors.append(exc)

    def call(self, client, request):
        if not client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S):
            raise RuntimeError(f"no {client.srv_name}")
        response = call_service(client, request, SERVICE_TIMEOUT_S)
        if response is None:
            raise RuntimeError(f"{client.srv_name} did not answer within {SERVICE_TIMEOUT_S:g} s")
        return response

    def trigger(self, client) -> Trigger.Response:
        response = self.call(client, Trigger.Request())
        if not response.success:
            raise RuntimeError(f"{client.srv_name}: {response.message}")
        return response

    def verdict(self, success: bool) -> None:
        response = self.call(self.verdict_client, SetBool.Request(data=success))
        if not response.success:
            raise RuntimeError(f"{self.verdict_client.srv_name}: {response.message}")

    def set_scene(self, state: dict) -> None:
        """`lay_out` the episode's scene, then `~/scene_ready`."""
        self.lay_out(state)
        self.trigger(self.scene_ready_client)

    def lay_out(self, state: dict) -> None:
        """The sim's reset_episode for the episode's (family, seed), checked against the instruction asked for."""
        family, seed = self.scenes[state["episode"]]
        response = self.call(self.reset_client, ResetEpisode.Request(task_family=family, seed=seed))
        if not response.success or response.instruction != state["instruction"]:
            raise RuntimeError(f"scene {family}/{seed}: {response.message} {response.instruction!r} is not the "
                               f"instruction asked for, {state['instruction']!r}")
        with self._condition:
            self._scene = (family, seed, response.instruction)

    def _episode_status(self, status) -> bool:
        return (status is not None and self._scene is not None
                and (status.task_family, status.seed, status.instruction) == self._scene)

    def stop_when_sim_done(self, state: dict) -> None:
        if self.wait(lambda: self._episode_status(self._status) and self._status.done, state):
            self.trigger(self.stop_client)

    def score_from_sim(self, state: dict) -> None:
        """The sim's success for the scene set: the one it latched when the episode ended (the policy's terminate,
        which the sim takes at its next image, or the step budget), else its success now (a timeout or a stop)."""
        if state.get("stop_reason") == "terminate":
            self.wait(lambda: self._episode_status(self._status) and self._status.done, state, SERVICE_TIMEOUT_S)
        with self._condition:
            status = self._status
        if not self._episode_status(status):
            raise RuntimeError(f"no episode_status of the scene set for episode {state['episode']}")
        self.verdict(bool(status.success))

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._worker.join(timeout=SERVICE_TIMEOUT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped models/rt1_sim")
    parser.add_argument("--families", nargs="+", default=None,
                        help="task families (default: those the checkpoint was trained on)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="per family")
    parser.add_argument("--condition", default=None,
                        help="config/sim.yaml condition of the scenes (default: `seen` if the checkpoint was trained "
                             "on it, else a condition it was trained on)")
    parser.add_argument("--episode-timeout-s", type=float, default=30.0, help="sim seconds")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="sim seconds per wall second (lower it when inference cannot keep up)")
    parser.add_argument("--output", type=Path, default=Path("outputs/trials/rehearsal"))
    args = parser.parse_args(argv)
    from rt1_ros.runtime.policy_loading import checkpoint_or_shipped

    try:
        args.checkpoint = checkpoint_or_shipped(args.checkpoint)
    except ValueError as exc:
        parser.error(str(exc))
    if args.families is None:
        from rt1_ros.closed_loop.evaluation import trained_families

        args.families = list(trained_families(args.checkpoint))
    if args.condition is None:
        from rt1_ros.closed_loop.evaluation import trained_on

        conditions = trained_on(args.checkpoint)[0]
        args.condition = "seen" if "seen" in conditions else sorted(conditions)[0]
    episodes = rehearsal_plan(args.families, args.seeds, args.condition)
    namespace = f"/rt1_rehearsal_{uuid.uuid4().hex[:8]}"
    with InProcessGraph() as graph:
        start_stand_in(graph, namespace, args.checkpoint,
                       sim_parameters=dict(condition=args.condition, task_family=args.families[0],
                                           seed=max(args.seeds) + 1, real_time_factor=args.real_time_factor))
        operator = graph.add(ScriptedOperator(namespace, graph.context,
                                              {i + 1: (family, seed) for i, (family, seed, _) in enumerate(episodes)}))
        settings = TrialSettings(output=str(args.output), plan=tuple(task for _, _, task in episodes),
                                 condition=f"sim stand-in ({args.condition})",
                                 episode_timeout_s=args.episode_timeout_s, service_timeout_s=SERVICE_TIMEOUT_S)
        run = TrialRun(settings, graph, namespace=namespace, use_sim_time=True)
        try:
            run.run()
        finally:
            run.close()
            operator.close()
        for error in operator.errors:
            print(f"scripted operator: {type(error).__name__}: {error}", file=sys.stderr)
    return 1 if operator.errors else 0


if __name__ == "__main__":
    sys.exit(main())
