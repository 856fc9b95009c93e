"""st_io.py - a minimal safetensors writer/reader for the golden-fixture scripts.

Writes the format by hand (json + struct): 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets}} (plus optional "__metadata__" of string values), padded
with spaces to a multiple of 8 bytes, then the raw little-endian tensor data. F32, F64, I32 and
I64 only. Not a general safetensors library: no mmap, no bf16/f16.
"""

import json
import struct

import numpy as np

_DTYPES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f8"): "F64",
    np.dtype("<i4"): "I32",
    np.dtype("<i8"): "I64",
}
_NP = {v: k for k, v in _DTYPES.items()}


def write(path, tensors, metadata=None):
    """Writes dict name -> numpy array (F32/F64/I32/I64) to path. Returns the file size."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<")
        if dt not in _DTYPES:
            raise TypeError(f"{name}: unsupported dtype {a.dtype}")
        b = a.astype(dt, copy=False).tobytes(order="C")
        header[name] = {
            "dtype": _DTYPES[dt],
            "shape": [int(d) for d in a.shape],
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return 8 + len(h) + offset


def read(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        a = np.frombuffer(data[lo:hi], dtype=_NP[info["dtype"]])
        out[name] = a.reshape(info["shape"]).copy()
    return out, meta
