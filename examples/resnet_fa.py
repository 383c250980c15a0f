"""A small ResNet trained with feedback alignment (FA) on the 8 x 8 digits, in a plain loop.

The model below is ordinary PyTorch: a conv stem, three residual basic blocks (BatchNorm,
ReLU, identity or 1x1-projection shortcuts), global average pooling and a linear head.
``biocredit.convert(model, "fa")`` gives a copy in which every ``nn.Conv2d`` and
``nn.Linear`` sends the error down through a fixed random feedback matrix instead of its
own weights; the loop is the usual ``loss.backward(); opt.step()``. Other layer rules work
the same way (``--rule kp``, ``usf``, ``brsf``, ``frsf``, ``urfb``, ``frfb``, ``bp``); the
ones with learned feedback (kp, urfb, sign symmetry) update it after each optimizer step
through ``biocredit.hook_optimizer``.

Run::

    python examples/resnet_fa.py                  # FA, 15 epochs: ~1% test error, ~30 s on 2 cores
    python examples/resnet_fa.py --rule kp --epochs 5
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import biocredit


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; the shortcut is the identity, or a strided 1x1
    convolution when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """stem -> block(w) -> block(2w, /2) -> block(4w, /2) -> average pool -> linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(width, width),
                                    BasicBlock(width, 2 * width, stride=2),
                                    BasicBlock(2 * width, 4 * width, stride=2))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        h = self.blocks(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = (model(x).argmax(1) != y).sum().item()
    model.train()
    return wrong / len(y)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rule", default="fa",
                   help="a layer rule: fa, kp, usf, brsf, frsf, urfb, frfb, bp (default fa)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--width", type=int, default=16, help="channels of the first block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None,
                   help="train on the first N training examples only (quick tests)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = biocredit.data.load("digits", normalize="standardize")
    train_x, train_y = data.train_x[:args.limit], data.train_y[:args.limit]

    plain = ResNet(data.input_shape[0], data.num_classes, args.width)
    model = biocredit.convert(plain, args.rule)          # a copy; `plain` is untouched
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    biocredit.hook_optimizer(model, opt)   # learned feedback (kp, usf, ...) after each step
    if not args.quiet:
        print(biocredit.conversion_of(model))

    start = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        order = torch.randperm(len(train_x))
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            loss.backward()                                  # the rule's updates, not BP's
            opt.step()                                       # + the rule's after_step
            total += loss.item() * len(idx)
        biocredit.after_epoch(model)
        test_error = error_rate(model, data.test_x, data.test_y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train_x),
                        "test_error": test_error})
        if not args.quiet:
            print(f"epoch {epoch + 1:3d}  train loss {total / len(train_x):.4f}  "
                  f"test error {100 * test_error:.2f}%")

    return {"rule": args.rule,
            "test_error": error_rate(model, data.test_x, data.test_y),
            "train_error": error_rate(model, train_x, train_y), "history": history,
            "seconds": time.perf_counter() - start, "model": model}


if __name__ == "__main__":
    main()
