"""Every inference fast path keeps the reference's tokens, on the shipped trained model and camera frames.

No timing is asserted anywhere: this machine's CPU is shared, so only structure and correctness are checked.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from rt1_ros.bench.control_steps import TokenCheck
from rt1_ros.bench.fixtures import camera_frames, untrained_model
from rt1_ros.model.action_tokenizer import MODE_DIM
from rt1_ros.model.rt1 import RT1, images_to_tensor
from rt1_ros.policy import RT1Policy, RT1PolicyConfig
from rt1_ros.inference.frame_history import pad_window_indices, window_indices
from rt1_ros.inference.model_preparation import fold_batch_norms
from rt1_ros.inference.options import REFERENCE, InferenceOptions
from rt1_ros.inference.parity import input_dependence, reference_and_candidate_tokens, tokens_agree
from rt1_ros.inference.paths import build_path, TorchPath


@pytest.fixture
def tiny_with_statistics() -> RT1:
    """Tiny RT-1 whose BatchNorm statistics and FiLM are not at their identity initialisation."""
    return untrained_model("tiny", seed=3)


def test_batch_norm_folding_removes_every_batch_norm_and_keeps_outputs(tiny_with_statistics):
    model = tiny_with_statistics
    folded = copy.deepcopy(model)
    expected_pairs = 1 + sum(3 if block.has_expansion else 2 for block in model.image_encoder.blocks)
    assert fold_batch_norms(folded) == expected_pairs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images, text = torch.rand(2, 6, 3, 96, 96), torch.randn(2, 384)
    with torch.no_grad():
        torch.testing.assert_close(folded(images, text), model(images, text), rtol=1e-4, atol=1e-4)


def test_batch_norm_folding_refuses_train_mode(tiny_with_statistics):
    with pytest.raises(RuntimeError, match="eval"):
        fold_batch_norms(tiny_with_statistics.train())


@pytest.mark.parametrize("options", [InferenceOptions(backend="torch"),
                                     InferenceOptions(backend="torch", channels_last=False),
                                     InferenceOptions(backend="torch", fold_batch_norm=False)],
                         ids=lambda o: o.describe(torch.device("cpu")).replace(", ", "+"))
def test_cpu_fast_paths_give_the_reference_tokens(trained_model, options):
    model = trained_model
    path = build_path(model, options, torch.device("cpu"))
    frames = images_to_tensor(camera_frames(8, model.config.image_size, seed=5))
    conditioning = model.embed_instruction(torch.randn(1, 384)).detach()
    reference, candidate, worst = reference_and_candidate_tokens(model, path, frames, conditioning)
    # Not vacuous: the model's logits move with the frame far more than the two paths differ.
    assert input_dependence(model, frames, conditioning) > max(1e-2, 100 * worst)
    assert torch.equal(reference, candidate)
    assert tokens_agree(reference, candidate) == 1.0
    assert worst < 1e-3


class ScriptedLogits(nn.Module):
    """Stands in for RT-1 in the token check: each frame's tokens are its index, the logits the same every step.

    It records the windows it is given (as frame indices), so the padding can be compared with the policy's."""

    def __init__(self, logits: torch.Tensor, num_frames: int = 3, pads_short_windows: bool = True) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # the check reads device and dtype off the parameters
        self.config = SimpleNamespace(num_frames=num_frames, pads_short_windows=pads_short_windows)
        self.scripted = logits  # (1,11,bins), every step
        self.windows: list[list[int]] = []

    def encode_frame(self, frame: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        return frame[:, :1, :1, :1].reshape(1, 1, 1)  # (1,K=1,D=1): the frame's index, set by the caller

    def logits_from_frame_tokens(self, window: torch.Tensor) -> torch.Tensor:
        self.windows.append(window.flatten().int().tolist())
        return self.scripted.clone()


def test_token_check_decodes_the_mode_over_its_valid_classes_only():
    """A mode row whose largest logit is at bin 200 (no class) but which prefers class 1 of the 3 valid ones: the
    check must report class 1, as the policy would act on it (an argmax over all bins said 200)."""
    logits = torch.zeros(1, 11, 256)
    logits[0, :MODE_DIM, 17] = 1.0
    logits[0, MODE_DIM, 200] = 100.0
    logits[0, MODE_DIM, 1] = 1.0
    model = ScriptedLogits(logits)
    frames = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 3, 2, 2)
    reference, candidate, worst = reference_and_candidate_tokens(model, TorchPath(model, REFERENCE), frames,
                                                                 torch.zeros(1, 1))
    assert reference[:, MODE_DIM].tolist() == [1, 1, 1, 1]
    assert torch.equal(reference, candidate) and worst == 0.0
    assert reference[:, :MODE_DIM].unique().tolist() == [17]


