"""The object families (move_object_near, knock_over, place_upright) and the cans they bring: success checks on
hand-made states, the experts, the cans' physics, failure reasons, and the old families' scenes left as they were."""
import math

import numpy as np
import pytest

from rt1_ros.sim.episode import apply_rt1_action
from rt1_ros.sim.experts import ScriptedExpert
from rt1_ros.sim.scene import CAN_SHAPE, ObjectSpec
from rt1_ros.sim.tasks import SceneState, Task, check_success

FAMILIES = ("move_object_near", "knock_over", "place_upright")
UP = np.array([0.0, 0.0, 1.0])


def _task(family: str, target_shape: str = CAN_SHAPE, reference: ObjectSpec | None = None) -> Task:
    return Task(family=family, instruction="", seed=0, target=ObjectSpec("red", target_shape, (1, 0, 0, 1)),
                direction=None, base_start=(0.2, 0.0, 0.0), placements=(), reference=reference)


def _tilted(degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    return np.array([math.sin(angle), 0.0, math.cos(angle)])


def _state(sim, position, rest, **fields) -> SceneState:
    defaults = dict(base_pose=(0.2, 0.0, 0.0), object_position=np.asarray(position, dtype=float),
                    object_rest_position=np.asarray(rest, dtype=float), reset_base_yaw=0.0, grasped=False,
                    object_up=UP, gripper_open=True, gripper_touching=False)
    defaults.update(fields)
    return SceneState(**defaults)


def test_move_object_near_success_needs_the_target_let_go_near_an_unmoved_reference(sim):
    config = sim.config
    table = config.table.height
    task = _task("move_object_near", "cube", ObjectSpec("blue", CAN_SHAPE, (0, 0, 1, 1)))
    rest = np.array([0.6, 0.2, table + 0.02])
    reference = np.array([0.6, 0.0, table + 0.055])
    near = config.tasks.object_near_distance

    def state(position, **fields):
        fields.setdefault("reference_position", reference)
        fields.setdefault("reference_rest_position", reference)
        return _state(sim, position, rest, **fields)

    placed = [0.6, near - 0.02, rest[2]]
    assert check_success(config, task, state(placed))
    assert not check_success(config, task, state(rest))  # where it started: too far
    assert not check_success(config, task, state([0.6, near + 0.02, rest[2]]))
    assert not check_success(config, task, state(placed, grasped=True))
    assert not check_success(config, task, state(placed, gripper_open=False))
    assert not check_success(config, task, state([0.6, near - 0.02, rest[2] + 0.03]))  # held above the table
    knocked = reference + [0.0, -0.05, 0.0]
    assert not check_success(config, task, state(placed, reference_position=knocked))


def test_knock_over_success_needs_the_can_tilted_on_the_table_and_left_alone(sim):
    config = sim.config
    table = config.table.height
    task = _task("knock_over")
    rest = [0.6, 0.0, table + config.cans.half_height]
    lying = [0.66, 0.0, table + config.cans.radius]
    assert check_success(config, task, _state(sim, lying, rest, object_up=_tilted(90)))
    assert check_success(config, task, _state(sim, lying, rest, object_up=-_tilted(75)))  # either end
    assert not check_success(config, task, _state(sim, rest, rest, object_up=UP))
    assert not check_success(config, task, _state(sim, lying, rest, object_up=_tilted(45)))  # leaning
    assert not check_success(config, task, _state(sim, lying, rest, object_up=_tilted(90), gripper_touching=True))
    assert not check_success(config, task, _state(sim, [0.66, 0.0, 0.03], rest, object_up=_tilted(90)))  # floor


def test_place_upright_success_needs_the_can_standing_let_go(sim):
    config = sim.config
    table = config.table.height
    task = _task("place_upright")
    rest = [0.6, 0.0, table + config.cans.radius]
    standing = [0.6, 0.0, table + config.cans.half_height]
    assert check_success(config, task, _state(sim, standing, rest, object_up=_tilted(8)))
    assert check_success(config, task, _state(sim, standing, rest, object_up=-UP))  # upside down is upright too
    assert not check_success(config, task, _state(sim, rest, rest, object_up=_tilted(90)))
    assert not check_success(config, task, _state(sim, standing, rest, object_up=_tilted(25)))
    assert not check_success(config, task, _state(sim, standing, rest, grasped=True))
    assert not check_success(config, task, _state(sim, standing, rest, gripper_open=False))
    held_up = [0.6, 0.0, table + config.cans.half_height + 0.04]
    assert not check_success(config, task, _state(sim, held_up, rest))


@pytest.mark.parametrize("family", FAMILIES)
def test_reset_lays_out_the_family_with_its_target_in_view_and_unsolved(sim, family):
    for seed in range(4):
        task = sim.reset(family, seed)
        assert task.family == family and not sim.success()
        assert sim.target_visible(task.target_name)
        assert (task.target.shape == CAN_SHAPE) == (family != "move_object_near")
        assert task.target.colour in task.instruction
        tilt = math.degrees(math.acos(abs(sim.object_axis(task.target_name)[2])))
        if family == "place_upright":
            assert tilt > 85 and sim.object_position(task.target_name)[2] == pytest.approx(
                sim.config.table.height + sim.config.cans.radius, abs=0.003)  # lying still, not rolled off
        else:
            assert tilt < 2
        if family == "move_object_near":
            assert task.reference is not None and task.reference.colour in task.instruction
            assert task.reference.name in {p.spec.name for p in task.placements} - {task.target_name}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_failed_episode_gets_a_reason(idle_failure, family):
    result, reason = idle_failure(family, 0, 3)
    assert not result.success
    expected = {"move_object_near": "never closed", "knock_over": "can not touched", "place_upright": "never closed"}
    assert reason == expected[family]


def test_a_lying_can_stays_put_and_a_standing_can_stands(sim):
    """condim 6: rolling friction holds a can on its side where it was laid; one on its end does not wobble."""
    for family in ("place_upright", "knock_over"):
        task = sim.reset(family, 1)
        name = task.target_name
        start, axis = sim.object_position(name), sim.object_axis(name)
        sim.advance(3.0)
        assert np.linalg.norm(sim.object_position(name) - start) < 0.002
        assert abs(float(sim.object_axis(name) @ axis)) > math.cos(math.radians(1.0))


def test_parked_cans_float_out_of_view_and_touch_nothing(sim):
    """Old families' scenes: the cans stay parked, off camera, with no contact for the constraint solver."""
    for family, seed in (("pick", 0), ("push", 1), ("move_near", 2)):
        task = sim.reset(family, seed)
        assert CAN_SHAPE not in {p.spec.shape for p in task.placements}
        sim.advance(1.0)
        for spec in sim.config.objects.colours:
            name = f"{spec.name}_{CAN_SHAPE}"
            park = sim.config.cans.parking_origin
            assert sim.object_position(name)[2] == pytest.approx(park[2], abs=1e-6)
            u, v = sim.image_position(name)
            assert not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0)
            assert not sim.robot_touches(name)
            geom = sim._object_geom[name]
            assert not any(geom in pair for pair in sim.data.contact.geom[: sim.data.ncon])


