"""The failure tracer's reasons on scripted moves (the reasons `rt1-eval --direct` prints beside a failed row): for
pick, a gripper closed near the target but on nothing is told from one that held the target and never lifted it; for
push, an untouched target says how near the pads came down to it."""
import numpy as np
import pytest

from rt1_ros.sim.failure_analysis import FailureTracer

SEED = 3  # pick: the blue cube, clear of the other objects


def pads_on_table_z(config) -> float:
    """The grip site's height with the pads just over the table, as the pick and push experts come down."""
    return config.table.height + config.gripper.pad_half_extents[2] + config.expert.pad_table_clearance


def close_and_stay(sim, move_arm, sideways: float, above: float) -> str:
    """Hover over the target (``sideways`` m off its centre along y), go down to ``above`` m over the expert's grasp
    height, close, and end the episode there; the tracer's reason."""
    config = sim.config
    task = sim.reset("pick", SEED)
    tracer = FailureTracer(sim, task)
    target = sim.to_base_frame(sim.object_position(task.target_name))
    grasp_z = max(target[2], pads_on_table_z(config))  # as the pick expert grasps
    spot = np.array([target[0], target[1] + sideways, 0.0])
    move_arm(spot + [0.0, 0.0, config.table.height + config.expert.hover_height], 0.0)
    tracer.after_step()
    move_arm(spot + [0.0, 0.0, grasp_z + above], 0.0)
    tracer.after_step()
    move_arm(spot + [0.0, 0.0, grasp_z + above], 1.0)
    tracer.after_step()
    assert sim.gripper_command > 0.5 and not sim.success()
    return tracer.classify(False)


def test_a_grasp_that_held_the_target_and_never_lifted_it(sim, move_arm):
    assert close_and_stay(sim, move_arm, sideways=0.0, above=0.0) == "held the target 0 cm off its centre, not lifted"


@pytest.mark.parametrize("sideways, centimetres", [(0.0, 0), (0.02, 2)])
def test_a_gripper_closed_over_the_target_on_nothing_is_a_miss_by_its_distance(sim, move_arm, sideways, centimetres):
    reason = close_and_stay(sim, move_arm, sideways=sideways, above=0.06)  # the pads close 2.4 cm over its top
    assert reason == f"closed {centimetres} cm off the target's centre, never held it"


PUSH_SEED = 3


def push_pads_down(sim, move_arm, forward: float, down: bool) -> str:
    """Closed gripper over the push target, ``forward`` m beyond its centre (base x), brought down to the expert's
    push height (``down``) or kept at the hover height, and the episode ended there; the tracer's reason."""
    config = sim.config
    task = sim.reset("push", PUSH_SEED)
    tracer = FailureTracer(sim, task)
    target = sim.to_base_frame(sim.object_position(task.target_name))
    hover = config.table.height + config.expert.hover_height
    push_z = pads_on_table_z(config)
    spot = np.array([target[0] + forward, target[1], 0.0])
    move_arm(spot + [0.0, 0.0, hover], 1.0)
    tracer.after_step()
    if down:
        move_arm(spot + [0.0, 0.0, push_z], 1.0)
        tracer.after_step()
    assert not sim.success()
    return tracer.classify(False)


def test_a_push_that_never_touched_the_target_says_how_near_the_pads_came(sim, move_arm):
    assert push_pads_down(sim, move_arm, forward=0.05, down=True) == \
        "target not touched (the pads passed 5 cm from its centre)"
    assert push_pads_down(sim, move_arm, forward=0.05, down=False) == \
        "target not touched (the pads never down at its height)"
