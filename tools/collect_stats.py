#!/usr/bin/env python3
"""Calibration statistics of every nn.Linear's inputs, for `blockcast quantize --calibration`.

For a model too large to dump its layer inputs, this hooks the input of every torch.nn.Linear,
accumulates the statistics blockcast's error diffusion works from (ptq::input_stats: per
channel sums and sums of squares, and the sketched second moment N H Omega), batch by batch,
and writes them in the file format of docs/calibration_stats.md. Omega is generated as the C++
side generates it (same generator, same seed), so the file should be what C++ writes from the
same inputs, up to the rounding of float products summed in another order
(tests/stats_interop.py checks both, and the CLI path from here to a quantized checkpoint).

As a library:

    stats = collect_stats.Collector(model, seed=0)  # sketch=None: the C++ default rule
    for batch in batches:
        model(batch)            # the hooks see every Linear's input
    stats.write("stats.safetensors")

From the command line, for examples/tiny_lm's model (any model class with a loader works the
same way; see --help):

    /usr/bin/python3 tools/collect_stats.py --tiny-lm examples/tiny_lm/model \\
        --text examples/tiny_lm/data/calibration.txt -o stats.safetensors
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

VERSION = "2"
# The default sketch rule of ptq::input_stats (sketch_for): H exactly while K <= EXACT_CHANNELS,
# a sketch of DEFAULT_SKETCH columns above. sketch=None asks for it.
EXACT_CHANNELS = 1024
DEFAULT_SKETCH = 128


def sketch_for(k):
    return k if k <= EXACT_CHANNELS else DEFAULT_SKETCH


M32 = 0xFFFFFFFF


def _mix32(x):
    """lowbias32 on numpy uint32 arrays (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def _key(seed, index_high):
    lo, hi = np.uint64(seed & M32), np.uint64((seed >> 32) & M32)
    inner = _mix32((index_high.astype(np.uint64) + 0x9E3779B9) & M32)
    return _mix32(lo ^ _mix32(hi ^ inner))


def _bits(seed, index):
    """detail::stochastic_bits(seed, index) for a uint64 array of indices."""
    index = index.astype(np.uint64)
    k = _key(seed, index >> np.uint64(32))
    return _mix32(_mix32(((index & M32) + k) & M32) ^ k)


_omegas = {}


def hadamard_length(k):
    """The largest power of two <= K (ptq::test_matrix::hadamard_length)."""
    p = 1
    while p <= k // 2:
        p *= 2
    return p


def default_test_matrix(k, s):
    """input_stats::default_test_matrix: Hadamard where s distinct columns of it exist."""
    return "hadamard" if s < k and s <= hadamard_length(k) else "gaussian"


def test_matrix(k, s, seed=0, kind="hadamard"):
    """Omega (K x s, float32), as ptq::test_matrix makes it (docs/calibration_stats.md).
    Layers of the same width share it (computed once)."""
    if (k, s, seed, kind) not in _omegas:
        _omegas[(k, s, seed, kind)] = _hadamard(k, s, seed) if kind == "hadamard" else _gaussian(k, s, seed)
    return _omegas[(k, s, seed, kind)]


def _odd_parity(x):
    for shift in (32, 16, 8, 4, 2, 1):
        x = x ^ (x >> np.uint64(shift))
    return (x & np.uint64(1)).astype(bool)


def _hadamard(k, s, seed):
    """sign_i * (-1)^popcount((i mod P) & column_j): signs from bits(seed, i), i < K; columns by
    a partial Fisher-Yates shuffle of [0, P) with bits(seed, K + j)."""
    p = hadamard_length(k)
    if s > p:
        raise ValueError(f"a Hadamard test matrix of {s} columns for K = {k} (at most {p})")
    signs = np.where(_bits(seed, np.arange(k, dtype=np.uint64)) & np.uint64(1), -1.0, 1.0).astype(np.float32)
    draws = _bits(seed, np.arange(k, k + s, dtype=np.uint64))
    order = list(range(p))
    columns = []
    for j in range(s):
        pick = j + int((int(draws[j]) * (p - j)) >> 32)
        order[j], order[pick] = order[pick], order[j]
        columns.append(order[j])
    rows = (np.arange(k, dtype=np.uint64) % np.uint64(p)).reshape(-1, 1)
    odd = _odd_parity(rows & np.array(columns, dtype=np.uint64).reshape(1, -1))
    return np.where(odd, -signs.reshape(-1, 1), signs.reshape(-1, 1)).astype(np.float32)


def _gaussian(k, s, seed):
    """Box-Muller on the generator's bits; the logarithm and cosine are the C library's,
    element by element, as in C++."""
    i = np.arange(k, dtype=np.uint64).reshape(-1, 1)
    j = np.arange(s, dtype=np.uint64).reshape(1, -1)
    index = np.uint64(2) * (i * np.uint64(s) + j)
    u1 = (_bits(seed, index).astype(np.float64) + 1.0) / 4294967297.0
    u2 = _bits(seed, index + np.uint64(1)).astype(np.float64) / 4294967296.0
    out = np.empty((k, s), dtype=np.float32)
    flat_u1, flat_u2, flat = u1.ravel(), u2.ravel(), out.ravel()
    for n in range(flat.size):  # math.log/math.cos: the C library, as the C++ code calls
        flat[n] = math.sqrt(-2.0 * math.log(flat_u1[n])) * math.cos(6.283185307179586 * flat_u2[n])
    return out


class Stats:
    """ptq::input_stats for one layer: sums in float64, products in float32 as in C++."""

    def __init__(self, k, sketch=None, seed=0):
        self.k, self.seed = k, seed
        self.s = min(sketch if sketch else sketch_for(k), k)  # None or 0: the default rule, as in C++
        self.exact = self.s == k
        self.kind = "none" if self.exact else default_test_matrix(k, self.s)
        self.count = 0
        self.sum = np.zeros(k)
        self.sum_sq = np.zeros(k)
        self.moments = np.zeros((k, self.s))
        self.omega = None if self.exact else test_matrix(k, self.s, seed, self.kind)

    def add(self, x):
        x = np.asarray(x, dtype=np.float32).reshape(-1, self.k)
        if not np.isfinite(x).all():
            raise ValueError("the calibration inputs hold Inf or NaN")
        self.count += x.shape[0]
        self.sum += x.sum(axis=0, dtype=np.float32).astype(np.float64)
        self.sum_sq += np.square(x).sum(axis=0, dtype=np.float32).astype(np.float64)
        y = x if self.exact else x @ self.omega
        self.moments += (x.T @ y).astype(np.float64)


class Collector:
    """Hooks every nn.Linear of `model`; its statistics are keyed by "<module>.weight"."""

    def __init__(self, model, sketch=None, seed=0, include=lambda name: True):
        import torch.nn as nn
        self.stats, self.handles = {}, []
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and include(name):
                key = name + ".weight"
                self.stats[key] = Stats(module.in_features, sketch, seed)
                self.handles.append(module.register_forward_pre_hook(self._hook(key)))

    def _hook(self, key):
        def hook(module, inputs):
            self.stats[key].add(inputs[0].detach().float().cpu().numpy())
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()

    def write(self, path):
        write(path, self.stats)


def write(path, stats):
    """The statistics as docs/calibration_stats.md lays them out (written atomically)."""
    tensors, meta = {}, {"blockcast.input_stats": VERSION}
    for name, st in stats.items():
        if st.count == 0:
            continue
        tensors[name + ".input_sum"] = st.sum
        tensors[name + ".input_sum_sq"] = st.sum_sq
        tensors[name + ".input_moments"] = st.moments
        meta[name + ".input_stats"] = json.dumps({"samples": st.count, "sketch": st.s, "seed": st.seed, "test_matrix": st.kind},
                                                 separators=(",", ":"), sort_keys=True)  # as C++ writes it
    safetensors_io.write(path, tensors, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny-lm", required=True, help="examples/tiny_lm's model directory (loads it with train.py's code)")
    ap.add_argument("--text", required=True, help="calibration text, cut into windows of the model's context")
    ap.add_argument("--bytes", type=int, default=16384, help="how much of the text")
    ap.add_argument("--sketch", type=int, default=None,
                    help=f"sketch size (default: exact H while K <= {EXACT_CHANNELS}, else {DEFAULT_SKETCH})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "examples", "tiny_lm"))
    import train  # noqa: E402  (tiny_lm's model definition)
    model = train.load_model(args.tiny_lm)
    collector = Collector(model, args.sketch, args.seed, include=lambda name: name != "lm_head")
    context = model.c["max_position_embeddings"]
    with open(args.text, "rb") as f:
        text = f.read()[:args.bytes]
    windows = len(text) // context
    with torch.no_grad():
        for w in range(windows):
            batch = torch.tensor(list(text[w * context:(w + 1) * context]), dtype=torch.long).unsqueeze(0)
            model(batch)
            print(f"\r{w + 1}/{windows} windows", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    collector.write(args.output)
    print(f"wrote {args.output}: {len(collector.stats)} layers, {windows * context} samples each", file=sys.stderr)


if __name__ == "__main__":
    main()
