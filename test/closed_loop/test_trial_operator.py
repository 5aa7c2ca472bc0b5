"""The operator's input to an rt1-trial run (`rt1_ros.closed_loop.trial_operator`): events by phase."""
from __future__ import annotations

from rt1_ros.closed_loop.trial_operator import OperatorEvent, OperatorInputs


def test_operator_input_counts_only_for_the_phase_it_was_given_in():
    inputs = OperatorInputs()
    scene = inputs.enter("scene")
    assert inputs.offer(OperatorEvent("success")) == (False, "the trial is in phase 'scene', which does not take "
                                                             "'success'")
    assert inputs.offer(OperatorEvent("scene_ready"))[0]
    assert inputs.wait(scene).kind == "scene_ready"
    running = inputs.enter("running")
    inputs.enter("verdict")
    # A terminate or timeout of an episode that is over never reaches the next phase.
    assert inputs.offer(OperatorEvent("terminate"), token=running) == (False, "that phase is over")
    assert not inputs.offer(OperatorEvent("stop"))[0]

