"""rt1_ros.configuration.action_layout: one torch-free description of the 11-d action, and the modules that must
stay torch-free."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rt1_ros.configuration.action_layout import (ARM_DELTA_DIMS, ARM_DIMS, BASE_DIMS, CONTINUOUS_DIMS, DIMENSION_NAMES,
                                                 GRIPPER_DIM, MODE_CLASSES, MODE_DIM, NUM_ACTION_DIMS,
                                                 ActionSpaceConfig, Mode)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Importing these must not load torch: the simulator, its node and the data tools run where torch is absent or slow
# to import (a sim_node process beside the policy node, data generation workers).
TORCH_FREE = [
    "rt1_ros.configuration.action_layout",
    "rt1_ros.sim.experts",
    "rt1_ros.sim.episode",
    "rt1_ros.data.dataset",
    "rt1_ros.training.demonstrations",
    "rt1_ros.data.rosbag_import",
    "rt1_ros.data.rosbag_ordinary",
    "rt1_ros.data.bag_segments",
    "rt1_ros.data.ordinary_streams",
    "rt1_ros.data.ordinary_actions",
    "rt1_ros.sim.robot_frames",
    "rt1_ros.training.ordinary_bags",
    "rt1_ros.training.ordinary_bag_comparison",
    "rt1_ros.closed_loop.episode_report",
    pytest.param("rt1_ros.node.sim_node", marks=pytest.mark.ros),
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_no_torch(module):
    if module == "rt1_ros.node.sim_node":
        pytest.importorskip("rclpy")
        pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    code = f"import sys, {module}; loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'); " \
           "assert not loaded, loaded[:5]"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"importing {module} loads torch:\n{result.stderr[-2000:]}"


def test_the_slices_partition_the_action():
    indices = list(range(NUM_ACTION_DIMS))
    assert indices[ARM_DIMS] + indices[BASE_DIMS] + [MODE_DIM] == indices
    assert indices[ARM_DELTA_DIMS] + [GRIPPER_DIM] == indices[ARM_DIMS]
    assert MODE_DIM == CONTINUOUS_DIMS == NUM_ACTION_DIMS - 1
    assert len(DIMENSION_NAMES) == NUM_ACTION_DIMS and DIMENSION_NAMES[MODE_DIM] == "mode"
    assert DIMENSION_NAMES[GRIPPER_DIM] == "gripper"


def test_modes_are_the_mode_classes_in_order_and_hold():
    assert [MODE_CLASSES[m] for m in (Mode.ARM, Mode.BASE, Mode.TERMINATE)] == ["arm", "base", "terminate"]
    assert Mode.HOLD == 255  # RT1Action.MODE_HOLD; test_interfaces checks the message side


def test_the_shipped_action_space_follows_the_layout():
    space = ActionSpaceConfig.from_yaml()
    assert space.names == DIMENSION_NAMES
    assert space.mode_classes == MODE_CLASSES


def test_the_tokenizer_module_still_exports_the_layout():
    from rt1_ros.model import action_tokenizer

    assert action_tokenizer.ActionSpaceConfig is ActionSpaceConfig
    assert (action_tokenizer.ARM_DIMS, action_tokenizer.BASE_DIMS, action_tokenizer.MODE_DIM) == \
        (ARM_DIMS, BASE_DIMS, MODE_DIM)


def test_a_reordered_mode_list_is_refused():
    # The node publishes the mode's class index as RT1Action.mode (Mode.ARM = 0 ...): another order would make every
    # consumer misread the mode, so it is an error, not a preference.
    space = ActionSpaceConfig.from_yaml()
    with pytest.raises(ValueError, match="arm, base, terminate"):
        ActionSpaceConfig(dimensions=space.dimensions, num_bins=space.num_bins,
                          mode_classes=("base", "arm", "terminate"))


def test_demonstrations_map_into_the_models_units_as_the_node_maps_out():
    """Training undoes the robot mapping the node applies (scale × value + offset), so a converted release's
    gripper (-1..1 closedness, mapped onto the robot's 0..1) trains on demonstrations recorded in 0..1."""
    import numpy as np

    from rt1_ros.convert.official_checkpoint import official_action_space

    space = official_action_space()
    robot = np.zeros((2, 11))
    robot[:, 6] = [0.0, 1.0]  # open, closed as the robot records them
    robot[:, 10] = [0, 2]
    model_units = space.actions_from_robot(robot)
    np.testing.assert_array_equal(model_units[:, 6], [-1.0, 1.0])
    np.testing.assert_array_equal(model_units[:, 10], [0, 2])  # the mode is a class, never mapped
    np.testing.assert_allclose(space.onto_robot(model_units[:, :10]), robot[:, :10])
