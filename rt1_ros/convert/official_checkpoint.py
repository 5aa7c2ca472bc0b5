"""Google's released RT-1 (a TF-Agents policy's actor network) -> an rt1_ros checkpoint of the `official` model.

    ckpt-N.index + .data  or  SavedModel/variables/variables.index        (rt1_ros.convert.tensor_bundle)
      ─ network-relative names (`_image_tokenizer/...`, `_transformer/...`)
      ─ one rule per variable kind: HWIO conv -> OIHW, depthwise [k,k,C,1] -> [C,1,k,k], Dense [in,out] -> [out,in],
        FiLM's two Denses -> one Linear (mult rows first), Keras MHA [D,H,d] q/k/v -> one qkv Linear,
        position Dense(one_hot) -> kernel + bias
      ─ model.safetensors + config.yaml (rt1_ros.model.checkpoint)

Every variable of the network is either mapped or on a short list of ones the released network never reads
(`_action_token_emb`: its output is zeroed before use). Optimizer slots, integer scalars (step counters, the
Normalization layer's `count`) and the object graph are skipped. Anything else, and any model tensor nothing was
mapped to, is an error naming each with its shape.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from rt1_ros.configuration.action_layout import NUM_ACTION_DIMS, ActionDimension, ActionSpaceConfig
from rt1_ros.convert.tensor_bundle import OBJECT_GRAPH_KEY, list_variables, object_graph_names, read_variables
from rt1_ros.model.checkpoint import save_pretrained
from rt1_ros.model.film_efficientnet import FiLMEfficientNet
from rt1_ros.model.rt1 import RT1, RT1Config

# Where a variable's network-relative name starts: the actor network's three top-level children.
NETWORK_CHILDREN = ("_image_tokenizer", "_transformer", "_action_token_emb")
# Read by the released network's graph but multiplied away: tf.zeros_like(action_token_emb(one_hot(actions))).
UNUSED = ("_action_token_emb/kernel", "_action_token_emb/bias")
EFFICIENTNET = "_image_tokenizer/_tokenizer/net/"
VARIABLE_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

# The released rt1main's action space (policy_specs.pbtxt) in rt1_ros.configuration.action_layout's order;
# `readout_order` of the official model config puts the released tokens into this order.
OFFICIAL_ACTION_DIMENSIONS = (
    ("arm_x", -1.0, 1.0), ("arm_y", -1.0, 1.0), ("arm_z", -1.0, 1.0),  # world_vector
    ("arm_roll", -np.pi / 2, np.pi / 2), ("arm_pitch", -np.pi / 2, np.pi / 2),  # rotation_delta
    ("arm_yaw", -np.pi / 2, np.pi / 2),
    ("gripper", -1.0, 1.0),  # gripper_closedness_action
    ("base_x", -1.0, 1.0), ("base_y", -1.0, 1.0),  # base_displacement_vector
    ("base_yaw", -np.pi, np.pi),  # base_displacement_vertical_rotation
)
OFFICIAL_ACTION_NAMES = ("world_vector[0]", "world_vector[1]", "world_vector[2]", "rotation_delta[0]",
                         "rotation_delta[1]", "rotation_delta[2]", "gripper_closedness_action[0]",
                         "base_displacement_vector[0]", "base_displacement_vector[1]",
                         "base_displacement_vertical_rotation[0]", "terminate_episode")


class ConversionError(ValueError):
    """A checkpoint that does not map onto the model: the message names each variable and tensor at fault."""


@dataclass
class Conversion:
    state: dict[str, torch.Tensor]
    mapped: dict[str, str] = field(default_factory=dict)  # checkpoint name -> model tensor(s)
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint name -> why
    step: int | None = None


# The one mapping onto the node's outputs that holds on every robot: gripper_closedness_action runs from -1 (open)
# to +1 (close), the node's gripper from 0 (open) to 1 (closed). Every other dimension keeps Google's robot's units
# (scale 1) until a robot is calibrated (docs/released_weights.md "Calibrating a robot").
OFFICIAL_ROBOT_MAPPING = {"gripper": (0.5, 0.5)}


def official_action_space(num_bins: int = 256) -> ActionSpaceConfig:
    return ActionSpaceConfig(dimensions=tuple(ActionDimension(n, lo, hi, *OFFICIAL_ROBOT_MAPPING.get(n, (1.0, 0.0)))
                                              for n, lo, hi in OFFICIAL_ACTION_DIMENSIONS),
                             num_bins=num_bins, rounding="truncate")


def bundle_prefix(source: str | Path) -> tuple[Path, str]:
    """A checkpoint prefix (``.../ckpt-N`` or its ``.index``), or a SavedModel directory -> (prefix, format)."""
    source = Path(source)
    if source.is_dir():
        if (source / "variables" / "variables.index").is_file():
            return source / "variables" / "variables", "saved_model"
        indices = sorted(source.glob("ckpt-*.index"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if indices:
            return indices[-1].with_suffix(""), "checkpoint"
        raise ConversionError(f"{source}: neither a SavedModel (variables/variables.index) nor a directory with a "
                              "ckpt-N.index")
    if source.suffix == ".index":
        source = source.with_suffix("")
    if not Path(str(source) + ".index").is_file():
        raise ConversionError(f"checkpoint not found: {source}.index")
    return source, "checkpoint"


def network_name(path: str) -> str | None:
    """A variable's path from the actor network (``_transformer/_layers/0/ff/kernel``), or None outside it."""
    path = path.removesuffix(VARIABLE_VALUE_SUFFIX)
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part in NETWORK_CHILDREN:
            return "/".join(parts[i:])
    return None


