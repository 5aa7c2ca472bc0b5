"""The small official-network fixtures (test/convert/fixtures/official_small, README there): where they are and the
FiLM-EfficientNet they were recorded with (width 0.25, stem 8, top conv 320). Used by the converter's parity tests
and the release-layout fine-tuning tests."""
from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "convert" / "fixtures" / "official_small"
STEM_CHANNELS = 8
TOP_CHANNELS = 320
STAGES = [{"expand_ratio": 1, "kernel_size": 3, "stride": 1, "out_channels": 8, "repeats": 1},
          {"expand_ratio": 6, "kernel_size": 3, "stride": 2, "out_channels": 16, "repeats": 1},
          {"expand_ratio": 6, "kernel_size": 5, "stride": 2, "out_channels": 16, "repeats": 2},
          {"expand_ratio": 6, "kernel_size": 3, "stride": 2, "out_channels": 24, "repeats": 1},
          {"expand_ratio": 6, "kernel_size": 5, "stride": 2, "out_channels": 32, "repeats": 1},
          {"expand_ratio": 6, "kernel_size": 3, "stride": 1, "out_channels": 32, "repeats": 1}]
