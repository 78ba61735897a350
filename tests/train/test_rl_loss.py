"""The RL objective against values computed by hand."""

import math

import pytest
import torch

from klong.train.rl_loss import ppo_kl_loss, rollout_advantages


def test_advantages_with_the_papers_baseline():
    # rewards of 3 rollouts split into 3, 1 and 2 windows: the baseline is the mean over the 6 windows = 4/6
    assert rollout_advantages([1.0, 0.0, 0.5], [3, 1, 2]) == pytest.approx([1 - 4 / 6, -4 / 6, 0.5 - 4 / 6])
    assert rollout_advantages([1.0, 0.0, 0.5], [3, 1, 2], baseline="rollouts") == pytest.approx([0.5, -0.5, 0.0])
    # population std over the windows: deviations 1/3 (x3), -2/3, -1/6 (x2) -> variance 15/108
    std = math.sqrt(15 / 108)
    assert rollout_advantages([1.0, 0.0, 0.5], [3, 1, 2], std_normalize=True) == pytest.approx(
        [(1 / 3) / std, (-2 / 3) / std, (-1 / 6) / std], rel=1e-5
    )
    assert rollout_advantages([1.0, 1.0], [2, 5]) == [0.0, 0.0]


def test_clipping_on_both_sides_kl_and_window_averaging():
    # two windows: w1 has 2 tokens, w2 has 3 tokens; n x K = 2 windows -> token weights 1/(2*2) and 1/(3*2)
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.0], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0], dtype=torch.float64)
    old = torch.log(torch.tensor([0.2, 0.4, 0.1, 0.3, 0.5], dtype=torch.float64))
    new = (old + torch.log(ratio)).requires_grad_()
    ref = old + torch.tensor([0.0, 0.1, -0.2, 0.3, 0.0], dtype=torch.float64)
    weights = torch.tensor([1 / 4, 1 / 4, 1 / 6, 1 / 6, 1 / 6], dtype=torch.float64)
    loss, stats = ppo_kl_loss(new, old, ref, adv, weights, eps_low=0.2, eps_high=0.2, beta=0.1)
    # surrogate: r=1.5,A=1 -> clipped 1.2; r=0.5,A=1 -> 0.5 (min keeps the unclipped);
    #            r=1.5,A=-1 -> -1.5 (unclipped is smaller); r=0.5,A=-1 -> clipped -0.8; r=1,A=2 -> 2
    surrogate = [1.2, 0.5, -1.5, -0.8, 2.0]
    deltas = (ref - new).detach().tolist()
    kl = [math.exp(d) - d - 1 for d in deltas]
    w = weights.tolist()
    expected = sum(wi * (-s + 0.1 * k) for wi, s, k in zip(w, surrogate, kl, strict=True))
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert stats.kl == pytest.approx(sum(wi * k for wi, k in zip(w, kl, strict=True)))
    assert stats.clip_fraction == pytest.approx(1 / 4 + 1 / 4 + 1 / 6 + 1 / 6)  # every ratio but the last is outside
    assert all(k >= 0 for k in kl)
    loss.backward()
    # clipped tokens pass no policy gradient, only the KL term's
    grad_kl_only = [0.1 * wi * (1 - math.exp(d)) for wi, d in zip(w, deltas, strict=True)]
    assert float(new.grad[0]) == pytest.approx(grad_kl_only[0])
    assert float(new.grad[3]) == pytest.approx(grad_kl_only[3])
    # unclipped: d/dlogp of -(r A) = -r A
    assert float(new.grad[1]) == pytest.approx(w[1] * -0.5 * 1.0 + grad_kl_only[1])
    assert float(new.grad[4]) == pytest.approx(w[4] * -1.0 * 2.0 + grad_kl_only[4])
