"""Reads and writes safetensors files with numpy alone, for the project's Python scripts
(the examples' training scripts, tools/collect_stats.py and the tests that compare their
files with C++'s). The writer is atomic: it writes "<path>.tmp" and renames it.

    write(path, {"w": np.zeros((4, 8), np.float32), "v": bf16(torch_tensor)}, {"format": "pt"})
    tensors, metadata = read(path)      # BF16 is widened to float32
"""
import json
import os
import struct

import numpy as np

_DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


class bf16:
    """A torch tensor to store as BF16 (rounded by torch, to nearest even)."""

    def __init__(self, tensor):
        import torch
        self.bits = tensor.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
        self.shape = self.bits.shape


def _encode(value):
    if isinstance(value, bf16):
        return "BF16", list(value.shape), value.bits.astype("<u2").tobytes()
    array = np.asarray(value)
    name = _NAMES.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
    if name is None:
        raise ValueError(f"no safetensors dtype for numpy {array.dtype}")
    return name, list(array.shape), np.ascontiguousarray(array, dtype=_DTYPES[name]).tobytes()


def write(path, tensors, metadata=None):
    """Writes `tensors` (name -> numpy array or bf16) in the given order, with `metadata`
    (str -> str) as __metadata__, padding the header to 8 bytes with spaces."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        dtype, shape, data = _encode(value)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read(path):
    """(tensors, metadata): tensors as numpy arrays by name, BF16 widened to float32."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, not a safetensors file")
    n = struct.unpack("<Q", data[:8])[0]
    if 8 + n > len(data):
        raise ValueError(f"{path}: header of {n} bytes runs past the end of the file")
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin:8 + n + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {info['dtype']} is not read here")
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors, metadata
