"""Mixed precision and torch.compile (issue 14): every rule's teaching signal under bf16
autocast is the float32 one, up to bf16 rounding; compiled models get eager's gradients;
``--amp`` and ``--compile`` train."""

import copy
import json

import pytest
import torch

import biocredit
from biocredit import models, rules
from biocredit.cli import main

SHAPES = {"mlp:2x64:tanh": (1, 8, 8), "lenet": (1, 28, 28)}


def tensors(net, buffers: bool = False) -> dict[str, torch.Tensor]:
    """``net``'s parameters (and with ``buffers`` its buffers: DKP's feedback gets a
    gradient) by name."""
    return {**(dict(net.named_buffers()) if buffers else {}), **dict(net.named_parameters())}


def gradients(net, rule, x, y, amp: bool, buffers: bool = False) -> dict[str, torch.Tensor]:
    for t in tensors(net, buffers).values():
        t.grad = None
    biocredit.set_targets(net, y)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    return {n: t.grad.clone() for n, t in tensors(net, buffers).items() if t.grad is not None}


@pytest.mark.parametrize("name, spec", [   # (the general rule is defined for MLPs only)
    (name, spec) for spec in SHAPES for name in rules.available()
    if not (name == "general" and spec == "lenet")])
def test_every_rules_signal_under_bf16_autocast_is_its_float32_signal(name, spec):
    torch.manual_seed(0)
    shape = SHAPES[spec]
    base = models.create(spec, shape, 10)
    x, y = torch.randn(32, *shape), torch.randint(0, 10, (32,))
    rule = rules.create(name)
    net = biocredit.convert(base, rule, generator=torch.Generator().manual_seed(1),
                            example_input=x[:1])
    state = copy.deepcopy(net.state_dict())   # (node perturbation's noise counter too)
    exact = gradients(net, rule, x, y, amp=False)
    net.load_state_dict(state)
    mixed = gradients(net, rule, x, y, amp=True)
    assert mixed.keys() == exact.keys() and exact
    for key, g in exact.items():
        assert mixed[key].dtype == g.dtype == torch.float32, key
        if g.norm() > 0:
            cosine = torch.nn.functional.cosine_similarity(g.flatten(), mixed[key].flatten(),
                                                           dim=0)
            assert cosine > 0.98, (key, float(cosine))
            assert (mixed[key].norm() / g.norm()).item() == pytest.approx(1.0, abs=0.05), key


def test_train_with_amp_learns_and_records_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--rule", "dfa", "--model", "mlp:1x64:tanh", "--data", "digits",
                 "--epochs", "3", "--lr", "0.01", "--amp", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["amp"] is True and summary["test_error"] < 0.12
    assert json.loads((out / "config.json").read_text())["amp"] is True


def test_bench_with_amp_reports_positive_ratios(tmp_path, capsys):
    assert main(["bench", "--rules", "fa,dfa", "--model", "mlp:1x32:tanh", "--input-shape",
                 "1x8x8", "--steps", "2", "--warmup", "0", "--amp", "--json",
                 str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["amp"] is True
    assert all(r["ratio_to_torch"] > 0 and r["step_ms"] > 0 for r in result["rules"].values())


@pytest.mark.parametrize("spec", ["mlp:2x64:tanh", "lenet"])
def test_compiled_models_are_one_graph_with_eagers_gradients(can_compile, spec):
    """``fullgraph=True``: the feedback layers' Functions are traced, not a graph break each
    (a custom ``jvp`` would make Dynamo run them eagerly), and DKP's feedback gradient
    ``e hᵀ`` leaves the traced backward through autograd (it broke the graph when the
    backward set ``.grad`` itself)."""
    shape = SHAPES[spec]
    x, y = torch.randn(16, *shape), torch.randint(0, 10, (16,))
    for name in ("bp", "fa", "usf", "dfa", "dkp") if spec.startswith("mlp") else ("fa",):
        torch.manual_seed(0)
        rule = rules.create(name)
        net = biocredit.convert(models.create(spec, shape, 10), rule,
                                generator=torch.Generator().manual_seed(1),
                                example_input=x[:1])
        eager = gradients(net, rule, x, y, amp=False, buffers=True)
        assert ("direct_feedback" in eager) == (name == "dkp")
        compiled = torch.compile(net, fullgraph=True)
        for _ in range(2):              # the second call runs the cached graph
            for t in tensors(net, buffers=True).values():
                t.grad = None
            biocredit.set_targets(net, y)
            torch.nn.functional.cross_entropy(compiled(x), y).backward()
            for key, g in eager.items():
                torch.testing.assert_close(tensors(net, buffers=True)[key].grad, g,
                                           rtol=1e-5, atol=1e-6, msg=f"{name} {key}")


@pytest.mark.slow
def test_train_with_compile_matches_eager(can_compile, tmp_path):
    common = ["train", "--rule", "dfa", "--model", "mlp:1x64:tanh", "--data", "digits",
              "--epochs", "2", "--lr", "0.01", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "eager")]) == 0
    assert main([*common, "--compile", "--out", str(tmp_path / "compiled")]) == 0
    eager, compiled = (json.loads((tmp_path / f / "summary.json").read_text())
                       for f in ("eager", "compiled"))
    assert compiled["compile"] is True
    assert compiled["test_error"] == pytest.approx(eager["test_error"], abs=0.01)


