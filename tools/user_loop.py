"""The rules in a user's own training loop, timed against plain PyTorch.

A plain ``nn.Sequential`` (784-800x4-10, tanh) per rule, converted with
``biocredit.convert`` and trained with ``hook_optimizer`` and SGD in the loop a user writes
(``zero_grad``, forward, cross-entropy, ``backward``, ``step``). In the same loop, taking
turns step by step with them, ``biocredit bench``'s own step for each rule on its built-in
``mlp:4x800:tanh`` and that model unconverted. Prints each rule's median step time over its
plain model's, in the user's loop and in bench's, and the difference::

    python tools/user_loop.py [--rules fa,usf,kp,dfa,dkp] [--steps 30] [--warmup 10]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import biocredit
from biocredit import losses, models
from biocredit.optimizers import make_optimizer, trainable
from biocredit.training.bench import created, median_times, step_function
from biocredit.training.run import seeded_generator


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
    rules = args.rules.split(",")
    steps = {("user", name): user_step(name, x, y) for name in ["torch", *rules]}
    bench_setups = bench_setups_for(rules, x)
    bench_step = step_function(bench_setups, x, y, losses.create("ce"), False, False)
    for name, setup in bench_setups.items():
        steps[("bench", name)] = lambda setup=setup: bench_step(*setup)
    ms = median_times(lambda step: step(), {key: (step,) for key, step in steps.items()},
                      args.warmup, args.steps, torch.device("cpu"))
    ratio = {key: ms[key] / ms[(key[0], "torch")] for key in ms}
    for loop, label in (("user", "user's loop"), ("bench", "bench's step")):
        print(f"{label:12}  plain PyTorch {ms[(loop, 'torch')]:.2f} ms a step; × plain PyTorch: "
              + ", ".join(f"{r} {ratio[(loop, r)]:.2f}" for r in rules))
    print("user's loop against bench's, ratio to ratio: "
          + ", ".join(f"{r} {ratio[('user', r)] / ratio[('bench', r)] - 1:+.1%}" for r in rules))


def user_step(rule: str, x: torch.Tensor, y: torch.Tensor):
    """One step of the user's loop for ``rule`` (``"torch"``: the plain model) on
    ``(x, y)``."""
    net = sequential()
    if rule != "torch":
        net = biocredit.convert(net, rule, example_input=x[:1])
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    if rule != "torch":
        biocredit.hook_optimizer(net, opt)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return step


def bench_setups_for(rules: list[str], x: torch.Tensor) -> dict:
    """``biocredit bench``'s setups (rule, model, optimizer) for ``rules`` on its built-in
    ``mlp:4x800:tanh``, and the model unconverted as ``"torch"``."""
    base = models.create("mlp:4x800:tanh", (1, 28, 28), 10)
    setups = {"torch": (None, base, make_optimizer("sgd", trainable(base), 1e-3))}
    for name in rules:
        rule = created(name, False)
        net = biocredit.convert(base, rule, generator=seeded_generator(0, 1),
                                example_input=x[:1])
        setups[name] = (rule, net, make_optimizer("sgd", trainable(net), 1e-3))
    return setups


if __name__ == "__main__":
    main()
