"""Warm starts for bottlenecks (snn_egru.bottleneck_insert): a trained plain stack written
into a bottlenecked one (copies exact, the next layer's input a rank-limited version of the
plain one's, every kind), bad pairs refused; the sweep's ``--warm-start`` (parents first,
keys, labels, shards, a missing parent) and a tiny warm-started point end to end."""

from __future__ import annotations

import json

import pytest
import torch

from snn_egru.bottleneck import BottleneckError, insert_bottlenecks
from snn_egru.bottleneck_insert import EGRU_Z_BIAS, init_from_plain
from snn_egru.errors import UserError
from snn_egru.models.lm import EGRULanguageModel, lm_preset


def _plain(seed: int = 0, sizes=(24, 16), **overrides) -> EGRULanguageModel:
    config = lm_preset("tiny", vocab_size=20, hidden_sizes=sizes, threshold_value=0.0,
                       dropconnect=0.0, **overrides)  # fmt: skip
    torch.manual_seed(seed)
    return EGRULanguageModel(config).eval()


def _bottlenecked(kind: str, k: int, sizes=(24, 16)) -> EGRULanguageModel:
    stack = insert_bottlenecks(sizes, {0: k})
    config = lm_preset(
        "tiny",
        vocab_size=20,
        hidden_sizes=stack.hidden_sizes,
        bottleneck_layers=stack.bottleneck_layers,
        bottleneck_kind=kind,
        threshold_value=0.0,
        dropconnect=0.0,
    )
    torch.manual_seed(99)
    return EGRULanguageModel(config).eval()


def _low_rank(plain: EGRULanguageModel, rank: int) -> torch.Tensor:
    """Make layer 1's input weights exactly rank ``rank`` (returns them)."""
    w = plain.rnn.weight_ih_l1
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    low = (u[:, :rank] * s[:rank]) @ vh[:rank]
    with torch.no_grad():
        w.copy_(low.to(w.dtype))
    return w.detach().clone()


@pytest.mark.parametrize(("kind", "k", "rank"), [("ff", 6, 3), ("egru", 7, 3), ("dense", 4, 4)])
def test_copies_are_exact_and_the_next_layer_sees_the_plain_input(kind, k, rank):
    plain = _plain()
    w = _low_rank(plain, rank)
    model = _bottlenecked(kind, k)
    ranks = init_from_plain(plain, model, alpha=1e-3)
    assert ranks == {0: rank}
    rnn, old = model.rnn, plain.rnn
    # the plain layers (expanded indices 0 and 2), embedding and decoder bias: copied exactly
    for new, was in ((0, 0), (2, 1)):
        for name in ("weight_hh", "bias_ih", "bias_hh"):
            assert torch.equal(getattr(rnn, f"{name}_l{new}"), getattr(old, f"{name}_l{was}"))
        assert torch.equal(rnn.threshold(new), old.threshold(was))
    assert torch.equal(rnn.weight_ih_l0, old.weight_ih_l0)
    assert torch.equal(model.embedding.weight, plain.embedding.weight)
    assert torch.equal(model.decoder_bias, plain.decoder_bias)
    # the bottleneck's candidate and the next layer's read-back: W' y(x) ~= W x
    x = torch.rand(50, 24, dtype=torch.float64) * (torch.rand(50, 24) < 0.3)
    w_n = rnn.weight_ih_l1[2 * k :].double()
    n = torch.tanh(x @ w_n.T + rnn.bias_ih_l1[2 * k :].double())
    y = n if kind == "dense" else torch.relu(n)
    got = y @ rnn.weight_ih_l2.double().T
    want = x @ w.double().T
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    if kind == "egru":  # starts without memory: z ~= 0.018, no recurrence
        assert torch.all(rnn.bias_ih_l1[k : 2 * k] == -EGRU_Z_BIAS)
        assert not rnn.weight_hh_l1.any() and not rnn.weight_ih_l1[: 2 * k].any()
        assert k % 2 == 1 and not rnn.weight_ih_l1[3 * k - 1].any()  # the odd unit: silent
    if kind in ("ff", "dense"):  # the fixed entries of a constrained kind are still fixed
        assert not rnn.weight_hh_l1.any() and not rnn.weight_ih_l1[: 2 * k].any()


