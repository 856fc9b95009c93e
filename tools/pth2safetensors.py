#!/usr/bin/python3
"""pth2safetensors.py - converts a PyTorch .pth (a state_dict, a training checkpoint holding
one, or a whole pickled model) into a .safetensors file fedlung can load: floating tensors as
F32, integer and boolean tensors as I64. Writes the format with json + struct only (no
`safetensors` package); not a general converter (no F16/BF16 output, no sharded files).

    /usr/bin/python3 tools/pth2safetensors.py resnet152.pth resnet152.safetensors
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import torch

# Keys under which training scripts commonly keep the weights inside a checkpoint dict.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def is_state_dict(obj):
    return isinstance(obj, dict) and obj and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def find_state_dict(obj, key=None):
    """Returns (state_dict, where) for a module, a state_dict, or a dict holding one."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), "the model's state_dict()"
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise ValueError(f"the file has no top-level key '{key}'")
        return find_state_dict(obj[key])[0], f"key '{key}'"
    if is_state_dict(obj):
        return obj, "the top-level state_dict"
    if isinstance(obj, dict):
        for k in NESTED_KEYS:
            if k in obj:
                sd, _ = find_state_dict(obj[k])
                return sd, f"key '{k}'"
        # A state_dict that also carries non-tensor entries: keep the tensors.
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
        if tensors:
            return tensors, "the tensor entries of the top-level dict"
    raise ValueError("found no state_dict (expected a module, a dict of tensors, or a dict "
                     f"with one of the keys {', '.join(NESTED_KEYS)})")


def strip_prefix(sd, prefix):
    if prefix is None:  # DataParallel / DistributedDataParallel wrap every key in "module."
        prefix = "module." if sd and all(k.startswith("module.") for k in sd) else ""
    if not prefix:
        return sd
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


def encode(sd):
    """Returns (header bytes padded to 8, list of data blobs) in state_dict order."""
    header = {"__metadata__": {"format": "pt", "converter": "fedlung pth2safetensors"}}
    blobs, offset = [], 0
    for name, t in sd.items():
        t = t.detach().cpu()
        if t.is_complex():
            raise ValueError(f"tensor '{name}' is complex; fedlung has no complex tensors")
        if t.is_floating_point():
            arr, dtype = t.to(torch.float32).contiguous().numpy().astype("<f4", copy=False), "F32"
        else:
            arr, dtype = t.to(torch.int64).contiguous().numpy().astype("<i8", copy=False), "I64"
        data = arr.tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data then starts 8-byte aligned
    return text, blobs


def write_atomic(path, header, blobs):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path):
    """torch.load on the CPU; any unpickling failure becomes a ValueError with its reason."""
    if not os.path.exists(path):
        raise OSError("no such file")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except TypeError:  # PyTorch older than 1.13 has no weights_only
            return torch.load(path, map_location="cpu")
    except Exception as e:  # pickle, zip and torch errors have no common base class
        raise ValueError(f"cannot load with torch.load ({type(e).__name__}: {e})") from e


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a PyTorch .pth state_dict or model to .safetensors (F32 / I64).")
    ap.add_argument("input", help=".pth / .pt file saved with torch.save")
    ap.add_argument("output", help=".safetensors file to write")
    ap.add_argument("--key", help="take the state_dict from this top-level key of the file")
    ap.add_argument("--strip-prefix", metavar="P",
                    help="remove P from the start of every key (default: 'module.' when every "
                    "key has it)")
    args = ap.parse_args(argv)

    try:
        obj = load(args.input)
        sd, where = find_state_dict(obj, args.key)
        sd = strip_prefix(sd, args.strip_prefix)
        header, blobs = encode(sd)
        write_atomic(args.output, header, blobs)
    except (OSError, ValueError, RuntimeError, EOFError) as e:
        print(f"pth2safetensors: {args.input}: {e}", file=sys.stderr)
        return 1
    n_int = sum(1 for t in sd.values() if not t.is_floating_point())
    print(f"{args.output}: {len(sd)} tensors from {where} ({len(sd) - n_int} F32, {n_int} I64), "
          f"{sum(len(b) for b in blobs)} data bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
