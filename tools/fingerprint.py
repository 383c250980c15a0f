"""The numbers' fingerprint: every rule and its main variants, three float64 optimizer steps on
every kind of model, hashed.

For each (rule variant, model, mode) the script converts the model with
:func:`biocredit.convert`, takes three SGD steps in float64 with fixed seeds and data (a plain
``loss.backward()`` each, as the README's loop), and hashes what the steps left behind: every
parameter and its ``.grad``, and every other tensor of the converted model (buffers, the
rules' feedback state, DKP's feedback optimizer, a buffer's ``.grad``). Modes: ``sgd`` (the
optimizer alone) and, for rules with learned feedback or schedules, ``hooked``
(:func:`biocredit.hook_optimizer`, then :func:`biocredit.after_epoch`). A combination the
library refuses is recorded as ``refused <error type>``.

Parameters are hashed under their names (the user's model's names, which conversion keeps);
the rules' state is hashed as a sorted set of tensor digests, without names, so that moving
it (from layer buffers to the root, say) keeps the fingerprint when the numbers stay.

``tests/fingerprint.txt`` holds the committed fingerprint and ``tests/test_fingerprint.py``
compares against it. A refactoring must leave it bit-identical; a change that means to change
the numbers regenerates it deliberately, and says so in its commit::

    python tools/fingerprint.py            # compare with tests/fingerprint.txt, list the lines that differ
    python tools/fingerprint.py --write    # regenerate tests/fingerprint.txt
    python tools/fingerprint.py --detail 'kp*' --detail-model mlp   # per-tensor digests

The bits depend on torch's version and the CPU's kernels (its vector capability); the file's
header records both, and the test compares only where they match.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import biocredit
import biocredit.models as M
import biocredit.rules as R

FILE = Path(__file__).resolve().parent.parent / "tests" / "fingerprint.txt"
STEPS = 3
BATCH = 6
CLASSES = 4
LR = 0.1


# -- the rules and their variants (name, options) -------------------------------------------
VARIANTS: list[tuple[str, dict]] = [
    ("bp", {}),
    ("bp", {"through_feedback": True}),
    ("fa", {}),
    ("fa", {"feedback_init": "gaussian"}),
    ("fa", {"feedback_init": "orthogonal"}),
    ("fa", {"feedback_init": "b1"}),
    ("fa", {"feedback_init": "b3"}),
    ("fa", {"feedback_init": "b4"}),
    ("fa", {"feedback_init": "b7"}),
    ("fa", {"feedback_scale": 0.3, "feedback_density": 0.5}),
    ("frfb", {}),
    ("urfb", {}),
    ("urfb", {"epsilon": 0.5}),
    ("urfb", {"epsilon": 0.0}),
    ("kp", {}),
    ("kp", {"decay": 0.0, "epsilon": 0.5}),
    ("usf", {}),
    ("brsf", {}),
    ("frsf", {}),
    ("dfa", {}),
    ("dfa", {"aux_errors": True}),
    ("dfa", {"feedback_init": "gaussian", "feedback_density": 0.5}),
    ("dkp", {}),
    ("dkp", {"feedback_optimizer": "sgd", "feedback_lr": 0.05, "feedback_momentum": 0.9,
             "feedback_lr_decay": 0.8}),
    ("ifa", {}),
    ("ifa", {"aux_errors": True}),
    *[("general", {"strategy": s, **aux}) for s in ("s1", "s2", "s3", "dfa")
      for aux in ({}, {"aux_errors": True})],
    ("general", {"sources": "direct+above-dfa;direct+above;direct+below-dfa",
                 "weights": {"direct": 2.0, "above": 1.0, "below-dfa": 0.5}}),
    ("shallow", {}),
    ("node-perturbation", {}),
    ("node-perturbation", {"sigma": 0.1}),
]


# -- the models: name -> (build, one example's shape, convert's options) --------------------
class TinyResNet(nn.Module):
    """A user's model: batch norm, a residual sum, its own taps."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.tap1, self.tap2 = biocredit.Tap(), biocredit.Tap()
        self.head = nn.Linear(4, CLASSES)

    def forward(self, x):
        x = self.stem(x)
        x = self.tap1(F.relu(self.bn1(self.conv1(x)) + x))
        x = self.tap2(torch.tanh(self.conv2(x)))
        return self.head(x.mean((2, 3)))


