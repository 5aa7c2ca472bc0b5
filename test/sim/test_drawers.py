"""The cabinet and the drawer families: success checks on hand-made states, the expert, the physics of the drawers,
and that the other families' scenes do not see the cabinet."""
import dataclasses
import math

import numpy as np
import pytest

from rt1_ros.sim.cabinet import handle_body, slot_bottom
from rt1_ros.sim.episode import run_expert_episode
from rt1_ros.sim.tasks import check_success

DRAWER_FAMILIES = ("open_drawer", "close_drawer")


def _to_cabinet(sim, world):
    x, y, yaw = sim.cabinet_pose()
    dx, dy = world[0] - x, world[1] - y
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([c * dx + s * dy, -s * dx + c * dy, world[2] - sim.config.table.height])


@pytest.mark.parametrize("family", DRAWER_FAMILIES)
def test_drawer_success_on_hand_made_states(sim, family):
    config = sim.config
    task = sim.reset(family, 0)
    travel = config.cabinet.travel
    state = sim.scene_state()
    assert task.drawer in config.cabinet.drawers and task.target_name == handle_body(task.drawer)
    assert task.drawer in task.instruction
    assert not check_success(config, task, state)  # as reset: closed for open_drawer, open for close_drawer
    wide = config.gripper.finger_travel * 2
    if family == "open_drawer":
        good = dataclasses.replace(state, drawer_travel=0.7 * travel, gripper_opening=wide, arm_touches_cabinet=False)
        assert check_success(config, task, good)
        assert not check_success(config, task, dataclasses.replace(good, drawer_travel=0.5 * travel))
        assert not check_success(config, task, dataclasses.replace(good, gripper_opening=0.01))  # still holding
        assert not check_success(config, task, dataclasses.replace(good, arm_touches_cabinet=True))
    else:
        good = dataclasses.replace(state, drawer_travel=0.05 * travel, gripper_opening=0.0, arm_touches_cabinet=False)
        assert check_success(config, task, good)
        assert not check_success(config, task, dataclasses.replace(good, drawer_travel=0.2 * travel))
        assert not check_success(config, task, dataclasses.replace(good, arm_touches_cabinet=True))


@pytest.mark.parametrize("family", DRAWER_FAMILIES)
def test_drawer_reset_layout(sim, cabinet_point, family):
    config = sim.config
    for seed in range(6):
        task = sim.reset(family, seed)
        assert sim.target_visible(task.target_name)
        index = config.cabinet.drawers.index(task.drawer)
        travels = [sim.drawer_travel(d) for d in config.cabinet.drawers]
        if family == "open_drawer":
            assert travels == pytest.approx([0.0] * 3, abs=1e-4)
        else:
            low, high = (f * config.cabinet.travel for f in config.tasks.drawer_start_open)
            assert low - 1e-3 <= travels[index] <= high + 1e-3
            assert all(abs(t) < 1e-4 for i, t in enumerate(travels) if i != index)
        # No object stands where the cabinet is, or in front of it.
        half = config.cabinet.width / 2
        for placement in task.placements:
            assert abs(placement.y - task.cabinet.y) > half
        handle = sim.object_position(task.target_name)
        expected = cabinet_point((travels[index] + config.cabinet.handle_standoff, 0.0,
                                        slot_bottom(config.cabinet, index) + config.cabinet.slot_height / 2))
        np.testing.assert_allclose(handle, expected, atol=1e-6)


@pytest.mark.parametrize("family", DRAWER_FAMILIES)
def test_a_zero_action_policy_fails_and_is_classified(idle_failure, family):
    result, reason = idle_failure(family, 3, 4)
    assert not result.success
    assert reason == "handle never grasped" if family == "open_drawer" else reason == "drawer never touched"


def test_cabinet_is_parked_out_of_view_and_old_sampling_is_unchanged(sim):
    import mujoco

    parking = np.asarray(sim.config.cabinet.parking_position)
    body = sim.model.body("cabinet").id
    for family in ("pick", "push", "move_near"):
        for seed in range(2):
            task = sim.reset(family, seed)
            assert task.drawer is None and task.cabinet is None
            x, y, _ = sim.cabinet_pose()
            assert (x, y) == (parking[0], parking[1])
            # The image is the one without a cabinet anywhere near (shadows included): moved 50 m further away.
            mujoco.mj_forward(sim.model, sim.data)
            image = sim.render()
            sim.model.body_pos[body] = (-50.0, -50.0, 0.0)
            mujoco.mj_forward(sim.model, sim.data)
            far = sim.render()
            sim.model.body_pos[body] = parking
            mujoco.mj_forward(sim.model, sim.data)
            np.testing.assert_array_equal(image, far)
            u, v = sim.image_position(handle_body(sim.config.cabinet.drawers[0]))
            assert not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0)
    # The layouts the other families drew before the cabinet existed (main's code, seed 0).
    task = sim.reset("pick", 0)
    assert task.instruction == "lift up the red block from the table"
    assert task.base_start == (0.18240967502235822, -0.0014164641168210937, 0.07789756686980007)
    assert sim.reset("push", 0).instruction == "push the block that is red right"
    assert {sim.reset(None, seed).family for seed in range(12)} == {"pick", "push", "move_near"}