def test_the_whole_model_starts_close_to_the_plain_one():
    """With the rank of the plain stack's input weights the bottlenecked model's log-probs
    follow the plain model's (alpha small: tanh nearly linear)."""
    plain = _plain()
    _low_rank(plain, 3)
    model = _bottlenecked("ff", 6)
    init_from_plain(plain, model, alpha=1e-3)
    tokens = torch.randint(0, 20, (9, 2), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = plain(tokens).layer_outputs[-1]
        b = model(tokens).layer_outputs[-1]
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize(
    ("plain_sizes", "match"),
    [((20, 16), "give the plain stack's trained weights"), ((24, 16, 16), "give the plain")],
)
def test_mismatched_plain_models_are_refused(plain_sizes, match):
    with pytest.raises(BottleneckError, match=match):
        init_from_plain(_plain(sizes=plain_sizes), _bottlenecked("ff", 6))


def test_a_bottlenecked_start_and_a_plain_target_are_refused():
    with pytest.raises(BottleneckError, match="already has bottleneck layers"):
        init_from_plain(_bottlenecked("ff", 6), _bottlenecked("ff", 6))
    with pytest.raises(BottleneckError, match="has no bottleneck layers"):
        init_from_plain(_plain(), _plain())
    with pytest.raises(BottleneckError, match="alpha must be > 0"):
        init_from_plain(_plain(), _bottlenecked("ff", 6), alpha=0.0)


# --------------------------------------------------------------------------- the sweep
def test_warm_start_points_parents_keys_and_shards():
    from snn_egru.sweep.grid import Grid, SweepPoint

    settings = {"task": "lm", "cells": ("egru",), "widths": (64,), "layers": (2,)}
    cold = Grid(**settings, bottlenecks=(0, 4), steps=(500,)).points()
    grid = Grid(**settings, bottlenecks=(0, 4), steps=(300,), warm_start=500)
    parent, plain, narrow = grid.points()
    assert parent.key == cold[0].key  # the parent is the ordinary from-scratch point
    assert plain.parent() == parent and narrow.parent() == parent
    assert plain.settings()["warm_start"] == 500 and "warm_start" not in parent.settings()
    assert plain.budget == 800 and "1000" not in plain.label() and "500+300 steps" in plain.label()
    assert SweepPoint.from_settings(narrow.settings()) == narrow
    # slices are cut from the grid's own points, each with its parent
    assert [p.key for p in grid.shard(1, 2)] == [parent.key, plain.key]
    assert [p.key for p in grid.shard(2, 2)] == [parent.key, narrow.key]
    with pytest.raises(UserError, match="only 2 points"):
        grid.shard(1, 3)
    with pytest.raises(UserError, match="--task lm --cells egru"):
        Grid(task="lm", cells=("egru", "gru"), widths=(64,), warm_start=10)
    with pytest.raises(UserError, match="must be >= 0"):
        Grid(**settings, warm_start=-1)


def _tiny_args(out, *extra):
    return [
        "run", "--task", "lm", "--cells", "egru", "--widths", "16", "--layers", "2",
        "--layer-per-chip", "--chips", "2", "--steps", "3", "--preset", "tiny",
        "--data", "cyclic", "--test-tokens", "200", "--chip-tokens", "100", "--threads", "1",
        "--out", str(out), "--recipe", "threshold_value=0.0", *extra,
    ]  # fmt: skip


def test_a_tiny_warm_started_point_trains_from_its_parent(tmp_path, capsys):
    from snn_egru.sweep.cli import main
    from snn_egru.sweep.grid import Grid
    from snn_egru.sweep.runner import model_path

    out = tmp_path / "s"
    extra = ["--bottlenecks", "0,4", "--bottleneck-kind", "ff", "--warm-start", "2"]
    assert main(_tiny_args(out, *extra)) == 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / "points").glob("*.json")}
    assert len(records) == 3  # the parent, its continuation and the bottlenecked point
    warm = [r for r in records.values() if r["settings"].get("warm_start") == 2]
    assert {r["settings"].get("bottleneck", 0.0) for r in warm} == {0.0, 4.0}
    for r in warm:
        assert r["steps_done"] == 3 and r["status"] == "done"
    narrow = next(r for r in warm if r["settings"].get("bottleneck"))
    assert narrow["model_config"]["hidden_sizes"] == [16, 4, 16]
    assert "2+3 steps" in narrow["label"]
    # a parent whose result is cached but whose weights are gone: a user error naming it
    grid = Grid(task="lm", cells=("egru",), widths=(16,), layers=(2,), warm_start=2,
                steps=(3,), preset="tiny", data="cyclic", test_tokens=200, chip_tokens=100,
                chips=2, layer_per_chip=True, recipe=(("threshold_value", 0.0),))  # fmt: skip
    parent, child = grid.points()
    model_path(out, parent).unlink()
    (out / "points" / f"{child.key}.json").unlink()
    capsys.readouterr()
    assert main(_tiny_args(out, "--warm-start", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "starts from the trained weights of" in err[-1] and parent.key in err[-1], err
    assert "run that point first" in err[-1]
