"""fl_io.py - .npy and .safetensors in and out with torch alone (no numpy), for the GPU checks:
the GPU machines' python has PyTorch, and numpy only if PyTorch happened to bring it.

Reads .npy versions 1-3 (C order, little-endian <f4 <f8 <i4 <i8 <i2 |i1 |u1 |b1) and writes
version 1.0 (<f4, <i4); reads safetensors (F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL) and writes
F32/I32/I64. Not a general library: no Fortran order, no .npz, no big-endian data.
"""

import ast
import ctypes
import json
import os
import struct

import torch

_NPY_DTYPES = {
    "<f4": torch.float32, "<f8": torch.float64, "<i4": torch.int32, "<i8": torch.int64,
    "<i2": torch.int16, "|i1": torch.int8, "|u1": torch.uint8, "|b1": torch.bool,
}
_NPY_NAMES = {torch.float32: "<f4", torch.int32: "<i4"}

_ST_DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64"}


def _from_bytes(raw, dtype, shape):
    n = 1
    for d in shape:
        n *= d
    if n == 0:
        return torch.zeros(shape, dtype=dtype)
    # bytearray: torch.frombuffer wants a writable buffer; the copy owns its memory.
    return torch.frombuffer(bytearray(raw), dtype=dtype, count=n).reshape(shape).clone()


def read_npy(path):
    """Returns the array in path as a CPU tensor of its own dtype."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    if header.get("fortran_order"):
        raise ValueError(f"{path}: Fortran order is not supported")
    descr = header["descr"]
    if descr not in _NPY_DTYPES:
        raise ValueError(f"{path}: dtype {descr} is not supported")
    shape = tuple(int(d) for d in header["shape"])
    return _from_bytes(raw[start + hlen:], _NPY_DTYPES[descr], shape)


def write_npy(path, t):
    """Writes a float32 or int32 tensor (others are converted: floats to <f4, ints to <i4)."""
    t = t.detach().cpu().contiguous()
    if t.dtype not in _NPY_NAMES:
        t = t.to(torch.float32 if t.is_floating_point() else torch.int32)
    shape = tuple(t.shape)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (_NPY_NAMES[t.dtype],
                                                                          shape)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(_tensor_bytes(t))
    os.replace(tmp, path)


def _tensor_bytes(t):
    """The raw little-endian bytes of a CPU tensor, read straight from its memory (ctypes: no
    numpy needed, and fast for the 240 MB of a ResNet-152)."""
    t = t.contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


def read_safetensors(path):
    """Returns (dict name -> CPU tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        out[name] = _from_bytes(data[lo:hi], _ST_DTYPES[info["dtype"]],
                                tuple(int(d) for d in info["shape"]))
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes dict name -> tensor (float tensors as F32, integer ones as I64 or I32)."""
    header, blobs, off = {}, [], 0
    for name in tensors:
        t = tensors[name].detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.to(torch.float32)
        elif t.dtype not in _ST_NAMES:
            t = t.to(torch.int64)
        b = _tensor_bytes(t)
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