def test_a_model_that_ignores_its_input_makes_the_token_check_vacuous():
    """Fixed logits agree with themselves whatever the code does: the check must say so, not pass silently."""
    model = ScriptedLogits(torch.randn(1, 11, 256))
    frames = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 3, 2, 2)
    assert input_dependence(model, frames, torch.zeros(1, 1)) == 0.0
    check = TokenCheck(options="eager", frames=4, token_agreement=1.0, identical=True, max_abs_logit_difference=0.0,
                       input_dependence=0.0)
    assert check.vacuous and check.as_dict()["vacuous"] is True
    assert not TokenCheck(options="eager", frames=4, token_agreement=1.0, identical=True,
                          max_abs_logit_difference=1e-6, input_dependence=0.5).vacuous


@pytest.mark.parametrize("pads", [True, False])
def test_token_check_makes_windows_as_the_policy_does(pads):
    """Padded with the first frame for the project's sizes; the frames so far for the released layout."""
    model = ScriptedLogits(torch.zeros(1, 11, 256), num_frames=3, pads_short_windows=pads)
    frames = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 3, 2, 2)
    reference_and_candidate_tokens(model, TorchPath(model, REFERENCE), frames, torch.zeros(1, 1))
    expected = [pad_window_indices(step, 3) if pads else list(range(max(0, step - 2), step + 1))
                for step in range(5)]
    assert model.windows[0::2] == expected  # the reference's windows; the candidate's interleave with them
    assert model.windows[1::2] == expected
    assert [window_indices(step, 3, pads) for step in range(5)] == expected  # the full-recompute bench's windows


def test_prepared_model_leaves_the_callers_model_untouched(tiny_with_statistics):
    before = {k: v.clone() for k, v in tiny_with_statistics.state_dict().items()}
    build_path(tiny_with_statistics, InferenceOptions(), torch.device("cpu"))
    after = tiny_with_statistics.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_optimised_policy_steps_match_the_full_window_recompute_of_the_original_model(trained_model, action_space,
                                                                                      tokenizer):
    model = trained_model
    embedding = torch.randn(384)
    policy = RT1Policy(RT1PolicyConfig(model=model.config, action_space=action_space), lambda text: embedding,
                       model=model)
    policy.prepare_inference("cpu", InferenceOptions())
    assert policy.inference_path.model is not model
    policy.set_instruction("go")
    frames = camera_frames(9, model.config.image_size, seed=2)
    # Not vacuous: this model's output depends on the frame.
    assert input_dependence(model, images_to_tensor(frames), model.embed_instruction(embedding[None]).detach()) > 1e-2
    for step in range(len(frames)):
        tokens = policy.select_action(frames[step]).tokens
        window = images_to_tensor(frames[pad_window_indices(step, 6)]).unsqueeze(0)
        with torch.no_grad():
            expected = tokenizer.tokens_from_logits(model(window, embedding[None]))[0].numpy()
        np.testing.assert_array_equal(tokens, expected)


def test_options_are_validated_and_reduced_precision_is_cuda_only():
    with pytest.raises(ValueError, match="cuda_dtype"):
        InferenceOptions(cuda_dtype="int8")
    with pytest.raises(ValueError, match="cuda_executor"):
        InferenceOptions(cuda_executor="tensorrt")
    with pytest.raises(ValueError, match="num_threads"):
        InferenceOptions(num_threads=-1)
    assert InferenceOptions(cuda_dtype="bfloat16").dtype_on(torch.device("cpu")) == torch.float32
    assert REFERENCE.describe(torch.device("cpu")) == "eager reference"


def test_cuda_executors_fall_back_to_eager_on_cpu(tiny_with_statistics):
    path = build_path(tiny_with_statistics, InferenceOptions(cuda_executor="cuda_graph", backend="torch"),
                      torch.device("cpu"))
    assert type(path).__name__ == "TorchPath"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("executor", ["eager", "cuda_graph"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_cuda_paths_agree_with_fp32_on_99_percent_of_dimensions(trained_model, executor, dtype):
    model = trained_model
    path = build_path(model, InferenceOptions(cuda_executor=executor, cuda_dtype=dtype), torch.device("cuda"))
    frames = images_to_tensor(camera_frames(8, model.config.image_size, seed=5))
    conditioning = model.embed_instruction(torch.randn(1, 384)).detach()
    assert input_dependence(model, frames, conditioning) > 1e-2
    reference, candidate, _ = reference_and_candidate_tokens(model, path, frames, conditioning)
    assert tokens_agree(reference, candidate) >= (1.0 if dtype == "float32" else 0.99)