def test_old_family_sampling_is_unchanged(sim):
    """What pick seed 0 drew before the cans existed (the code of the shipped policy's data)."""
    task = sim.reset("pick", 0)
    assert task.instruction == "lift up the red block from the table"
    assert task.base_start == pytest.approx((0.18240967502235822, -0.0014164641168210937, 0.07789756686980007))
    assert [p.spec.name for p in task.placements] == ["red_cylinder", "blue_cube", "yellow_cube", "red_cube",
                                                      "green_cube"]
    assert [p.x for p in task.placements] == pytest.approx(
        [0.687785780818881, 0.6361074988051592, 0.5647019805427651, 0.6019596646752339, 0.6144489993570745])
    assert [sim.reset(None, seed).family for seed in range(6)] == [
        sim.reset(None, seed).family for seed in range(6)]
    assert {sim.reset(None, seed).family for seed in range(12)} <= set(sim.config.tasks.default_families)


def test_cans_fit_the_gripper(sim):
    cans, gripper = sim.config.cans, sim.config.gripper
    assert 2 * cans.radius < 2 * gripper.finger_travel - 0.015  # opening of 8 cm, some slack each side
    assert math.degrees(math.atan(cans.radius / cans.half_height)) < 35  # a can tips easily when pushed high


def test_a_grasped_can_is_held_by_the_pads_not_pushed_through_them(sim, space):
    """The physics of standing a can up: through close, lift and turn the can stays between both pads and turns
    with the hand."""
    task = sim.reset("place_upright", 2)
    expert = ScriptedExpert(sim, space)
    expert.reset(task)
    for _ in range(sim.config.tasks.family("place_upright").max_steps):
        action = expert.act()
        if expert.phase == "lower":
            break
        apply_rt1_action(sim, action, space)
        sim.advance(sim.config.physics.control_period_s)
    assert expert.phase == "lower"
    name = task.target_name
    assert sim.is_grasped(name)
    assert abs(sim.object_axis(name)[2]) > math.cos(math.radians(10))
    assert np.linalg.norm(sim.to_base_frame(sim.object_position(name)) - sim.end_effector_position()) < 0.02