def test_closed_drawers_stay_closed_while_the_base_drives(sim):
    sim.reset("open_drawer", 1)
    cabinet = sim.cabinet_pose()
    period = sim.config.physics.control_period_s
    for twist in ([0.5, 0.0, 0.0], [-0.5, 0.3, 0.0], [0.0, -0.5, 1.0], [0.4, 0.0, -1.0], [-0.5, 0.0, 0.0]):
        sim.apply_action(twist, np.zeros(6), 0.0)  # full speed, and stops between: the hardest accelerations
        sim.advance(period)
        sim.stop()
        sim.advance(period)
    for drawer in sim.config.cabinet.drawers:
        assert abs(sim.drawer_travel(drawer)) < 1e-3
    assert sim.cabinet_pose() == cabinet


def test_pulling_a_drawer_past_its_stop_does_not_move_the_cabinet(sim, space, cabinet_point):
    result = run_expert_episode(sim, "open_drawer", 2, space)
    assert result.success
    cabinet = sim.cabinet_pose()
    carcass = sim.data.xpos[sim.model.body("cabinet").id].copy()
    drawer = result.task.drawer
    # Grab the opened drawer's handle body directly: a pull far beyond the stop.
    body = sim.model.body(f"{drawer}_drawer").id
    pull = cabinet_point((1.0, 0.0, 0.0)) - cabinet_point((0.0, 0.0, 0.0))
    for _ in range(200):
        sim.data.xfrc_applied[body, :3] = 80.0 * pull
        sim.advance(sim.model.opt.timestep)
    sim.data.xfrc_applied[body] = 0.0
    assert sim.drawer_travel(drawer) == pytest.approx(sim.config.cabinet.travel, abs=3e-3)  # held by the stop
    np.testing.assert_array_equal(sim.data.xpos[sim.model.body("cabinet").id], carcass)
    assert sim.cabinet_pose() == cabinet


@pytest.mark.parametrize("solid", (True, False))
def test_a_grasped_object_does_not_pass_through_a_drawer_wall(sim, move_arm, cabinet_point, solid):
    """A cube held in the gripper is shoved into the inside of the open top drawer's front, with the target 8 cm
    past the wall. It stops at the wall. The same move with the wall's contacts switched off carries the cube through,
    which shows the check can see a wall fail."""
    config = sim.config
    cabinet = config.cabinet
    task = sim.reset("open_drawer", 4)
    cube = next(s for s in sim._specs.values()
                if s.shape == "cube" and s.name not in {p.spec.name for p in task.placements})
    top = cabinet.drawers[0]
    sim.data.qpos[sim._drawer_qpos[top]] = cabinet.travel  # fully open: the stop holds it against the push
    inner_front = cabinet.travel - cabinet.front_thickness  # cabinet x of the front's inner face
    floor = slot_bottom(cabinet, 0) + cabinet.clearance + cabinet.drawer_wall_thickness
    half = config.objects.cube_half_size
    start = cabinet_point((inner_front - half - 0.03, 0.0, floor + half))
    adr = sim._object_qpos[cube.name]
    _, _, yaw = sim.cabinet_pose()
    sim.data.qpos[adr:adr + 3] = start
    sim.data.qpos[adr + 3:adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))  # faces along the drawer
    front = sim.model.geom(f"{top}_drawer_front").id
    saved = (sim.model.geom_contype[front], sim.model.geom_conaffinity[front])
    if not solid:
        sim.model.geom_contype[front], sim.model.geom_conaffinity[front] = 0, 0
    try:
        sim.advance(0.3)
        grasp = sim.to_base_frame(sim.object_position(cube.name)) + np.array([0.0, 0.0, 0.008])
        move_arm(np.r_[sim.arm_target()[0][:2], 0.9], gripper=0.0, step=0.03)  # up over the open drawer's front
        move_arm(grasp + np.array([0.0, 0.0, 0.08]), gripper=0.0, step=0.03)
        move_arm(grasp, gripper=0.0, step=0.03)
        move_arm(grasp, gripper=1.0, step=0.03)
        move_arm(grasp + np.array([0.0, 0.0, 0.01]), gripper=1.0, step=0.03)
        assert sim.is_grasped(cube.name)
        beyond = sim.to_base_frame(cabinet_point((inner_front + 0.08, 0.0, floor + half + 0.018)))
        move_arm(beyond, gripper=1.0, step=0.02)
        reached = _to_cabinet(sim, sim.object_position(cube.name))[0] + half  # the cube's leading face
    finally:
        sim.model.geom_contype[front], sim.model.geom_conaffinity[front] = saved
    if solid:
        assert reached < inner_front + 0.003  # at most 3 mm into the 15 mm front
        assert sim.drawer_travel(top) == pytest.approx(cabinet.travel, abs=3e-3)
    else:
        assert reached > inner_front + cabinet.front_thickness  # straight through


@pytest.mark.parametrize("family", DRAWER_FAMILIES)
def test_unseen_drawer_wordings_are_never_training_wordings(sim, family):
    from rt1_ros.sim.tasks import training_wordings

    trained = {w for d in sim.config.cabinet.drawers for w in training_wordings(sim.config, family, d, "", None)}
    assert len(trained) == 3 * len(sim.config.tasks.family(family).templates)
    for seed in range(4):
        task = sim.reset(family, seed, "unseen_wordings")
        assert task.instruction not in trained and task.drawer in task.instruction
        assert sim.reset(family, seed, "seen").instruction in trained
