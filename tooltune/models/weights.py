"""What a model folder's weights are stored as, read from the safetensors headers alone (no tensor data)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

FLOAT_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


class UnreadableWeightsError(ValueError):
    """A ``*.safetensors`` file whose header cannot be read."""


def float_weights_dtype(model_dir: Path) -> str | None:
    """The float format of the first float tensor in the folder's ``*.safetensors`` files, in name order:
    a quantized model's packed integer weights are skipped (its scales say how it computes). None when
    no file holds one. Raises :class:`UnreadableWeightsError` (a ValueError) for a file whose header
    cannot be read, OSError for one that cannot be opened."""
    for file in sorted(model_dir.glob("*.safetensors")):
        with open(file, "rb") as f:
            try:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > 1 << 26:  # not a safetensors header (an LFS pointer, say): don't read gigabytes
                    raise ValueError("header length out of range")
                header = json.loads(f.read(n))
            except (ValueError, struct.error) as e:  # UnicodeDecodeError and JSONDecodeError included
                raise UnreadableWeightsError(f"{file}: not a safetensors file ({e})") from e
        for key, value in header.items() if isinstance(header, dict) else ():
            if key != "__metadata__" and isinstance(value, dict) and value.get("dtype") in FLOAT_NAMES:
                return FLOAT_NAMES[value["dtype"]]
    return None
