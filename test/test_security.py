"""Security properties of model loading and of the running node.

- No pickle: checkpoints load through safetensors, imported .pth weights through torch.load(weights_only=True). A
  malicious pickle (its __reduce__ creates a file) is refused and never executed, whether it comes as a .pth backbone
  or disguised as model.safetensors; a control load without the guard proves the payload is live.
- The running node writes no files: started with HOME, ROS_HOME, ROS_LOG_DIR, TMPDIR and XDG_CACHE_HOME in a temp
  folder and a Python audit hook reporting every file opened for writing, it leaves nothing behind except ROS's own
  log files in ROS_LOG_DIR (and torch's import-time empty cache folder in TMPDIR, see `allowed_leftovers`).
"""
from __future__ import annotations

import ast
import os
import pickle
import signal
import time
from pathlib import Path

import pytest
import torch

from rt1_ros.model.checkpoint import WEIGHTS_FILE, CheckpointError, from_pretrained
from rt1_ros.model.pretrained_backbone import BackboneWeightsError, read_state_dict
from rt1_ros.runtime.policy_loading import PolicySource, load_policy

PACKAGE = Path(__file__).resolve().parents[1] / "rt1_ros"


class CreatesAFile:
    """Unpickling this calls open(marker, "w"): the file appearing is proof the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def malicious_weights(path: Path, marker: Path, style: str) -> Path:
    payload = {"state_dict": {"stem.conv.weight": torch.zeros(1)}, "hook": CreatesAFile(marker)}
    if style == "torch zip":
        torch.save(payload, path)
    elif style == "torch legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def prove_payload_is_live(path: Path, marker: Path, style: str) -> None:
    """The control: without the guard the same bytes run their code, so a refusal above is the guard's doing."""
    assert not marker.exists()
    data = path.read_bytes()
    if style == "plain pickle":
        pickle.loads(data)
    else:
        # under its own name: torch.load hands files named *.safetensors to safetensors
        control = path.parent / "control.pth"
        control.write_bytes(data)
        torch.load(str(control), map_location="cpu", weights_only=False)
    assert marker.exists(), "the malicious test file does not work; the refusal proves nothing"


