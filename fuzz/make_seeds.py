#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (fuzz/corpus/<target>/). Run from the repository root
after building the command-line tool (numpy needed): /usr/bin/python3 fuzz/make_seeds.py build/tools/blockcast"""
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

# engine layouts (the golden files of tests/test_layouts.cpp) and a gpt-oss MXFP4 pair
layouts = os.path.join(os.path.dirname(root), "..", "tests", "data", "layouts")
for name in sorted(os.listdir(layouts)):
    if name.endswith(".safetensors"):
        with open(os.path.join(layouts, name), "rb") as f:
            put("safetensors", "layout-" + name[: -len(".safetensors")], f.read())
put("safetensors", "layout-gpt-oss", safetensors([("e.down_blocks", "U8", [2, 1, 1, 16], bytes(rng.randrange(256) for _ in range(32))),
                                                  ("e.down_scales", "U8", [2, 1, 1], bytes([127, 255]))]))

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


# fuzz_gguf: GGUF files (little endian; layout in include/blockcast/io/gguf.hpp)
def gguf_string(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def aligned(data, alignment=32):
    return data + b"\0" * (-len(data) % alignment)


seed = b"GGUF" + struct.pack("<IQQ", 3, 2, 3)
seed += gguf_string("general.name") + struct.pack("<I", 8) + gguf_string("tiny")
seed += gguf_string("general.alignment") + struct.pack("<II", 4, 32)
seed += gguf_string("tokens") + struct.pack("<IIQ", 9, 8, 2) + gguf_string("a") + gguf_string("bc")
seed += gguf_string("a") + struct.pack("<IQQIQ", 2, 3, 2, 0, 0)  # F32 [3, 2] at 0
seed += gguf_string("b") + struct.pack("<IQIQ", 1, 32, 8, 32)  # Q8_0 [32] at 32
seed = aligned(aligned(seed) + floats([i + 0.5 for i in range(6)])) + struct.pack("<H", 0x3C00) + bytes(range(32))
put("gguf", "two_tensors.gguf", seed)

seed = b"GGUF" + struct.pack("<IQQ", 3, 2, 12)
for i, (fmt, v) in enumerate([("<B", 1), ("<b", -1), ("<H", 2), ("<h", -2), ("<I", 3), ("<i", -3), ("<f", 0.5), ("<B", 1)]):
    seed += gguf_string(f"k{i}") + struct.pack("<I", i) + struct.pack(fmt, v)  # value types 0-7
seed += gguf_string("k10") + struct.pack("<IQ", 10, 4) + gguf_string("k11") + struct.pack("<Iq", 11, -4)
seed += gguf_string("k12") + struct.pack("<Id", 12, 0.25)
seed += gguf_string("arr") + struct.pack("<IIQ", 9, 6, 2) + floats([1.0, 2.0])
seed += gguf_string("blk.0.ffn_up.weight") + struct.pack("<IQQIQ", 2, 64, 1, 39, 0)  # MXFP4 [64, 1]
seed += gguf_string("blk.0.ffn_down.weight") + struct.pack("<IQIQ", 1, 64, 40, 64)  # NVFP4 [64]
seed = aligned(seed) + bytes([127]) + bytes(range(16)) + bytes([127]) + bytes(range(16, 32))
seed = aligned(seed) + bytes([0x38] * 4) + bytes(range(32))
put("gguf", "mxfp4_nvfp4.gguf", seed)

# fuzz_imatrix: llama.cpp importance matrices (layouts in include/blockcast/io/imatrix_file.hpp)
seed = struct.pack("<i", 2)
for name, n in (("blk.0.attn_q.weight", 8), ("blk.0.ffn_down.weight", 4)):
    seed += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 3, n) + floats([0.5 * (i + 1) for i in range(n)])
put("imatrix", "legacy.dat", seed + struct.pack("<ii", 3, 4) + b"text")
seed = b"GGUF" + struct.pack("<IQQ", 3, 2, 1)
seed += gguf_string("general.type") + struct.pack("<I", 8) + gguf_string("imatrix")
seed += gguf_string("blk.0.attn_q.weight.in_sum2") + struct.pack("<IQQIQ", 2, 8, 1, 0, 0)  # F32 [8, 1] at 0
seed += gguf_string("blk.0.attn_q.weight.counts") + struct.pack("<IQQIQ", 2, 1, 1, 0, 32)  # F32 [1, 1] at 32
seed = aligned(aligned(seed) + floats([i + 0.25 for i in range(8)])) + floats([16.0])
put("imatrix", "imatrix.gguf", seed)

# fuzz_input_stats: calibration statistics files (docs/calibration_stats.md), made by
# tools/collect_stats.py: a Hadamard sketch, exact statistics, and a version 1 file (Gaussian)
sys.path.insert(0, os.path.join(os.path.dirname(root), "..", "tools"))
import collect_stats  # noqa: E402
import numpy as np  # noqa: E402


def stats_file(name, k, sketch, seed, version="2"):
    st = collect_stats.Stats(k, sketch, seed)
    if version == "1" and not st.exact:  # version 1 sketched with Gaussian test matrices only
        st.kind, st.omega = "gaussian", collect_stats.test_matrix(k, st.s, seed, "gaussian")
    st.add(np.random.default_rng(k).standard_normal((50, k)).astype(np.float32))
    info = {"samples": st.count, "seed": seed, "sketch": st.s}
    if version == "2":
        info["test_matrix"] = st.kind
    tensors = [(name + ".input_sum", "F64", [k], st.sum.tobytes()), (name + ".input_sum_sq", "F64", [k], st.sum_sq.tobytes()),
               (name + ".input_moments", "F64", [k, st.s], np.ascontiguousarray(st.moments).tobytes())]
    return safetensors(tensors, {"blockcast.input_stats": version, name + ".input_stats": json.dumps(info)})


put("input_stats", "hadamard", stats_file("w", 40, 16, 7))
put("input_stats", "exact", stats_file("layer.weight", 12, None, 0))
put("input_stats", "version1", stats_file("w", 24, 8, 3, version="1"))
