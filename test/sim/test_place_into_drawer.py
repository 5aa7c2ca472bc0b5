"""place_into_drawer: its success check on hand-made states, its layouts, its failure reasons and its wordings (the
expert's runs are test_expert.py's; the drawer walls' physics is test_drawers.py's)."""
import dataclasses

import pytest

from rt1_ros.sim.cabinet import drawer_interior, handle_body
from rt1_ros.sim.config import SimConfig
from rt1_ros.sim.tasks import check_success

FAMILY = "place_into_drawer"
SEEDS = (100, 101, 102)  # dev seeds


def test_success_needs_the_object_inside_the_open_drawer_and_let_go(sim, cabinet_point):
    config = sim.config
    task = sim.reset(FAMILY, SEEDS[0])
    state = sim.scene_state()
    assert not check_success(config, task, state)  # as reset: the object stands on the table
    index = config.cabinet.drawers.index(task.drawer)
    inside = drawer_interior(config.cabinet, index)
    travel = state.drawer_travel
    half = config.objects.cube_half_size
    # Resting on the drawer's bottom in the part in front of the carcass, and deep inside under the carcass.
    for x in ((travel - config.cabinet.front_thickness) / 2, inside.x[0] + travel + 0.03):
        resting = cabinet_point((x, 0.0, inside.z[0] + half))
        good = dataclasses.replace(state, object_position=resting, grasped=False, gripper_open=True)
        assert check_success(config, task, good)
        assert not check_success(config, task, dataclasses.replace(good, grasped=True))
        assert not check_success(config, task, dataclasses.replace(good, gripper_open=False))
    front = (travel - config.cabinet.front_thickness) / 2
    outside = {
        "beside the drawer": (front, inside.half_width + 0.01, inside.z[0] + half),
        "above the walls": (front, 0.0, inside.z[1] + 0.01),
        "in front of the drawer": (travel + 0.03, 0.0, inside.z[0] + half),
    }
    for where, local in outside.items():
        moved = dataclasses.replace(state, object_position=cabinet_point(local), grasped=False,
                                    gripper_open=True)
        assert not check_success(config, task, moved), where
    # The same point with the drawer shut is in front of the cabinet, not in the drawer.
    resting = cabinet_point((front, 0.0, inside.z[0] + half))
    shut = dataclasses.replace(state, object_position=resting, grasped=False, gripper_open=True, drawer_travel=0.0)
    assert not check_success(config, task, shut)


def test_a_reset_opens_the_named_drawer_with_the_target_beside_the_cabinet_in_view(sim):
    config = sim.config
    cabinet = config.cabinet
    for seed in range(6):
        task = sim.reset(FAMILY, seed)
        assert task.drawer in config.tasks.place_drawers and f"{task.drawer} drawer" in task.instruction
        assert task.target.colour in task.instruction and task.target.shape != "drawer_handle"
        index = cabinet.drawers.index(task.drawer)
        low, high = (f * cabinet.travel for f in config.tasks.place_drawer_open)
        travels = [sim.drawer_travel(d) for d in cabinet.drawers]
        assert low - 1e-3 <= travels[index] <= high + 1e-3
        assert all(abs(t) < 1e-4 for i, t in enumerate(travels) if i != index)
        assert sim.target_visible(task.target_name) and sim.in_view(handle_body(task.drawer))
        # Every object clear of the cabinet's sides, the target on the far side of the arm's mount from it.
        for placement in task.placements:
            assert abs(placement.y - task.cabinet.y) > cabinet.width / 2
        target = sim.object_position(task.target_name)
        assert target[1] < task.cabinet.y - cabinet.width / 2
        assert target[2] == pytest.approx(config.table.height + config.objects.cube_half_size, abs=0.01)


def test_failure_analysis_names_why_an_episode_failed(idle_failure, let_go_while_carrying):
    result, reason = idle_failure(FAMILY, SEEDS[1], 4)
    assert not result.success and reason == "never closed"
    task, reason = let_go_while_carrying(FAMILY, SEEDS[1])  # over the table: it falls beside the cabinet
    assert reason == f"let go outside the {task.drawer} drawer"


def test_unseen_wordings_are_never_training_wordings(sim):
    from rt1_ros.sim.tasks import training_wordings

    for seed in range(4):
        task = sim.reset(FAMILY, seed, "unseen_wordings")
        trained = training_wordings(sim.config, FAMILY, task.target.colour, task.target.shape, None,
                                    drawer=task.drawer)
        assert task.instruction not in trained and f"{task.drawer} drawer" in task.instruction
        seen = sim.reset(FAMILY, seed, "seen")
        assert seen.instruction in training_wordings(sim.config, FAMILY, seen.target.colour, seen.target.shape, None,
                                                     drawer=seen.drawer)


def test_an_episodes_training_wordings_name_its_drawer():
    """rt1-train's reword_instructions: the other wordings of a recorded episode keep its drawer (recorded in the
    episode's extra); without it the episode keeps its own words."""
    from rt1_ros.data.dataset import Episode, EpisodeInfo
    from rt1_ros.training.starting_point import task_wordings

    extra = {"target": "red_cube", "condition": "seen", "drawer": "top"}
    info = EpisodeInfo(instruction="put the red block in the top drawer", task_family=FAMILY, seed=0, success=True,
                       source="sim_expert", fps=3.0, extra=extra)
    wordings = task_wordings(Episode(info=info, path=None))
    templates = SimConfig.from_yaml().tasks.family(FAMILY).templates
    assert len(wordings) == 2 * len(templates)  # cube and block
    assert "put the red block in the top drawer" in wordings
    assert all("top drawer" in w for w in wordings)
    unrecorded = dataclasses.replace(info, extra={"target": "red_cube", "condition": "seen"})
    assert task_wordings(Episode(info=unrecorded, path=None)) == ()
