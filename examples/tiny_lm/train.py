#!/usr/bin/env python3
"""Trains tiny_lm, a small LLaMA-architecture byte-level language model, and writes it as a
Hugging Face model directory (config.json for LlamaForCausalLM, model.safetensors in BF16
with the standard tensor names), so that every path a real LLM takes through blockcast is
exercised by a model that ships with the project.

Run once; the directory examples/tiny_lm/model/, the texts under examples/tiny_lm/data/ and
the record (examples/tiny_lm/record.json) are committed, so nothing else trains:

    /usr/bin/python3 examples/tiny_lm/train.py [--minutes 35]

It installs what it needs on Debian 12 (python3-torch, libopenblas0-pthread: with the
reference BLAS training is about 15 times slower; fortunes: the text).

Text: the English fortune files of Debian's `fortunes` package (2.5 MB; not the ASCII art),
one document per fortune.
Documents are split before training, by a seeded permutation: 5% are held out. From them
`data/heldout.txt` is written (the evaluation text; `data/heldout_all.txt` is all of the
held-out documents, for finer comparisons), and from the training documents
`data/calibration.txt` (text for calibrating quantization, never evaluated on).

Model (examples/tiny_lm/model.hpp runs the same forward pass in C++):
    vocabulary 256 (bytes), d_model 256, 4 layers, 4 heads of 64, SwiGLU MLP of 768,
    RMSNorm (eps 1e-5), rotary embeddings (theta 10000, the rotate-half layout of
    Hugging Face's LLaMA), context 256, untied output head; no biases.

Perplexity: the held-out text is cut into windows of 256 bytes (the first `EVAL_WINDOWS`);
within each window every byte after the first is predicted from the bytes before it. The
record holds exp(mean negative log-likelihood) computed with the BF16 weights (as stored)
in FP32 arithmetic.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FORTUNES = "/usr/share/games/fortunes"
SEED = 1
HELDOUT_FRACTION = 0.05
EVAL_WINDOWS = 64
CALIBRATION_BYTES = 64 * 1024

CONFIG = {
    "vocab_size": 256,
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}


def install(packages):
    missing = [p for p in packages
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
               .stdout.find("install ok installed") < 0]
    if not missing:
        return
    print("installing " + " ".join(missing), file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


if __name__ == "__main__":  # (collect_stats.py imports this file for the model alone)
    install(["python3-torch", "python3-numpy", "libopenblas0-pthread", "fortunes"])

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import safetensors_io  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def documents():
    """Every fortune of the English files, in file-name order, as bytes (ASCII, stripped)."""
    docs = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if not os.path.isfile(path) or "." in name or name == "ascii-art":  # indexes, links, pictures
            continue
        with open(path, "rb") as f:
            text = f.read()
        for doc in text.split(b"\n%\n"):
            doc = doc.strip(b"%\n ")
            if doc and all(b < 128 for b in doc):
                docs.append(doc + b"\n")
    return docs


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(seq, head_dim, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h, hd = self.heads, d // self.heads
        q = self.q_proj(x).view(b, t, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, h, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        y = scores.softmax(-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, m = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, m, bias=False)
        self.up_proj = nn.Linear(d, m, bias=False)
        self.down_proj = nn.Linear(m, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class TinyLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Model(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
                if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                    p.data /= math.sqrt(2 * c["num_hidden_layers"])

    def forward(self, tokens):
        c = self.c
        cos, sin = rotary(tokens.shape[1], c["hidden_size"] // c["num_attention_heads"], c["rope_theta"])
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def windows(data, length, count):
    n = min(count, len(data) // length)
    return torch.from_numpy(np.frombuffer(data[:n * length], dtype=np.uint8).astype(np.int64).reshape(n, length))


def perplexity(net, eval_windows):
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(eval_windows), 16):
            w = eval_windows[i:i + 16]
            logits = net(w[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, 256), w[:, 1:].reshape(-1), reduction="sum")
            total += float(nll.double())
            count += w[:, 1:].numel()
    net.train()
    return math.exp(total / count), total / count


def load_model(directory):
    """The model of a directory written by this script (config.json, BF16 model.safetensors)."""
    with open(os.path.join(directory, "config.json")) as f:
        config = {k: v for k, v in json.load(f).items() if k in CONFIG}
    net = TinyLM(config)
    arrays, _ = safetensors_io.read(os.path.join(directory, "model.safetensors"))
    state = {name: torch.from_numpy(a) for name, a in arrays.items()}
    net.load_state_dict(state)
    net.eval()
    return net


def write_text(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=35.0, help="training time budget")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(os.cpu_count() or 1)
    docs = documents()
    order = np.random.default_rng(SEED).permutation(len(docs))
    n_held = int(len(docs) * HELDOUT_FRACTION)
    held = b"".join(docs[i] for i in sorted(order[:n_held]))
    train = b"".join(docs[i] for i in sorted(order[n_held:]))
    print(f"{len(docs)} documents: {len(train)} training bytes, {len(held)} held-out bytes", file=sys.stderr)
    context = CONFIG["max_position_embeddings"]
    eval_text = held[:EVAL_WINDOWS * context]
    if len(eval_text) < EVAL_WINDOWS * context:
        sys.exit("not enough held-out text")
    # calibration: training text from a seeded offset (never the held-out documents)
    start = int(np.random.default_rng(SEED + 1).integers(0, len(train) - CALIBRATION_BYTES))
    write_text(os.path.join(HERE, "data", "heldout.txt"), eval_text)
    # all the held-out text in whole windows, for comparisons finer than the 16 KB resolve
    write_text(os.path.join(HERE, "data", "heldout_all.txt"), held[:len(held) // context * context])
    write_text(os.path.join(HERE, "data", "calibration.txt"), train[start:start + CALIBRATION_BYTES])

    data = torch.from_numpy(np.frombuffer(train, dtype=np.uint8).astype(np.int64))
    eval_windows = windows(eval_text, context, EVAL_WINDOWS)
    net = TinyLM(CONFIG)
    params = sum(p.numel() for p in net.parameters())
    print(f"{params} parameters", file=sys.stderr)
    decay = [p for p in net.parameters() if p.dim() == 2]
    rest = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(SEED)
    budget, start_time, step = args.minutes * 60, time.time(), 0
    warmup = 50
    # the schedule needs a step count: measure the first steps' speed, then fix it
    total_steps = None
    while True:
        elapsed = time.time() - start_time
        if total_steps is None and step == 20:
            total_steps = max(200, int(budget / (elapsed / 20)))
            print(f"{elapsed / 20:.2f} s per step: {total_steps} steps", file=sys.stderr)
        if total_steps is not None and step >= total_steps:
            break
        lr_scale = min(1.0, (step + 1) / warmup)
        if total_steps is not None:
            lr_scale *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total_steps)))
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        idx = torch.randint(0, len(data) - context - 1, (args.batch,), generator=gen)
        batch = torch.stack([data[i:i + context + 1] for i in idx.tolist()])
        logits = net(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            ppl, _ = perplexity(net, eval_windows)
            print(f"step {step}/{total_steps}: train loss {loss.item():.3f}, held-out perplexity {ppl:.3f} "
                  f"({time.time() - start_time:.0f} s)", file=sys.stderr, flush=True)

    # the stored model: BF16 weights; its perplexity is measured on them, in FP32
    tensors = {k: v for k, v in net.state_dict().items()}
    with torch.no_grad():
        for v in tensors.values():
            v.copy_(v.to(torch.bfloat16).to(torch.float32))
    ppl, nll = perplexity(net, eval_windows)
    out = os.path.join(HERE, "model")
    os.makedirs(out, exist_ok=True)
    safetensors_io.write(os.path.join(out, "model.safetensors"), {k: safetensors_io.bf16(t) for k, t in tensors.items()},
                         {"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "torch_dtype": "bfloat16", "attention_bias": False, "bos_token_id": None, "eos_token_id": None,
              **CONFIG}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    record = {
        "heldout_perplexity": ppl,
        "heldout_nll_per_byte": nll,
        "heldout_bits_per_byte": nll / math.log(2),
        "eval_windows": len(eval_windows),
        "context": context,
        "heldout_sha256": hashlib.sha256(eval_text).hexdigest(),
        "training_bytes": len(train),
        "heldout_documents": n_held,
        "documents": len(docs),
        "parameters": params,
        "steps": step,
        "batch": args.batch,
        "lr": args.lr,
        "seed": SEED,
        "minutes": round((time.time() - start_time) / 60, 1),
        "torch": torch.__version__,
    }
    with open(os.path.join(HERE, "record.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"held-out perplexity {ppl:.4f} ({nll / math.log(2):.3f} bits per byte); wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
