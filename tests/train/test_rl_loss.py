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


def test_normalisations_weigh_tokens_as_named():
    from klong.train.rl_loss import token_weights

    trained = [2, 3]  # two windows (n x K = 2) with 2 and 3 trained tokens
    assert token_weights(trained, "paper") == pytest.approx([1 / 2, 1 / 2])  # sum per window, / nK
    assert token_weights(trained, "window_mean") == pytest.approx([1 / 4, 1 / 6])  # mean per window, / nK
    assert token_weights(trained, "token_mean") == pytest.approx([1 / 5, 1 / 5])  # every token alike
    assert token_weights(trained, "constant", constant=10) == pytest.approx([1 / 20, 1 / 20])  # / (nK C)
    with pytest.raises(ValueError, match="unknown loss normalisation"):
        token_weights(trained, "mean")
    # the paper's loss on two windows, by hand: 1/(nK) sum_w sum_t (-A_w) at ratio 1, beta 0
    logp = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, 1.0, -2.0, -2.0, -2.0], dtype=torch.float64)
    w = torch.tensor([1 / 2] * 5, dtype=torch.float64)
    loss, _ = ppo_kl_loss(logp, logp.detach(), logp.detach(), adv, w, beta=0.0)
    assert float(loss) == pytest.approx(-(1 / 2) * (1 + 1) - (1 / 2) * (-2 - 2 - 2))


def test_kl_estimators_values_and_gradients():
    from klong.train.rl_loss import kl_penalty

    d = [0.5, -0.3, 0.0, 1.2]  # logp - logp_ref
    logp = torch.tensor(d, dtype=torch.float64, requires_grad=True)
    ref = torch.zeros(4, dtype=torch.float64)
    expected = {"k1": d, "k2": [x * x / 2 for x in d], "k3": [math.exp(-x) + x - 1 for x in d]}
    # d/dlogp of each: k1 -> 1 (zero in expectation under the policy), k2 -> d (the gradient of KL(policy||ref)),
    # k3 -> 1 - exp(-d) (the gradient of KL(ref||policy))
    grads = {"k1": [1.0] * 4, "k2": d, "k3": [1 - math.exp(-x) for x in d]}
    for name in ("k1", "k2", "k3"):
        logp.grad = None
        value = kl_penalty(logp, ref, name)
        assert value.tolist() == pytest.approx(expected[name])
        value.sum().backward()
        assert logp.grad.tolist() == pytest.approx(grads[name])
    assert all(x >= 0 for x in expected["k3"])
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(logp, ref, "k4")


def test_k3_is_unbiased_for_kl_policy_ref_and_its_gradient_is_that_of_kl_ref_policy():
    """Exact expectations over a 3-token distribution (no sampling noise)."""
    from klong.train.rl_loss import kl_penalty

    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 0.4, -0.1], dtype=torch.float64), 0)
    logp = torch.log_softmax(theta, 0)
    p = logp.exp().detach()
    kl_pr = (p * (logp.detach() - ref)).sum()
    assert float((p * kl_penalty(logp.detach(), ref, "k3")).sum()) == pytest.approx(float(kl_pr))
    assert float((p * kl_penalty(logp.detach(), ref, "k1")).sum()) == pytest.approx(float(kl_pr))
    # surrogate gradient: E_{a~p}[grad k(a)] with the samples' distribution held fixed
    for name, target in (
        ("k3", lambda lp: (ref.exp() * (ref - lp)).sum()),
        ("k2", lambda lp: (lp.exp() * (lp - ref)).sum()),
    ):
        g_est = torch.autograd.grad((p * kl_penalty(torch.log_softmax(theta, 0), ref, name)).sum(), theta)[0]
        g_true = torch.autograd.grad(target(torch.log_softmax(theta, 0)), theta)[0]
        assert torch.allclose(g_est, g_true, atol=1e-12), name
