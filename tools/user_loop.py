"""The rules in a user's own training loop, timed against plain PyTorch.

A plain ``nn.Sequential`` (784-800x4-10, tanh) per rule, converted with
``biocredit.convert`` and trained with ``hook_optimizer`` and SGD in the loop a user writes
(``zero_grad``, forward, cross-entropy, ``backward``, ``step``), the rules taking turns step
by step; prints each rule's median step time over the plain model's. Compare with
``biocredit bench --model mlp:4x800:tanh --batch-size 128 --rules ...`` run just before or
after::

    python tools/user_loop.py [--rules fa,usf,kp,dfa,dkp] [--steps 30] [--warmup 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import biocredit


def sequential() -> nn.Sequential:
    layers = [nn.Flatten(), nn.Linear(784, 800), nn.Tanh()]
    for _ in range(3):
        layers += [nn.Linear(800, 800), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(800, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="fa,usf,kp,dfa,dkp")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch_size,))
    plain = sequential()
    setups = {"torch": (plain, torch.optim.SGD(plain.parameters(), lr=1e-3))}
    for rule in args.rules.split(","):
        net = biocredit.convert(sequential(), rule, example_input=x[:1])
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        biocredit.hook_optimizer(net, opt)
        setups[rule] = (net, opt)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(args.warmup + args.steps):
        for name, (net, opt) in setups.items():
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    print(f"plain PyTorch {ms['torch']:.2f} ms a step; × plain PyTorch: "
          + ", ".join(f"{name} {ms[name] / ms['torch']:.2f}" for name in ms if name != "torch"))


if __name__ == "__main__":
    main()