class TinyTransformer(nn.Module):
    """A user's model with multi-head attention: taps named at conversion."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.embed = nn.Linear(5, d)
        layer = nn.TransformerEncoderLayer(d, 2, 12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, CLASSES)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def conv1d() -> nn.Module:
    """An ``nn.Sequential`` with ``Conv1d``: default taps after its activations."""
    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 4, 3),
                         nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4, 6), nn.Tanh(),
                         nn.Linear(6, CLASSES))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], dict]] = {
    "mlp": (lambda: M.create("mlp:3x8:tanh", (1, 3, 4), CLASSES), (1, 3, 4), {}),
    "lenet": (lambda: M.create("lenet", (1, 8, 8), CLASSES), (1, 8, 8), {}),
    "dkp-convnet": (lambda: M.create("dkp-convnet", (2, 7, 7), CLASSES), (2, 7, 7), {}),
    "untied": (lambda: M.create("amit-simpnet-untied", (1, 5, 5), CLASSES), (1, 5, 5), {}),
    "resnet": (TinyResNet, (1, 4, 4), {}),
    # rules that learn their feedback leave attention on BP (they refuse it otherwise)
    "transformer": (TinyTransformer, (3, 5), {"unsupported": "bp",
                                              "taps": ["encoder.layers.0", "encoder.layers.1"]}),
    "conv1d": (conv1d, (2, 6), {}),
}


# -- one run -------------------------------------------------------------------------------
def learns(rule: R.Rule) -> bool:
    """Whether the rule does anything after a step or an epoch (then it gets a hooked run)."""
    cls = type(rule)
    return cls.after_step is not R.Rule.after_step or cls.after_epoch is not R.Rule.after_epoch


def modes(rule: R.Rule) -> tuple[str, ...]:
    return ("sgd", "hooked") if learns(rule) else ("sgd",)


def data(shape: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)
    return [(torch.randn(BATCH, *shape, generator=g, dtype=torch.float64),
             torch.randint(0, CLASSES, (BATCH,), generator=g)) for _ in range(STEPS)]


def train(rule: R.Rule, model_name: str, mode: str) -> nn.Module:
    """The converted model after three float64 SGD steps."""
    build, shape, options = MODELS[model_name]
    if not rule.direct:
        options = {k: v for k, v in options.items() if k != "taps"}
    torch.manual_seed(0)
    model = build().double()
    net = biocredit.convert(model, rule, generator=torch.Generator().manual_seed(1), **options)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    if mode == "hooked":
        biocredit.hook_optimizer(net, opt)
    torch.manual_seed(2)                     # dropout
    for x, y in data(shape):
        opt.zero_grad()
        biocredit.set_targets(net, y)        # auxiliary errors need the labels
        F.cross_entropy(net(x), y).backward()
        opt.step()
    if mode == "hooked":
        biocredit.after_epoch(net)
    return net


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype} {tuple(t.shape)}|".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensors(net: nn.Module) -> tuple[dict[str, str], list[str]]:
    """Digests of the named tensors (parameters and their gradients) and, without names,
    of every other tensor the converted model holds."""
    params = dict(net.named_parameters())
    named = {name: tensor_digest(p) for name, p in params.items()}
    named.update({f"{name}.grad": tensor_digest(p.grad)
                  for name, p in params.items() if p.grad is not None})
    seen = {id(p) for p in params.values()}
    other = []
    for key, value in net.state_dict(keep_vars=True).items():
        if torch.is_tensor(value) and id(value) not in seen:
            seen.add(id(value))
            other.append(tensor_digest(value))
    for _, buffer in net.named_buffers():
        if id(buffer) not in seen:               # non-persistent buffers
            seen.add(id(buffer))
            other.append(tensor_digest(buffer))
        if buffer.grad is not None:               # DKP's feedback gradient, before its step
            other.append("grad " + tensor_digest(buffer.grad))
    return named, sorted(other)


def digest(net: nn.Module) -> str:
    named, other = tensors(net)
    h = hashlib.sha256()
    for name in sorted(named):
        h.update(f"{name}={named[name]}\n".encode())
    for d in other:
        h.update(f"{d}\n".encode())
    return h.hexdigest()


def variant_label(name: str, options: dict) -> str:
    """``general:strategy=s1:aux_errors=true`` (values as JSON, as ``compare --rules`` reads
    them)."""
    return name + "".join(f":{k}={json.dumps(v, separators=(',', ':'))}"
                          for k, v in options.items())


def lines() -> Iterator[str]:
    """One line per (rule variant, model, mode): ``LABEL MODEL MODE SHA256``."""
    for name, options in VARIANTS:
        rule = R.create(name, **options)
        for model_name in MODELS:
            for mode in modes(rule):
                key = f"{variant_label(name, options)} {model_name} {mode}"
                try:
                    result = digest(train(rule, model_name, mode))
                except (ValueError, TypeError, RuntimeError) as err:
                    result = f"refused {type(err).__name__}"
                yield f"{key} {result}"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread: reductions then sum in one order whatever the machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def header() -> str:
    return (f"# biocredit numbers fingerprint: torch {torch.__version__}, CPU "
            f"{torch.backends.cpu.get_cpu_capability()}. Regenerate deliberately (when a change "
            "of numbers is intended): python tools/fingerprint.py --write")


def compute() -> list[str]:
    with one_thread():
        return [header(), *lines()]


def read(path: Path = FILE) -> list[str]:
    return path.read_text().splitlines()


def differences(expected: list[str], got: list[str]) -> list[str]:
    """Lines of ``got`` that are not in ``expected`` and vice versa, by key."""
    def keyed(rows):
        return {row.rsplit(" ", 1)[0] if not row.startswith("#") else "#": row for row in rows}
    old, new = keyed(expected), keyed(got)
    out = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            out.append(f"- {old.get(key, '(absent)')}\n+ {new.get(key, '(absent)')}")
    return out


def detail(rule_pattern: str, model_pattern: str) -> None:
    with one_thread():
        for name, options in VARIANTS:
            label = variant_label(name, options)
            if not fnmatch.fnmatchcase(label, rule_pattern):
                continue
            rule = R.create(name, **options)
            for model_name in MODELS:
                if not fnmatch.fnmatchcase(model_name, model_pattern):
                    continue
                for mode in modes(rule):
                    print(f"== {label} {model_name} {mode}")
                    try:
                        named, other = tensors(train(rule, model_name, mode))
                    except (ValueError, TypeError, RuntimeError) as err:
                        print(f"  refused {type(err).__name__}: {err}")
                        continue
                    for key in sorted(named):
                        print(f"  {key} {named[key]}")
                    for d in other:
                        print(f"  (state) {d}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help=f"regenerate {FILE}")
    p.add_argument("--detail", metavar="RULE", help="print per-tensor digests of the variants "
                   "matching this glob pattern (e.g. 'kp*')")
    p.add_argument("--detail-model", metavar="MODEL", default="*")
    args = p.parse_args(argv)
    if args.detail:
        detail(args.detail, args.detail_model)
        return 0
    start = time.perf_counter()
    got = compute()
    seconds = time.perf_counter() - start
    if args.write:
        FILE.write_text("\n".join(got) + "\n")
        print(f"wrote {FILE} ({len(got) - 1} lines, {seconds:.1f} s)")
        return 0
    diff = differences(read(), got)
    if not diff:
        print(f"fingerprint identical ({len(got) - 1} lines, {seconds:.1f} s)")
        return 0
    print("\n".join(diff))
    print(f"{len(diff)} lines differ from {FILE}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
