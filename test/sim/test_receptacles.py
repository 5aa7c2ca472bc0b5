"""Receptacles and their families (place_into, pick_from): success checks on hand-made states, the expert, the
physics of the walls and the plate, and that the earlier families do not see the receptacles."""
import dataclasses
import math

import mujoco
import numpy as np
import pytest

from rt1_ros.sim import scene
from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.episode import apply_rt1_action, run_expert_episode
from rt1_ros.sim.experts import ScriptedExpert
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim
from rt1_ros.sim.receptacles import receptacle_geometry
from rt1_ros.sim.scene import ObjectSpec, object_half_height, object_half_width
from rt1_ros.sim.tasks import SceneState, Task, check_success, sample_task
from rt1_ros.sim.tasks.receptacles import RECEPTACLE_FAMILIES

SEEDS = (100, 101, 102, 103)  # dev seeds; both kinds of receptacle among them


def _task(family: str, receptacle: str, pose=(0.62, 0.05, 0.3)) -> Task:
    spec = ObjectSpec("red", "cube", (1.0, 0.0, 0.0, 1.0))
    return Task(family=family, instruction="", seed=0, target=spec, direction=None, base_start=(0.19, 0.0, 0.0),
                placements=(), receptacle=receptacle, receptacle_pose=pose)


def _state(position, pose, grasped=False, closedness=0.0) -> SceneState:
    return SceneState(base_pose=(0.19, 0.0, 0.0), object_position=np.asarray(position, dtype=float),
                      object_rest_position=np.zeros(3), reset_base_yaw=0.0, grasped=grasped, receptacle_pose=pose,
                      gripper_open=closedness < 0.5)


def _local_to_world(pose, lx, ly):
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return pose[0] + c * lx - s * ly, pose[1] + s * lx + c * ly


@pytest.mark.parametrize("receptacle", ("tray", "bowl"))
def test_place_into_success_on_hand_made_states(receptacle):
    config = SimConfig.from_yaml()
    pose = (0.62, 0.05, 0.3)
    task = _task("place_into", receptacle, pose)
    geometry = receptacle_geometry(config, receptacle)
    resting_z = config.table.height + geometry.floor_height + config.objects.cube_half_size
    hx, hy = geometry.kind.inner_half_extents
    near_wall = 0.9 * hx  # inside, close to the wall facing the receptacle's +x

    def success(lx, ly, z=resting_z, **kwargs):
        return check_success(config, task, _state((*_local_to_world(pose, lx, ly), z), pose, **kwargs))

    assert success(0.0, 0.0)
    assert success(near_wall, 0.0)
    assert not success(hx + 0.03, 0.0)  # beside the receptacle
    assert not success(0.0, 0.0, grasped=True)  # still held
    assert not success(0.0, 0.0, closedness=1.0)  # gripper not open
    assert not success(0.0, 0.0, z=config.table.height + geometry.wall_top + 0.02)  # above the walls: not in it
    assert not success(0.0, 0.0, z=config.table.height + geometry.floor_height - 0.001)  # below the plate
    corner = 0.95 * hx  # in the square around a ring, outside the ring
    assert success(corner, corner) == (geometry.kind.shape == "box")


def test_pick_from_success_on_hand_made_states():
    config = SimConfig.from_yaml()
    pose = (0.62, 0.05, 0.3)
    task = _task("pick_from", "tray", pose)
    geometry = receptacle_geometry(config, "tray")
    on_table = config.table.height + config.objects.cube_half_size
    outer_y = geometry.outer_half_extents[1]
    clearance = config.tasks.receptacle_clearance

    def success(ly, z=on_table, **kwargs):
        return check_success(config, task, _state((*_local_to_world(pose, 0.0, ly), z), pose, **kwargs))

    assert success(outer_y + clearance + 0.01)
    assert success(-(outer_y + clearance + 0.05))
    assert not success(outer_y + clearance - 0.01)  # too near the receptacle
    assert not success(0.0, z=config.table.height + geometry.floor_height + config.objects.cube_half_size)  # in it
    assert not success(outer_y + 0.1, z=on_table + 0.05)  # held above the table, not resting on it
    assert not success(outer_y + 0.1, grasped=True)
    assert not success(outer_y + 0.1, closedness=1.0)
    off_table = config.table.center[1] + config.table.half_extents[1] + 0.05
    assert not check_success(config, task, _state((0.62, off_table, on_table), pose))