def _skip_reason(path: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
    if path == OBJECT_GRAPH_KEY or path.endswith(OBJECT_GRAPH_KEY):
        return "object graph"
    if ".OPTIMIZER_SLOT" in path or "_optimizer" in path:
        return "optimizer state"
    if shape == () and np.issubdtype(dtype, np.integer):
        return "counter"
    return None


def _conv(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)  # [kh,kw,in,out] -> [out,in,kh,kw]


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(2, 3, 0, 1)  # [kh,kw,C,1] -> [C,1,kh,kw]


def _dense(kernel: np.ndarray) -> np.ndarray:
    return kernel.T  # [in,out] -> [out,in]


class _Mapper:
    """Checkpoint variables (network-relative names) -> the model's state dict, recording what went where."""

    def __init__(self, variables: dict[str, np.ndarray], model: RT1) -> None:
        self.variables = variables
        self.expected = {k: v for k, v in model.state_dict().items()}
        self.state: dict[str, torch.Tensor] = {}
        self.used: dict[str, str] = {}
        self.problems: list[str] = []

    def take(self, name: str) -> np.ndarray | None:
        if name not in self.variables:
            return None
        return self.variables[name]

    def put(self, target: str, value: np.ndarray, sources: tuple[str, ...]) -> None:
        if target not in self.expected:
            self.problems.append(f"{', '.join(sources)} {tuple(value.shape)} maps to {target}, which the model "
                                 "does not have")
            return
        want = tuple(self.expected[target].shape)
        if tuple(value.shape) != want:
            shapes = ", ".join(f"{s} {tuple(self.variables[s].shape)}" for s in sources)
            self.problems.append(f"{shapes} -> {target}: model needs {want}, checkpoint gives {tuple(value.shape)}")
            return
        self.state[target] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        for source in sources:
            self.used[source] = target

    def one(self, target: str, source: str, transform=lambda a: a) -> None:
        value = self.take(source)
        if value is not None:
            self.put(target, transform(value), (source,))

    def dense(self, target: str, source: str) -> None:
        self.one(f"{target}.weight", f"{source}/kernel", _dense)
        self.one(f"{target}.bias", f"{source}/bias")

    def norm(self, target: str, source: str) -> None:
        self.one(f"{target}.weight", f"{source}/gamma")
        self.one(f"{target}.bias", f"{source}/beta")

    def batch_norm(self, target: str, source: str) -> None:
        self.norm(target, source)
        self.one(f"{target}.running_mean", f"{source}/moving_mean")
        self.one(f"{target}.running_var", f"{source}/moving_variance")
        if f"{target}.num_batches_tracked" in self.expected:
            self.state[f"{target}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)

    def film(self, target: str, source: str) -> None:
        """Keras FilmConditioning's _projection_mult / _projection_add -> FiLM.projection (gamma rows first)."""
        names = [f"{source}/_projection_{part}/{kind}" for part in ("mult", "add") for kind in ("kernel", "bias")]
        values = [self.take(n) for n in names]
        if any(v is None for v in values):
            return
        mult_kernel, mult_bias, add_kernel, add_bias = values
        self.put(f"{target}.projection.weight", np.concatenate([mult_kernel.T, add_kernel.T]),
                 (names[0], names[2]))
        self.put(f"{target}.projection.bias", np.concatenate([mult_bias, add_bias]), (names[1], names[3]))

    def attention(self, target: str, source: str) -> None:
        """Keras MultiHeadAttention: q/k/v kernels [D,H,d] and biases [H,d] -> one qkv Linear (3·H·d, D); output
        kernel [H,d,D] -> Linear (D, H·d)."""
        parts = ("_query_dense", "_key_dense", "_value_dense")
        kernels = [self.take(f"{source}/{p}/kernel") for p in parts]
        biases = [self.take(f"{source}/{p}/bias") for p in parts]
        if all(k is not None for k in kernels):
            weight = np.concatenate([k.reshape(k.shape[0], -1).T for k in kernels])  # (3·H·d, D)
            self.put(f"{target}.qkv.weight", weight, tuple(f"{source}/{p}/kernel" for p in parts))
        if all(b is not None for b in biases):
            self.put(f"{target}.qkv.bias", np.concatenate([b.reshape(-1) for b in biases]),
                     tuple(f"{source}/{p}/bias" for p in parts))
        out = self.take(f"{source}/_output_dense/kernel")
        if out is not None:
            self.put(f"{target}.out.weight", out.reshape(-1, out.shape[-1]).T, (f"{source}/_output_dense/kernel",))
        self.one(f"{target}.out.bias", f"{source}/_output_dense/bias")


def efficientnet_layers(encoder: FiLMEfficientNet) -> list[tuple[str, str]]:
    """(kind, model prefix) for each Keras layer with weights, in Keras' order (`layer_with_weights-N`): the
    Normalization layer, stem conv and BN, per block [expand conv, BN,] depthwise conv, BN, SE reduce, SE expand,
    project conv, BN, FiLM, then the top conv and BN."""
    layers = [("normalization", "image_encoder"), ("conv", "image_encoder.stem.conv"),
              ("batch_norm", "image_encoder.stem.bn")]
    for i, block in enumerate(encoder.blocks):
        prefix = f"image_encoder.blocks.{i}"
        if block.has_expansion:
            layers += [("conv", f"{prefix}.expand_conv"), ("batch_norm", f"{prefix}.expand_bn")]
        layers += [("depthwise", f"{prefix}.depthwise_conv"), ("batch_norm", f"{prefix}.depthwise_bn"),
                   ("conv_bias", f"{prefix}.se.reduce"), ("conv_bias", f"{prefix}.se.expand"),
                   ("conv", f"{prefix}.project_conv"), ("batch_norm", f"{prefix}.project_bn"),
                   ("film", f"image_encoder.films.{i}")]
    if encoder.top is not None:
        layers += [("conv", "image_encoder.top.conv"), ("batch_norm", "image_encoder.top.bn")]
    return layers


def map_variables(variables: dict[str, np.ndarray], model: RT1) -> _Mapper:
    """Network-relative checkpoint variables -> the model's tensors (see module doc)."""
    mapper = _Mapper(variables, model)
    for index, (kind, target) in enumerate(efficientnet_layers(model.image_encoder)):
        source = f"{EFFICIENTNET}layer_with_weights-{index}"
        if kind == "normalization":
            mapper.one(f"{target}.input_mean", f"{source}/mean", lambda a: a.reshape(-1))
            mapper.one(f"{target}.input_variance", f"{source}/variance", lambda a: a.reshape(-1))
        elif kind == "conv":
            mapper.one(f"{target}.weight", f"{source}/kernel", _conv)
        elif kind == "conv_bias":
            mapper.one(f"{target}.weight", f"{source}/kernel", _conv)
            mapper.one(f"{target}.bias", f"{source}/bias")
        elif kind == "depthwise":
            mapper.one(f"{target}.weight", f"{source}/depthwise_kernel", _depthwise)
        elif kind == "batch_norm":
            mapper.batch_norm(target, source)
        else:
            mapper.film(target, source)
    tokenizer = "_image_tokenizer/_tokenizer"
    mapper.one("image_encoder.token_projection.weight", f"{tokenizer}/conv1x1/kernel", _conv)
    mapper.film("image_encoder.token_film", f"{tokenizer}/film_layer")
    learner = "_image_tokenizer/_token_learner"
    mapper.norm("token_learner.norm", f"{learner}/layernorm")
    mapper.dense("token_learner.mlp.0", f"{learner}/mlp/_hidden_layer")
    mapper.dense("token_learner.mlp.2", f"{learner}/mlp/_output_layer")
    mapper.dense("transformer.token_embedding", "_transformer/_token_emb")
    # Dense(one_hot(position)) is row `position` of the kernel plus the bias: the sum is exact in float32.
    kernel, bias = mapper.take("_transformer/_position_emb/kernel"), mapper.take("_transformer/_position_emb/bias")
    if kernel is not None and bias is not None:
        mapper.put("transformer.position_embedding", kernel + bias,
                   ("_transformer/_position_emb/kernel", "_transformer/_position_emb/bias"))
    for i in range(len(model.transformer.layers)):
        source, target = f"_transformer/_layers/{i}", f"transformer.layers.{i}"
        mapper.norm(f"{target}.attention_norm", f"{source}/layernorm1")
        mapper.attention(f"{target}.attention", f"{source}/mha1")
        mapper.norm(f"{target}.ffn_norm", f"{source}/layernorm2")
        mapper.dense(f"{target}.ffn", f"{source}/ff")
    mapper.dense("action_head.heads.0", "_transformer/_output_tokens")
    for name in UNUSED:
        if name in variables:
            mapper.used.setdefault(name, "(not read by the released network)")
    return mapper


def with_transformer_of(config: RT1Config, variables: dict[str, np.ndarray]) -> RT1Config:
    """``config`` with the transformer the checkpoint holds: layers, width, heads, head width, bins and frames read
    from the variables' shapes (rt1main: 8 × 512, 8 heads of 128; rt1multirobot: 10 × 1024, 8 heads of 256). The
    image encoder stays the config's: a mismatch there is reported variable by variable."""
    query = variables.get("_transformer/_layers/0/mha1/_query_dense/kernel")
    positions = variables.get("_transformer/_position_emb/kernel")
    output = variables.get("_transformer/_output_tokens/kernel")
    if query is None or positions is None or output is None:
        return config
    width, heads, head_dim = query.shape
    layers = len({name.split("/")[2] for name in variables if name.startswith("_transformer/_layers/")})
    per_frame = config.tokens_per_frame + NUM_ACTION_DIMS
    transformer = replace(config.transformer, num_layers=layers, num_heads=heads, head_dim=head_dim,
                          ffn_dim=width, width=0 if width == config.embed_dim else width)
    frames = positions.shape[0] // per_frame if positions.shape[0] % per_frame == 0 else config.num_frames
    return replace(config, transformer=transformer, num_bins=output.shape[1], num_frames=frames)


def convert(source: str | Path, config: RT1Config | None = None) -> tuple[RT1, Conversion]:
    """A released checkpoint -> (the model with its weights, what was mapped and skipped). ConversionError names
    every unmapped checkpoint variable and every model tensor left without a value, with shapes."""
    prefix, _ = bundle_prefix(source)
    config = config or RT1Config.from_yaml("official")
    listing = list_variables(prefix)  # GitLfsPointerError (a TensorBundleError) for an LFS pointer
    graph_names = object_graph_names(prefix)
    wanted: dict[str, str] = {}  # network-relative name -> checkpoint key
    skipped: dict[str, str] = {}
    outside: list[str] = []
    for key, (dtype, shape) in listing.items():
        path = graph_names.get(key, key.removesuffix(VARIABLE_VALUE_SUFFIX))
        reason = _skip_reason(path, dtype, shape)
        if reason:
            skipped[path] = reason
            continue
        name = network_name(path)
        if name is None:
            outside.append(f"{path} {list(shape)}")
        elif name in wanted:
            # A SavedModel can hold one variable under two keys only through aliases; two values are a conflict.
            raise ConversionError(f"{prefix}: two checkpoint keys name the network variable {name}: "
                                  f"{wanted[name]} and {key}")
        else:
            wanted[name] = key
    values = read_variables(prefix, list(wanted.values()))
    variables = {name: values[key] for name, key in wanted.items()}
    step = None
    for key, (dtype, shape) in listing.items():
        path = graph_names.get(key, key)
        if shape == () and np.issubdtype(dtype, np.integer) and re.search(r"(global_step|train_step)", path):
            step = int(read_variables(prefix, [key])[key])
    model = RT1(with_transformer_of(config, variables))
    config = model.config
    mapper = map_variables(variables, model)
    unmapped = [f"{name} {list(variables[name].shape)}" for name in sorted(variables) if name not in mapper.used]
    missing = [f"{k} {tuple(v.shape)}" for k, v in mapper.expected.items() if k not in mapper.state]
    problems = list(mapper.problems)
    if outside:
        problems.append(f"{len(outside)} variable(s) outside the actor network: " + "; ".join(outside))
    if unmapped:
        problems.append(f"{len(unmapped)} checkpoint variable(s) map to nothing: " + "; ".join(unmapped))
    if missing:
        problems.append(f"{len(missing)} model tensor(s) get no value: " + "; ".join(missing))
    if problems:
        raise ConversionError(f"{prefix} does not convert to the {describe(config)} model:\n  "
                              + "\n  ".join(problems))
    model.load_state_dict(mapper.state)
    return model.eval(), Conversion(state=mapper.state, mapped=dict(mapper.used), skipped=skipped, step=step)


def describe(config: RT1Config) -> str:
    t = config.transformer
    return (f"{config.backbone.num_blocks}-block FiLM-EfficientNet, {t.num_layers}-layer transformer "
            f"(d={t.width or config.embed_dim}, {t.num_heads} heads × "
            f"{t.head_dim or (t.width or config.embed_dim) // t.num_heads})")


def released_step(source: Path, conversion: Conversion) -> int | None:
    match = re.search(r"ckpt-(\d+)", Path(source).name)  # the file's own name, not a parent folder's
    if match:
        return int(match.group(1))
    return conversion.step


def write_converted(source: str | Path, output: str | Path, config: RT1Config | None = None) -> Path:
    """Convert ``source`` and save it as a checkpoint directory (model.safetensors + config.yaml) whose extra
    section records where it came from and the released action space."""
    source = Path(source).resolve()
    prefix, kind = bundle_prefix(source)
    model, conversion = convert(source, config)
    action_space = official_action_space(model.config.num_bins)
    mapped_values = sum(int(np.prod(v.shape)) for k, v in conversion.state.items() if "num_batches" not in k)
    extra = {"converted_from": {
        "path": str(source), "format": kind, "prefix": str(prefix), "step": released_step(prefix, conversion),
        "variables_mapped": len(conversion.mapped), "variables_skipped": len(conversion.skipped),
        "values": mapped_values,
        "action_order": list(OFFICIAL_ACTION_NAMES),
        "action_bounds": {dim.name: [float(dim.low), float(dim.high)] for dim in action_space.dimensions},
        "mode_classes": "terminate_episode one-hot [terminate, arm, base] -> rt1_ros mode (arm, base, terminate)",
    }}
    return save_pretrained(model, output, action_space, extra=extra)
