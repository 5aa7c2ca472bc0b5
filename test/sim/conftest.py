"""Fixtures of the simulator tests: one simulator and the action space per test module (a module's tests may share
its state, never another module's)."""
import pytest

from rt1_ros.configuration.action_layout import ActionSpaceConfig
from rt1_ros.sim.mobile_manipulator import MobileManipulatorSim


@pytest.fixture(scope="module")
def sim():
    simulator = MobileManipulatorSim()
    yield simulator
    simulator.close()


@pytest.fixture(scope="module")
def space():
    return ActionSpaceConfig.from_yaml()
