"""Magnitude pruning: masks, schedules, enforcement through AdamW steps, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snn_egru.pruning import (
    Pruner,
    PruningConfig,
    cubic_sparsity,
    magnitude_mask,
    matrix_sparsity,
    prune_model,
    select_prunable,
)
from snn_egru.training.common import load_checkpoint, make_optimizer, save_checkpoint


class ToyStack(nn.Module):
    """Parameter names as in EGRULanguageModel: embedding, rnn.weight_*_l{k}, decoder bias."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 6)
        self.rnn = nn.Module()
        self.rnn.weight_ih_l0 = nn.Parameter(torch.randn(12, 6))
        self.rnn.weight_hh_l0 = nn.Parameter(torch.randn(12, 4))
        self.rnn.bias_ih_l0 = nn.Parameter(torch.randn(12))
        self.decoder_bias = nn.Parameter(torch.zeros(11))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        g = x @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0
        h = torch.tanh(g[..., :4]) @ self.rnn.weight_hh_l0.T
        return (h[..., :6] @ self.embedding.weight.T + self.decoder_bias).logsumexp(-1).mean()


def test_cubic_schedule_golden_values():
    kw = dict(initial=0.0, final=0.8, start=10, end=20)
    assert cubic_sparsity(0, **kw) == 0.0
    assert cubic_sparsity(10, **kw) == 0.0
    assert cubic_sparsity(15, **kw) == pytest.approx(0.8 * (1 - 0.5**3))  # 0.7
    assert cubic_sparsity(20, **kw) == 0.8
    assert cubic_sparsity(99, **kw) == 0.8
    values = [cubic_sparsity(t, **kw) for t in range(10, 21)]
    assert values == sorted(values)


def test_magnitude_mask_hand_case_and_exact_counts():
    w = torch.tensor([[0.1, -3.0], [2.0, -0.05]])
    assert magnitude_mask(w, 0.5).tolist() == [[False, True], [True, False]]
    assert magnitude_mask(w, 0.0).all()
    assert not magnitude_mask(w, 1.0).any()
    ties = torch.ones(10, 10)
    assert int(magnitude_mask(ties, 0.95).sum()) == 5
    with pytest.raises(ValueError, match="sparsity must lie"):
        magnitude_mask(w, 1.5)


def test_selection_excludes_embedding_and_decoder_by_default():
    model = ToyStack()
    assert list(select_prunable(model)) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    both = select_prunable(model, include=("*weight*",), exclude=())
    assert list(both) == ["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    with pytest.raises(ValueError, match="nothing to prune"):
        prune_model(model, 0.5, include=("nothing*",))


def test_one_shot_masks_survive_adamw_with_weight_decay():
    torch.manual_seed(0)
    model = ToyStack()
    embedding_before = model.embedding.weight.detach().clone()
    pruner = Pruner(model, config=PruningConfig(target_sparsity=0.75, schedule="one_shot"))
    optimizer = make_optimizer(model, lr=0.05, weight_decay=0.5)
    tokens = torch.randint(0, 11, (5, 3))
    first_masks = None
    for step in range(1, 16):
        optimizer.zero_grad()
        model(tokens).backward()
        # the pruned weights do get gradients: only the mask keeps them at zero
        assert model.rnn.weight_hh_l0.grad.abs().sum() > 0
        optimizer.step()
        pruner.step(step)
        if first_masks is None:
            first_masks = {k: v.clone() for k, v in pruner.masks.items()}
        for name, param in pruner.params.items():
            assert torch.all(param[~first_masks[name]] == 0.0)
            assert torch.count_nonzero(param) == int(first_masks[name].sum())
            assert matrix_sparsity(param) == pytest.approx(0.75)
    assert all(torch.equal(first_masks[k], pruner.masks[k]) for k in first_masks)
    assert matrix_sparsity(model.embedding.weight) == 0.0
    assert not torch.equal(model.embedding.weight, embedding_before)  # it trained, unpruned


def test_gradual_schedule_grows_masks_monotonically_to_the_target():
    torch.manual_seed(1)
    model = ToyStack()
    config = PruningConfig(target_sparsity=0.9, start_step=2, end_step=12, frequency=3)
    pruner = Pruner(model, config=config)
    optimizer = make_optimizer(model, lr=0.01, weight_decay=0.1)
    previous = {k: v.clone() for k, v in pruner.masks.items()}
    changes = []
    tokens = torch.randint(0, 11, (4, 2))
    for step in range(1, 15):
        optimizer.zero_grad()
        model(tokens).backward()
        optimizer.step()
        if pruner.step(step):
            changes.append(step)
            expected = cubic_sparsity(step, initial=0.0, final=0.9, start=2, end=12)
            for param in pruner.params.values():
                assert matrix_sparsity(param) == pytest.approx(
                    round(expected * param.numel()) / param.numel()
                )
        for name, mask in pruner.masks.items():
            assert not torch.any(mask & ~previous[name]), "a pruned weight came back"
            previous[name] = mask.clone()
    # update steps: start + k * frequency below end (step 2 has sparsity 0: no change), end
    assert changes == [5, 8, 11, 12]
    assert all(s == pytest.approx(0.9, abs=0.01) for s in pruner.sparsity().values())


def test_pruner_state_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(2)
    model = ToyStack()
    pruner = Pruner(model, config=PruningConfig(target_sparsity=0.5, schedule="one_shot"))
    pruner.step(0)
    save_checkpoint(tmp_path / "c.pt", model=model, extra={"pruner": pruner.state_dict()})
    checkpoint = load_checkpoint(tmp_path / "c.pt")
    fresh = ToyStack()
    fresh_pruner = Pruner(fresh, config=PruningConfig(target_sparsity=0.5, schedule="one_shot"))
    fresh_pruner.load_state_dict(checkpoint.extra["pruner"])
    assert fresh_pruner.current_sparsity == 0.5
    for name in pruner.masks:
        assert torch.equal(fresh_pruner.masks[name], pruner.masks[name])
        assert torch.all(fresh_pruner.params[name][~pruner.masks[name]] == 0)
    # already at the target: no further change, masks still enforced
    assert fresh_pruner.step(5) is False
    bad = dict(checkpoint.extra["pruner"], masks={"rnn.weight_ih_l0": torch.ones(12, 6)})
    with pytest.raises(ValueError, match="pruner state covers"):
        fresh_pruner.load_state_dict(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target_sparsity=1.0), "target_sparsity must lie"),
        (dict(schedule="random"), "schedule must be"),
        (dict(start_step=10, end_step=5), "end_step"),
        (dict(frequency=0), "frequency must be"),
        (dict(target_sparsity=0.5, initial_sparsity=0.6), "initial_sparsity"),
    ],
)
def test_bad_pruning_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PruningConfig(**kwargs)