@pytest.mark.parametrize("family", RECEPTACLE_FAMILIES)
def test_a_reset_lays_out_the_receptacle_in_view_with_the_target_where_the_family_needs_it(sim, family):
    for seed in SEEDS:
        task = sim.reset(family, seed)
        assert task.receptacle in ("tray", "bowl") and task.receptacle in task.instruction.split()
        assert task.target.colour in task.instruction
        assert not sim.success()
        assert sim.target_visible(task.target_name) and sim.in_view(task.receptacle)
        geometry = receptacle_geometry(sim.config, task.receptacle)
        pose = sim.receptacle_pose(task.receptacle)
        np.testing.assert_allclose(pose, task.receptacle_pose, atol=1e-9)
        position = sim.object_position(task.target_name)
        support = geometry.floor_height if family == "pick_from" else 0.0
        expected_z = sim.config.table.height + support + object_half_height(sim.config, task.target.shape)
        assert position[2] == pytest.approx(expected_z, abs=0.003)  # settled on the plate or the table
        assert geometry.inside(pose, position) == (family == "pick_from")
        for placement in task.placements:  # every other object clear of the receptacle
            if placement.spec.name != task.target_name:
                distance = geometry.distance_outside(pose, (placement.x, placement.y))
                assert distance >= sim.config.receptacles.object_clearance


@pytest.mark.parametrize("family", RECEPTACLE_FAMILIES)
def test_expert_succeeds_within_its_step_budget(sim, space, family):
    budget = sim.config.tasks.family(family).max_steps
    kinds = set()
    for seed in SEEDS:
        result = run_expert_episode(sim, family, seed, space)
        kinds.add(result.task.receptacle)
        assert result.success, f"{family} seed {seed}: {result.task.instruction}"
        assert result.terminated and result.steps <= budget
        actions = result.actions
        assert np.all(actions[:, :10] >= space.low - 1e-9) and np.all(actions[:, :10] <= space.high + 1e-9)
        modes = [space.mode_classes[int(m)] for m in actions[:, 10]]
        assert modes[-1] == "terminate" and "terminate" not in modes[:-1]
        assert set(modes[:-1]) == {"arm"}
        assert np.all(actions[:-1, 7:10] == 0)
        assert set(np.unique(actions[:, 6])) == {0.0, 1.0}  # closes, opens again, never half-closed
        assert actions[-1, 6] == 0.0
    assert kinds == {"tray", "bowl"}


def _walls_without_contacts(sim):
    """Switch off every receptacle geom's collisions (the broken physics the checks below must notice)."""
    for geom in range(sim.model.ngeom):
        if _is_receptacle(sim, geom):
            sim.model.geom_contype[geom] = 0
            sim.model.geom_conaffinity[geom] = 0


def _is_receptacle(sim, geom: int) -> bool:
    return sim.model.body_mocapid[sim.model.geom_bodyid[geom]] >= 0


def _first_seed(sim, family, receptacle):
    for seed in range(100, 200):
        task = sim.reset(family, seed)
        if task.receptacle == receptacle:
            return seed
    raise AssertionError(f"no {family} layout with a {receptacle} in 100 seeds")


