"""The RT-1 policy object (LeRobot's PreTrainedPolicy shape): configuration, loss, modeling.

    configuration  RT1PolicyConfig (network, action space, loss shaping)
    loss           the per-dimension action cross-entropy, Gaussian bin targets
    modeling       RT1Policy: from_pretrained / save_pretrained, forward -> loss, select_action, reset
"""
from rt1_ros.policy.configuration import RT1PolicyConfig
from rt1_ros.policy.loss import LossConfig
from rt1_ros.policy.modeling import RT1Policy, resolve_device

__all__ = ["LossConfig", "RT1Policy", "RT1PolicyConfig", "resolve_device"]