@pytest.mark.parametrize("name", ["ifa", "general", "node-perturbation"])
def test_rules_that_differentiate_the_graph_between_taps_refuse_compile(name, tmp_path,
                                                                        capsys):
    """IFA, the general rule and node perturbation take autograd through the steps between
    their taps, which a compiled model does not keep: ``--compile`` is refused up front, with
    the way out, by bench and by train (which then writes no run folder); the same rule runs
    uncompiled."""
    with pytest.raises(ValueError, match=f"{name} cannot train a torch.compile'd model.*"
                                         "without --compile"):
        biocredit.training.bench.benchmark([name], "mlp:1x8:tanh", input_shape=(1, 4, 4),
                                           steps=1, warmup=0, compile=True)
    out = tmp_path / "run"
    assert main(["train", "--rule", name, "--data", "digits", "--epochs", "1", "--compile",
                 "--out", str(out), "--quiet"]) == 2
    assert "without --compile" in capsys.readouterr().err and not out.exists()
    result = biocredit.training.bench.benchmark([name], "mlp:1x8:tanh", input_shape=(1, 4, 4),
                                                steps=1, warmup=0)
    assert result["rules"][name]["step_ms"] > 0


class MatrixProducts(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the dtypes of every matrix product's operands (mm, addmm, bmm)."""

    PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
                torch.ops.aten.bmm.default}

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.PRODUCTS:
            self.dtypes.append({a.dtype for a in args if isinstance(a, torch.Tensor)})
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["fa", "kp", "usf", "dfa", "dkp", "ifa"])
def test_under_bf16_autocast_every_matrix_product_of_the_step_is_bf16(name):
    """The forward's products and the rule's backward ones (the layer rules' ``δ B``, the
    direct rules' projection ``e B`` and DKP's ``e hᵀ``) all run on bf16 operands."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    net = biocredit.convert(models.create("mlp:2x32:tanh", (1, 8, 8), 10), name,
                            example_input=x[:1])
    with MatrixProducts() as seen:
        gradients(net, rules.create(name), x, y, amp=True)
        if name == "dkp":
            biocredit.after_step(net)               # where its feedback gradient is taken
    assert len(seen.dtypes) >= 3
    assert all(d == {torch.bfloat16} for d in seen.dtypes), seen.dtypes


def test_a_compiled_optimizer_step_takes_the_eager_steps(can_compile):
    """``--compile`` compiles the optimizer's step too: Adam's update of a KP net (whose
    feedback follows the step the optimizer took) matches the eager one's."""
    from biocredit.optimizers import compile_step
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    states = []
    for compiled in (False, True):
        torch.manual_seed(0)
        rule = rules.create("kp")
        net = biocredit.convert(models.create("mlp:2x64:tanh", (1, 8, 8), 10), rule,
                                generator=torch.Generator().manual_seed(1))
        initial = copy.deepcopy(net.state_dict())
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        if compiled:
            compile_step(opt)
        for _ in range(3):
            gradients(net, rule, x, y, amp=False)
            opt.step()
            rule.after_step(net)
        states.append(net.state_dict())
    eager, compiled = states
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-5, atol=1e-6, msg=key)
    moved = [key for key, value in eager.items() if not torch.equal(value, initial[key])]
    assert any(key.endswith(".feedback") for key in moved)     # KP's B took the steps


def test_compiling_the_step_drops_only_dynamos_profiler_note(caplog):
    import logging
    from biocredit.optimizers import compile_step
    compile_step(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1))
    log = logging.getLogger("torch._dynamo.variables.ctx_manager")
    with caplog.at_level(logging.WARNING, logger=log.name):
        log.warning("Profiler record function %s will be ignored", "record_function")
        log.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_a_scheduler_wraps_a_compiled_step_and_forward_ad_runs_through_a_compiled_model(
        can_compile):
    import torch.autograd.forward_ad as fwAD
    from biocredit.optimizers import compile_step
    net = biocredit.convert(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(),
                                                torch.nn.Linear(3, 2)), "fa")
    opt = compile_step(torch.optim.SGD(net.parameters(), lr=0.1))
    schedule = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    x, t = torch.randn(5, 4), torch.ones(5, 4)         # forward mode needs the eager jvp
    with fwAD.dual_level():
        eager = fwAD.unpack_dual(net(fwAD.make_dual(x, t))).tangent
    with fwAD.dual_level():
        compiled = fwAD.unpack_dual(torch.compile(net)(fwAD.make_dual(x, t))).tangent
    torch.testing.assert_close(compiled, eager)


def test_dkp_moved_after_conversion_says_how_to_compile_it_whole(can_compile):
    """DKP makes its feedback's gradient leaf eagerly, once per buffer: after ``.to()``
    replaced the buffer, ``fullgraph=True`` stops with the way out in its reason; one eager
    forward pass later the whole graph compiles and fills ``direct_feedback.grad``."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    net = biocredit.convert(models.create("mlp:6,5:tanh", (1, 4, 4), 3), "dkp",
                            example_input=x[:1])
    net.double()                                        # as .cuda() would: a new buffer
    x = x.double()
    with pytest.raises(Exception, match="run one training forward pass without torch.compile"):
        torch.compile(net, fullgraph=True)(x)
    torch._dynamo.reset()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    net.direct_feedback.grad = None
    torch.nn.functional.cross_entropy(torch.compile(net, fullgraph=True)(x), y).backward()
    assert net.direct_feedback.grad is not None