@pytest.mark.parametrize("walls_collide", (True, False))
def test_a_grasped_object_pushed_into_a_wall_does_not_pass_through(space, walls_collide):
    """Grasp the object in the tray, hold it low and drive the arm target 20 cm through the wall facing the tray's
    +x: the object stops at the wall (its centre at most 3 mm further than touching it) and nothing sinks more than
    5 mm into a wall (the force-limited fingers give way and ride over it; with MuJoCo's default contact softness a
    pad sinks 9 mm). With the walls' contacts switched off, the same push carries the object through: the check
    sees a broken wall."""
    sim = MobileManipulatorSim()
    try:
        if not walls_collide:
            _walls_without_contacts(sim)
        seed = _first_seed(sim, "pick_from", "tray")
        task = sim.reset("pick_from", seed)
        expert = ScriptedExpert(sim, space)
        expert.reset(task)
        for _ in range(40):  # the expert grasps the object in the tray
            if expert.phase == "lift":
                break
            apply_rt1_action(sim, expert.act(), space)
            sim.advance(sim.config.physics.control_period_s)
        assert sim.is_grasped(task.target_name)
        geometry = receptacle_geometry(sim.config, task.receptacle)
        pose = sim.receptacle_pose(task.receptacle)
        base_yaw = sim.odometry().yaw
        direction = np.array([math.cos(pose[2] - base_yaw), math.sin(pose[2] - base_yaw)])  # tray +x, base frame
        farthest, deepest = -math.inf, 0.0
        for _ in range(5):
            sim.apply_action(np.zeros(3), np.r_[0.04 * direction, 0.0, 0.0, 0.0, 0.0], 1.0)
            for _ in range(round(sim.config.physics.control_period_s / 0.02)):
                sim.advance(0.02)
                lx, _ = geometry.local_xy(pose, sim.object_position(task.target_name))
                farthest = max(farthest, lx)
                deepest = min([deepest] + [float(contact.dist) for contact in sim.data.contact[:sim.data.ncon]
                                           if _is_receptacle(sim, contact.geom1) or _is_receptacle(sim, contact.geom2)])
        touching = geometry.kind.inner_half_extents[0] - object_half_width(sim.config, task.target.shape)
        if walls_collide:
            assert farthest < touching + 0.003
            assert deepest > -0.005
            assert geometry.inside(pose, sim.object_position(task.target_name))
        else:
            assert farthest > geometry.outer_half_extents[0]
    finally:
        sim.close()


@pytest.mark.parametrize("receptacle", ("tray", "bowl"))
@pytest.mark.parametrize("collides", (True, False))
def test_an_object_let_go_at_the_release_height_stays_in_the_receptacle(receptacle, collides):
    """The expert lets go with the object's bottom `release_gap` over the plate, over the centre give or take its
    carry tolerance; dropped from there, near a wall and turned, it comes to rest on the plate, inside (the place_into
    check passes once the gripper is out of the way). Without the receptacle's contacts it falls to the table."""
    sim = MobileManipulatorSim()
    try:
        if not collides:
            _walls_without_contacts(sim)
        task = sim.reset("place_into", _first_seed(sim, "place_into", receptacle))
        name = task.target_name
        geometry = receptacle_geometry(sim.config, receptacle)
        pose = sim.receptacle_pose(receptacle)
        half = object_half_height(sim.config, task.target.shape)
        floor = sim.config.table.height + geometry.floor_height
        offset = geometry.kind.inner_half_extents[0] - object_half_width(sim.config, task.target.shape) - 0.02
        x, y = _local_to_world(pose, offset, 0.0)
        adr = sim.model.jnt_qposadr[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_JOINT, name)]
        dof = sim.model.jnt_dofadr[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_JOINT, name)]
        sim.data.qpos[adr:adr + 7] = (x, y, floor + sim.config.expert.release_gap + half,
                                      math.cos(0.3), 0.0, 0.0, math.sin(0.3))
        sim.data.qvel[dof:dof + 6] = 0.0
        mujoco.mj_forward(sim.model, sim.data)
        sim.advance(1.0)
        position = sim.object_position(name)
        if collides:
            assert geometry.inside(pose, position)
            assert position[2] == pytest.approx(floor + half, abs=0.002)
            assert sim.success()
        else:  # through the plate, onto the table top
            assert position[2] == pytest.approx(sim.config.table.height + half, abs=0.002)
    finally:
        sim.close()


def test_unused_receptacles_stay_parked_out_of_view_in_the_earlier_families(sim):
    parked = {name: sim.model.body_pos[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, name)].copy()
              for name in ("tray", "bowl")}
    sim.reset("place_into", SEEDS[0])  # a receptacle on the table first: the next reset must park it again
    for family in ("pick", "push", "move_near"):
        for seed in SEEDS[:2]:
            sim.reset(family, seed)
            for name, position in parked.items():
                mocap = sim.model.body_mocapid[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, name)]
                np.testing.assert_array_equal(sim.data.mocap_pos[mocap], position)
                where = sim.image_position(name)
                assert not sim.in_view(name) and (where.min() < 0 or where.max() > 1)


