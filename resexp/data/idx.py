"""The IDX file format of MNIST and its drop-in replacements (LeCun et al., yann.lecun.com/exdb/mnist).

    magic     4 bytes, big-endian: 0x00 0x00, a type code (0x08 = unsigned byte), the number of dimensions
    sizes     one big-endian 32-bit integer per dimension
    data      the values, last dimension varying fastest

Images are 0x00000803 (N x rows x columns), labels 0x00000801 (N). A file may be gzipped (name
ending in .gz) or raw. Anything else than exactly header + sizes + data is an error naming the file.
"""
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

IMAGES = 0x00000803  # unsigned bytes, 3 dimensions
LABELS = 0x00000801  # unsigned bytes, 1 dimension


def _read_bytes(path: Path, hint: str) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # a cut or corrupt gzip stream: EOFError, BadGzipFile
        raise UserError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); {hint}") from None


def read_idx(path: Path, magic: int, hint: str) -> torch.Tensor:
    """The uint8 tensor stored in an IDX file whose magic number must be `magic`; `hint` says how to fix it."""
    raw = _read_bytes(path, hint)
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != magic:
        found = f"0x{struct.unpack('>I', raw[:4])[0]:08x}" if len(raw) >= 4 else "nothing"
        what = "images" if magic == IMAGES else "labels"
        raise UserError(f"{path} is not an IDX file of {what} (magic number {found}, expected 0x{magic:08x}); {hint}")
    if len(raw) < header:
        raise UserError(f"{path} is truncated: its header ends after {len(raw)} bytes; {hint}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise UserError(f"{path} is {problem}: {len(raw)} bytes for a {' x '.join(map(str, shape))} array "
                        f"({expected} bytes); {hint}")
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy())
