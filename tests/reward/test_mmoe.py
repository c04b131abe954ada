from __future__ import annotations

import math

import pytest
import torch

from sarm2_gym.reward.mmoe import MMoEHead, routing_aux_losses, top_k_route


def test_top_k_route_picks_and_renormalises() -> None:
    probs = torch.tensor([[0.1, 0.4, 0.3, 0.2], [0.7, 0.1, 0.05, 0.15]])
    idx, w = top_k_route(probs, 2)
    assert idx.tolist() == [[1, 2], [0, 3]]
    torch.testing.assert_close(w, torch.tensor([[4 / 7, 3 / 7], [0.7 / 0.85, 0.15 / 0.85]]))
    idx1, w1 = top_k_route(probs, 1)
    assert idx1.tolist() == [[1], [0]] and w1.tolist() == [[1.0], [1.0]]


def test_aux_losses_hand_computed_and_ignore_padding() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [1.0, 0.0, 0.0]])
    topk = torch.tensor([[0, 1], [2, 1], [0, 1]])
    valid = torch.tensor([True, True, False])  # the last token is padding
    aux = routing_aux_losses(probs, topk, valid)
    # load = (1, 2, 1) / (2 tokens * k=2) = (1/4, 1/2, 1/4) -> population variance 1/72.
    assert aux.balance.item() == pytest.approx(1 / 72)
    # importance = (0.6, 0.6, 0.8) / 2 = (0.3, 0.3, 0.4) -> variance 1/450.
    assert aux.importance.item() == pytest.approx(1 / 450)
    h1 = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    h2 = -(0.1 * math.log(0.1) + 0.3 * math.log(0.3) + 0.6 * math.log(0.6))
    assert aux.entropy.item() == pytest.approx((h1 + h2) / 2)
    total = aux.total(2.5, 0.1, 0.5)
    assert total.item() == pytest.approx(2.5 / 72 + 0.1 / 450 - 0.5 * (h1 + h2) / 2)


def test_aux_losses_uniform_routing_is_zero_variance() -> None:
    probs = torch.full((4, 4), 0.25)
    topk = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])
    aux = routing_aux_losses(probs, topk, torch.ones(4, dtype=torch.bool))
    assert aux.balance.item() == 0.0 and aux.importance.item() == 0.0
    assert aux.entropy.item() == pytest.approx(math.log(4))
    none = routing_aux_losses(probs, topk, torch.zeros(4, dtype=torch.bool))
    assert none.balance.item() == 0.0 and none.entropy.item() == 0.0


def _constant_head() -> MMoEHead:
    """Gate g outputs fixed probabilities; expert e outputs the constant e + 1."""
    head = MMoEHead(
        2, num_gates=2, num_experts=3, top_k=2, expert_hidden=(4,), gate_hidden=4, dropout=0.0
    )
    gate_probs = [torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.3, 0.6])]
    with torch.no_grad():
        for gate, p in zip(head.gates, gate_probs, strict=True):
            gate[-1].weight.zero_()
            gate[-1].bias.copy_(p.log())
        for e, expert in enumerate(head.experts):
            expert[-1].weight.zero_()
            expert[-1].bias.fill_(e + 1.0)
    return head


def test_hard_gate_selection_per_token() -> None:
    head = _constant_head()
    x = torch.randn(1, 3, 2)
    gate_index = torch.tensor([[0, 1, 1]])
    valid = torch.tensor([[True, True, False]])
    out = head(x, gate_index, valid)
    # Gate 0: experts (0, 1) weights (5/8, 3/8) -> 1*5/8 + 2*3/8 = 1.375.
    # Gate 1: experts (2, 1) weights (2/3, 1/3) -> 3*2/3 + 2*1/3 = 8/3. Padding -> 0.
    torch.testing.assert_close(out.output, torch.tensor([[1.375, 8 / 3, 0.0]]))
    assert out.topk_index[0, 0].tolist() == [0, 1] and out.topk_index[0, 1].tolist() == [2, 1]
    torch.testing.assert_close(out.gate_probs[0, 1], torch.tensor([0.1, 0.3, 0.6]))
    torch.testing.assert_close(out.topk_weight.sum(-1), torch.ones(1, 3))


def test_gate_index_out_of_range_raises() -> None:
    head = _constant_head()
    with pytest.raises(ValueError, match="gate_index"):
        head(torch.randn(1, 1, 2), torch.tensor([[2]]), torch.tensor([[True]]))


def test_stacked_eval_path_equals_modules_and_follows_weight_changes() -> None:
    torch.manual_seed(0)
    head = MMoEHead(
        in_dim=12, num_gates=3, num_experts=5, top_k=2, expert_hidden=(8, 6), gate_hidden=7,
        dropout=0.3,
    ).eval()  # fmt: skip
    x = torch.randn(4, 3, 12)
    gate_index = torch.randint(0, 3, (4, 3))
    valid = torch.ones(4, 3, dtype=torch.bool)
    reference = head(x, gate_index, valid).output  # grad enabled: the module path
    with torch.inference_mode():
        fast = head(x, gate_index, valid).output
    torch.testing.assert_close(fast, reference, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # a changed weight must not be scored with stale stacked copies
        head.experts[2][-1].bias.add_(1.0)
        head.gates[1][1].weight.mul_(2.0)
    changed = head(x, gate_index, valid).output  # module path
    assert not torch.allclose(changed, reference)
    with torch.inference_mode():
        fast = head(x, gate_index, valid).output
    torch.testing.assert_close(fast, changed, atol=1e-6, rtol=1e-5)
    # With autograd on, gradients reach the modules' own parameters.
    changed.sum().backward()
    assert head.experts[0][1].weight.grad is not None