def test_the_receptacle_bodies_change_nothing_in_an_earlier_family_episode(sim, space, monkeypatch):
    """The scene compiled without the receptacles (what the earlier families ran on) gives the same first image and
    the same expert episode, bit for bit: the receptacles add no degrees of freedom and no contacts."""
    with_receptacles = run_expert_episode(sim, "push", 3, space, record_images=True)
    state = sim.data.qpos.copy()
    monkeypatch.setattr(scene, "receptacles_xml", lambda config: "")
    bare = MobileManipulatorSim()
    try:
        assert bare.model.nv == sim.model.nv and bare.model.nbody == sim.model.nbody - 2
        without = run_expert_episode(bare, "push", 3, space, record_images=True)
        np.testing.assert_array_equal(with_receptacles.images[0], without.images[0])
        np.testing.assert_array_equal(with_receptacles.actions, without.actions)
        np.testing.assert_array_equal(state, bare.data.qpos)
    finally:
        bare.close()


def test_earlier_families_draw_their_layouts_without_reading_the_receptacles(sim):
    """Old families' sampling never touches the receptacles' configuration, and a reset naming no family draws one
    of tasks.default_families (the earlier three) as before."""
    config = sim.config
    moved = dataclasses.replace(config, receptacles=dataclasses.replace(
        config.receptacles, region_y=(0.0, 0.0), kinds=config.receptacles.kinds[:1]))
    condition = config.condition("seen")
    for family in ("pick", "push", "move_near"):
        draws = []
        for cfg in (config, moved):
            rng, words = np.random.default_rng(7), np.random.default_rng([7, 1])
            draws.append((sample_task(cfg, family, 7, rng, condition, 4, words), rng.random()))
        assert draws[0] == draws[1]
    assert {sim.reset(None, seed).family for seed in range(12)} == set(config.tasks.default_families)


def test_held_out_pairs_and_unseen_wordings(sim):
    held_out = set(sim.config.tasks.held_out_pairs)
    for family in RECEPTACLE_FAMILIES:
        family_config = sim.config.tasks.family(family)
        assert len(family_config.templates) >= 10 and len(family_config.unseen_templates) >= 5
        assert any(pair.startswith(f"{family}:") for pair in held_out)
        for seed in range(100, 106):
            assert sim.reset(family, seed, "seen").pair not in held_out
            assert sim.reset(family, seed, "unseen_pairs").pair in held_out
            task = sim.reset(family, seed, "unseen_wordings")
            trained = {" ".join(t.format(colour=task.target.colour, object=word, direction="",
                                         receptacle=task.receptacle).split())
                       for t in family_config.templates for word in sim.config.objects.words_for(task.target.shape)}
            assert task.instruction not in trained and task.receptacle in task.instruction


def test_failure_analysis_names_why_a_receptacle_episode_failed(idle_failure, let_go_while_carrying):
    result, reason = idle_failure("place_into", SEEDS[0], 5)
    assert not result.success and reason == "never closed"
    task, reason = let_go_while_carrying("pick_from", SEEDS[0])  # the object falls back in
    assert reason == f"let go in the {task.receptacle}"


def test_a_receptacle_episodes_training_wordings_name_its_receptacle():
    """rt1-train's reword_instructions: the other wordings of a recorded episode keep its receptacle (read back from
    the instruction's words, as push's direction is)."""
    from rt1_ros.data.dataset import Episode, EpisodeInfo
    from rt1_ros.training.starting_point import task_wordings

    info = EpisodeInfo(instruction="put the red block in the bowl", task_family="place_into", seed=0, success=True,
                       source="sim_expert", fps=3.0, extra={"target": "red_cube", "condition": "seen"})
    wordings = task_wordings(Episode(info=info, path=None))
    templates = SimConfig.from_yaml().tasks.family("place_into").templates
    assert len(wordings) == 2 * len(templates)  # cube and block
    assert "put the red block in the bowl" in wordings
    assert all("bowl" in w.split() and "tray" not in w.split() for w in wordings)
