"""Data-parallel training on torch.distributed (gloo, 2 processes on this CPU): the same
weights and feedback as one process with the whole batch, the same on every rank."""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import biocredit
from biocredit import distributed
from biocredit.cli import main
from biocredit.distributed import Ranks
from biocredit.losses import create as create_loss
from biocredit.training.loop import check_shards, evaluate, train_epoch

RULES = ("bp", "fa", "dfa", "kp", "dkp")
EXAMPLES, BATCH, EPOCHS = 37, 16, 2      # last batch of 5: ranks take 3 and 2 examples


def tiny_model(rule: str, feedback_seed: int = 1) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8),
                          nn.Tanh(), nn.Linear(8, 3))
    return biocredit.convert(model, rule, generator=torch.Generator().manual_seed(feedback_seed))


def train(rule: str, ranks: Ranks) -> tuple[dict, float]:
    """EPOCHS epochs of the library's loop; the state dict and the last epoch's loss."""
    net = tiny_model(rule)
    x, y = data()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.05)
    forward = distributed.data_parallel(net, torch.device("cpu")) if ranks.parallel else net
    order = torch.Generator().manual_seed(4)
    rule_obj = biocredit.conversion_of(net).rule
    for _ in range(EPOCHS):
        loss = train_epoch(net, rule_obj, x, y, create_loss("ce"), optimizer, BATCH, order,
                           forward=forward, ranks=ranks)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, loss


def user_loop(rule: str, ranks: Ranks) -> dict:
    """A researcher's own loop: the converted model in DDP, the rule's feedback step hooked
    to the optimizer through the wrapper, each rank on its half of every batch of 8."""
    net = tiny_model(rule)
    model = distributed.data_parallel(net, torch.device("cpu")) if ranks.parallel else net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    biocredit.hook_optimizer(model, optimizer)
    g = torch.Generator().manual_seed(6)
    for _ in range(4):
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        if ranks.parallel:
            x, y = x.chunk(ranks.world)[ranks.rank], y.chunk(ranks.world)[ranks.rank]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def evaluations(ranks: Ranks) -> list[tuple[float, float]]:
    """A model evaluated on 37 examples, split between the ranks, and by each rank alone
    (as the run's probe batch is): both are the numbers of one process."""
    net, (x, y) = tiny_model("fa"), data()
    return [evaluate(net, x, y, create_loss("ce"), batch_size=10, ranks=ranks),
            evaluate(net, x, y, create_loss("ce"), batch_size=10)]


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(EXAMPLES, 6, generator=g), torch.randint(0, 3, (EXAMPLES,), generator=g)


def worker(rank: int, world: int, store: str, results: str) -> None:
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world)
    try:
        ranks = distributed.current()
        out = {rule: train(rule, ranks) for rule in RULES}
        out["own loop"] = {rule: user_loop(rule, ranks) for rule in ("kp", "dkp")}
        out["evaluations"] = evaluations(ranks)
        try:            # feedback drawn from another seed on rank 1: refused, naming it
            distributed.check_same_on_every_rank(tiny_model("fa", feedback_seed=1 + rank))
            out["mismatch"] = None
        except RuntimeError as err:
            out["mismatch"] = str(err)
        torch.save(out, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker, args=(r, 2, str(folder / "store"), str(folder)))
                 for r in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=300)
    assert [p.exitcode for p in processes] == [0, 0]
    return [torch.load(folder / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("rule", RULES)
def test_two_processes_match_one_with_the_whole_batch(two_ranks, rule, one_thread):
    single, single_loss = train(rule, Ranks())
    for rank in range(2):
        state, loss = two_ranks[rank][rule]
        assert loss == pytest.approx(single_loss, rel=1e-5)
        for key, value in single.items():
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # every rank holds bit for bit the same weights and feedback (learned feedback included)
    for key, value in two_ranks[0][rule][0].items():
        assert torch.equal(two_ranks[1][rule][0][key], value), key
    # and training moved them: the comparison is not between two untouched models
    untrained = tiny_model(rule)
    untrained(torch.zeros(2, 6))            # (direct feedback is drawn at the first forward)
    moved = ["5.weight"] + {"kp": ["5.feedback"], "dkp": ["direct_feedback"]}.get(rule, [])
    for key in moved:
        assert not torch.equal(single[key], untrained.state_dict()[key]), key


@pytest.mark.parametrize("rule", ["kp", "dkp"])
def test_a_converted_model_in_ddp_in_a_users_own_loop(two_ranks, rule, one_thread):
    single = user_loop(rule, Ranks())
    for rank in range(2):
        for key, value in single.items():
            torch.testing.assert_close(two_ranks[rank]["own loop"][rule][key], value,
                                       rtol=1e-5, atol=1e-6, msg=key)


def test_evaluations_split_between_ranks_or_on_one_alone_match_one_process(two_ranks):
    single = evaluations(Ranks())[0]
    for rank in range(2):
        split, alone = two_ranks[rank]["evaluations"]
        assert split == pytest.approx(single, rel=1e-6)     # (float32 means of other slices)
        assert alone == single                                # nothing summed over the ranks


def test_feedback_drawn_differently_on_a_rank_is_refused(two_ranks):
    for rank in range(2):
        message = two_ranks[rank]["mismatch"]
        assert message and "rank 1 holds other values than rank 0" in message
        assert "1.feedback" in message or "3.feedback" in message


def test_every_rank_needs_an_example_of_every_batch():
    check_shards(37, 16, Ranks(0, 5))                 # last batch 5: one each
    with pytest.raises(ValueError, match="last batch has 5"):
        check_shards(37, 16, Ranks(0, 6))


def test_torchrun_runs_train_only(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["compare", "--rules", "bp,fa"]) == 2
    assert "torchrun starts data-parallel training: biocredit train" in capsys.readouterr().err


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2", "-m", "biocredit"]
COMMON = ["train", "--rule", "dkp", "--data", "digits", "--train-size", "300",
          "--test-size", "100", "--batch-size", "50", "--quiet"]


def cli(argv: list[str], torchrun: bool, cwd: Path) -> None:
    command = (TORCHRUN if torchrun else [sys.executable, "-m", "biocredit"]) + argv
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_train_matches_one_process_and_resumes(tmp_path):
    """``torchrun --nproc-per-node 2 -m biocredit train`` trains as one process does with
    the same (global) batch size; rank 0 alone writes; a resumed run goes on as if it had
    not stopped."""
    cli(COMMON + ["--epochs", "2", "--out", str(tmp_path / "one")], False, tmp_path)
    cli(COMMON + ["--epochs", "1", "--out", str(tmp_path / "two")], True, tmp_path)
    cli(["train", "--resume", str(tmp_path / "two"), "--epochs", "2", "--quiet"], True,
        tmp_path)
    one, two = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)
        assert a["test_error"] == b["test_error"] and a["train_error"] == b["train_error"]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    assert summary["epochs_completed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    shutil.rmtree(tmp_path / "one")


def test_torchrun_setup_error_is_told_once_and_leaves_no_folder(tmp_path):
    command = TORCHRUN + COMMON + ["--train-size", "65", "--batch-size", "64", "--out", "x"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert done.stderr.count("biocredit: error: 2 processes share batches of 64 over 65 "
                             "examples, whose last batch has 1") == 1, done.stderr[-3000:]
    assert "rank 1" not in done.stderr
    assert not (tmp_path / "x").exists()
