#!/usr/bin/env python3
"""Trains the demo's small CNN on Fashion-MNIST and writes its weights as safetensors.

Run once; the weights (model.safetensors) and the accuracy it reached (model.json) are
committed, so the demo needs no training. Uses Debian's python3-torch (CPU) and the
dataset-fashion-mnist package:

    /usr/bin/python3 examples/fashion_mnist/train.py

Network (inputs 1 x 28 x 28, normalised with the training set's mean and deviation):
    conv1 3x3 1->16, ReLU, maxpool 2   -> 16 x 14 x 14
    conv2 3x3 16->32, ReLU, maxpool 2  -> 32 x 7 x 7
    conv3 3x3 32->64, ReLU, maxpool 2  -> 64 x 3 x 3
    fc1 576->128, ReLU; fc2 128->10
Convolutions use padding 1; flattening is channel-major (C, H, W), as in examples/fashion_mnist/cnn.hpp.
"""
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import safetensors_io  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F

DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
HERE = os.path.dirname(os.path.abspath(__file__))
MEAN, STD = 0.2860, 0.3530
SEED, EPOCHS, BATCH = 1, 10, 128


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def images(name):
    x = read_idx(name).astype(np.float32) / 255.0
    return torch.from_numpy((x - MEAN) / STD).unsqueeze(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 3 * 3, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(os.cpu_count() or 1)
    xtr, ytr = images("train-images-idx3-ubyte.gz"), torch.from_numpy(read_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xte, yte = images("t10k-images-idx3-ubyte.gz"), torch.from_numpy(read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    start = time.time()
    for epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            F.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            correct = int((net(xte).argmax(1) == yte).sum())
        print(f"epoch {epoch + 1}/{EPOCHS}: test top-1 {correct / 100:.2f}%  ({time.time() - start:.0f} s)", flush=True)
    tensors = {k: v for k, v in net.state_dict().items()}
    meta = {"input_mean": str(MEAN), "input_std": str(STD), "test_correct": str(correct), "test_images": str(len(xte))}
    safetensors_io.write(os.path.join(HERE, "model.safetensors"), {k: t.numpy().astype(np.float32) for k, t in tensors.items()},
                         meta)
    record = {"test_correct": correct, "test_images": len(xte), "test_top1": correct / len(xte),
              "epochs": EPOCHS, "batch": BATCH, "seed": SEED, "torch": torch.__version__,
              "input_mean": MEAN, "input_std": STD}
    with open(os.path.join(HERE, "model.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"float top-1 {correct / len(xte):.4f}; wrote model.safetensors and model.json", file=sys.stderr)


if __name__ == "__main__":
    main()
