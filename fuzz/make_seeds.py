#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (fuzz/corpus/<target>/). Run from the repository root
after building the command-line tool: python3 fuzz/make_seeds.py build/tools/blockcast"""
import json, math, os, random, struct, subprocess, sys, tempfile

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
rng = random.Random(7)


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)


def floats(values):
    return b"".join(struct.pack("<f", v) for v in values)


specials = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, 1e-38, 3.4e38, -6.0, 0.25, 448.0, 57344.0]
for fmt in range(7):
    vals = [rng.gauss(0, 1) * 10 ** rng.randint(-3, 3) for _ in range(70)] + specials
    put("quantize", f"fmt{fmt}", bytes([fmt, fmt % 4, fmt % 4, 0, 1, 33]) + floats(vals))
    put("dequantize", f"fmt{fmt}", bytes([fmt, 1, 40]) + floats([0.5]) + bytes([1]) + bytes(rng.randrange(256) for _ in range(80)))
put("quantize", "amax", bytes([6, 0, 0, 4, 0]) + floats([2.5]) + bytes([16]) + floats(specials * 3))


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


weights = floats([rng.gauss(0, 0.1) for _ in range(2 * 40)])
model = safetensors([("w", "F32", [2, 40], weights), ("b", "BF16", [2], b"\x80\x3f\x00\x40"), ("h", "F16", [1], b"\x00\x3c")])
put("safetensors", "plain", model)
with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "m.safetensors")
    with open(src, "wb") as f:
        f.write(model)
    for fmt in ("mxfp4", "nvfp4", "mxfp6_e3m2", "mxint8"):
        out = os.path.join(d, fmt + ".safetensors")
        subprocess.run([sys.argv[1], "quantize", src, "-o", out, "--format", fmt], check=True, stdout=subprocess.DEVNULL)
        with open(out, "rb") as f:
            put("safetensors", fmt, f.read())

# fuzz_model_files: an index, a NUL, then its shard "a.safetensors"
index = json.dumps({"metadata": {"total_size": 1}, "weight_map": {"w": "a.safetensors", "b": "a.safetensors", "h": "a.safetensors"}})
put("model_files", "sharded", index.encode() + b"\0" + model)
put("model_files", "wrong_shard", json.dumps({"weight_map": {"w": "b.safetensors"}}).encode() + b"\0" + model)
with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "m.safetensors")
    with open(src, "wb") as f:
        f.write(model)
    out = os.path.join(d, "q.safetensors")
    subprocess.run([sys.argv[1], "quantize", src, "-o", out, "--format", "nvfp4"], check=True, stdout=subprocess.DEVNULL)
    with open(out, "rb") as f:
        put("model_files", "quantized", index.encode() + b"\0" + f.read())

for i, args in enumerate([["formats"], ["--help"], ["quantize", "--help"],
                          ["quantize", "/dev/null", "-o", "out.safetensors", "--format", "mxfp4", "--method", "ed",
                           "--calibration", "/dev/null", "--include", "w.*", "--threads", "2"],
                          ["inspect", "/dev/null"], ["dequantize", "/dev/null", "-o", "x", "--dtype", "bf16"]]):
    put("cli_args", f"args{i}", b"\0".join(a.encode() for a in args))