PICKLE_STYLES = ["torch zip", "torch legacy", "plain pickle"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the plain-pickle variant
@pytest.mark.parametrize("style", PICKLE_STYLES)
def test_malicious_pth_backbone_is_refused_and_never_executed(tmp_path, style):
    marker = tmp_path / "pwned"
    weights = malicious_weights(tmp_path / "efficientnet_b3.pth", marker, style)
    with pytest.raises(BackboneWeightsError, match="weights_only"):
        read_state_dict(weights)
    assert not marker.exists(), "unpickling executed code"
    # the node's own loading path, as `backbone_weights:=...` would take it
    with pytest.raises(BackboneWeightsError, match=str(weights)):
        load_policy(PolicySource(model_size="tiny", device="cpu", backbone_weights=str(weights)))
    assert not marker.exists(), "unpickling executed code"
    prove_payload_is_live(weights, marker, style)


@pytest.mark.parametrize("style", PICKLE_STYLES)
def test_pickle_disguised_as_model_safetensors_is_refused_and_never_executed(tmp_path, style):
    from ros_harness import biased_checkpoint

    checkpoint = biased_checkpoint(tmp_path / "checkpoint", mode=1, bins={})
    marker = tmp_path / "pwned"
    malicious_weights(checkpoint / WEIGHTS_FILE, marker, style)
    with pytest.raises(CheckpointError, match=f"{checkpoint / WEIGHTS_FILE}.*corrupt or truncated"):
        from_pretrained(checkpoint)
    with pytest.raises(CheckpointError):
        load_policy(PolicySource(checkpoint=str(checkpoint), device="cpu"))
    assert not marker.exists(), "unpickling executed code"
    disguised_backbone = malicious_weights(tmp_path / "backbone.safetensors", marker, style)
    with pytest.raises(Exception):  # noqa: B017 — safetensors' own error type; what matters is that nothing ran
        read_state_dict(disguised_backbone)
    assert not marker.exists(), "unpickling executed code"
    prove_payload_is_live(checkpoint / WEIGHTS_FILE, marker, style)


def unsafe_loads(source: str) -> list[str]:
    """Calls in ``source`` that can unpickle: pickle-family imports, torch.load without weights_only=True,
    numpy loads with allow_pickle=True."""
    findings = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            findings += [f"line {node.lineno}: imports {n}" for n in names
                         if n and n.split(".")[0] in {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal"}]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}
        if owner == "torch" and node.func.attr == "load":
            guard = keywords.get("weights_only")
            if not (isinstance(guard, ast.Constant) and guard.value is True):
                findings.append(f"line {node.lineno}: torch.load without weights_only=True")
        if owner in {"np", "numpy"} and node.func.attr == "load":
            allow = keywords.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                findings.append(f"line {node.lineno}: numpy load with allow_pickle")
    return findings


def test_the_scanner_catches_unsafe_loads():
    assert unsafe_loads("import pickle\nx = torch.load(p)\ny = np.load(p, allow_pickle=True)\n") == [
        "line 1: imports pickle", "line 2: torch.load without weights_only=True",
        "line 3: numpy load with allow_pickle"]
    assert unsafe_loads("x = torch.load(p, map_location='cpu', weights_only=True)\n") == []


def test_no_code_in_the_package_can_unpickle():
    findings = {str(path.relative_to(PACKAGE.parent)): unsafe_loads(path.read_text(encoding="utf-8"))
                for path in sorted(PACKAGE.rglob("*.py"))}
    assert {path: found for path, found in findings.items() if found} == {}
    assert len(findings) > 10, "scanned too few files: is PACKAGE right?"


# Everything under the node process's Python that could create, change or delete a file is reported on stderr.
AUDITED_NODE = r'''
import os, sys
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
           "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.copytree", "shutil.move", "shutil.rmtree"}
def audit(event, args):
    if event == "open":
        path, mode, flags = args
        if (mode and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS):
            sys.stderr.write(f"AUDIT-WRITE open {path!r}\n")
    elif event in CHANGES:
        sys.stderr.write(f"AUDIT-WRITE {event} {args[0]!r}\n")
sys.addaudithook(audit)
from rt1_ros.node.rt1_node import main
sys.exit(main())
'''


def allowed_leftovers(root: Path, log_dir: Path, tmp_dir: Path) -> set[Path]:
    """ROS writes its log file to ROS_LOG_DIR; `import torch._dynamo` (pulled in by the text encoder's imports) makes
    an empty `$TMPDIR/torchinductor_<user>` folder. Neither holds data of the node's."""
    allowed = {p for p in log_dir.rglob("*") if p.is_dir() or p.suffix == ".log"}
    allowed |= {p for p in tmp_dir.glob("torchinductor_*") if p.is_dir() and not any(p.iterdir())}
    return allowed


@pytest.mark.ros
def test_running_node_writes_no_files(tmp_path):
    pytest.importorskip("rclpy")
    pytest.importorskip("rt1_ros.msg", reason="messages not built: run `make setup`")
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image

    from ros_harness import MessageStream, NodeProcess, RosHarness, biased_checkpoint, make_image, wait_for

    checkpoint = biased_checkpoint(tmp_path / "checkpoint", mode=1, bins={7: 255})
    checkpoint_before = {p: p.stat().st_mtime_ns for p in checkpoint.rglob("*")}
    root = tmp_path / "sandbox"
    folders = {name: root / name for name in ("home", "cwd", "ros_log", "tmp", "cache")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    # torch exports TORCHINDUCTOR_CACHE_DIR into this (the test's) process once it has imported it: not inherited,
    # the node's torch chooses its folder from TMPDIR as it would on the robot.
    inherited = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env = dict(inherited, HOME=str(folders["home"]), ROS_HOME=str(folders["home"] / ".ros"),
               ROS_LOG_DIR=str(folders["ros_log"]), TMPDIR=str(folders["tmp"]), XDG_CACHE_HOME=str(folders["cache"]),
               PYTHONDONTWRITEBYTECODE="1")
    ros = RosHarness()
    node = None
    try:
        ros.new_namespace()
        node = NodeProcess(ros.namespace, dict(checkpoint=str(checkpoint), device="cpu", start_enabled=True,
                                               control_rate_hz=10.0), env=env, cwd=folders["cwd"],
                           python_prefix=["-c", AUDITED_NODE])
        twists = ros.collect(Twist, "cmd_vel")
        camera = MessageStream(ros, Image, "image", lambda i: make_image(stamp_ns=i + 1, seed=i))
        ros.send_instruction("move near the red cube")
        assert wait_for(lambda: len([t for t in twists if t.linear.x > 0.4]) >= 10 or node.process.poll() is not None,
                        timeout=90)
        assert node.process.poll() is None, node.output()[-2000:]
        time.sleep(0.5)
        node.process.send_signal(signal.SIGINT)
        assert node.wait(timeout=30) == 0
        camera.stop()
        output = node.output()
    finally:
        ros.close()
        if node is not None:
            node.stop()

    written = [line for line in output.splitlines() if line.startswith("AUDIT-WRITE")]
    # The standard library's check that TMPDIR is writable creates and removes one file: tolerated, it is in TMPDIR.
    outside = [line for line in written if str(folders["ros_log"]) not in line and str(folders["tmp"]) not in line]
    assert outside == [], "the node's Python wrote outside the log and temp folders"
    leftovers = set(root.rglob("*")) - set(folders.values())
    assert leftovers - allowed_leftovers(root, folders["ros_log"], folders["tmp"]) == set()
    assert any(p.suffix == ".log" for p in leftovers), "no ROS log file at all: was ROS_LOG_DIR honoured?"
    assert {p: p.stat().st_mtime_ns for p in checkpoint.rglob("*")} == checkpoint_before, "checkpoint modified"
    left = sorted(str(p.relative_to(root)) for p in leftovers)
    print(f"\nwrites seen by the audit hook: {written}\nleft behind: {left}")
