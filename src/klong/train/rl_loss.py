"""The progressive-RL objective, in the paper's terms, on small tensors (tested against hand-computed values).

For a task, n rollouts get rewards Q_1..Q_n from the judge; rollout j is split into K_j windows by the shared
ContextPolicy. Advantage of every window of rollout j:

    A_j = Q_j - mean(Q over all windows of all n rollouts)      (baseline="windows", the paper's)
        = Q_j - sum_j K_j Q_j / sum_j K_j
    A_j = Q_j - mean_j Q_j                                       (baseline="rollouts")
    optionally divided by the standard deviation of the same population (std_normalize)

Per trained token t of window w, with r_t = exp(logp_t - logp_old_t) the ratio to the sampling policy:

    surrogate_t = min(r_t A_w, clip(r_t, 1 - eps_low, 1 + eps_high) A_w)
    loss        = sum_w sum_{t in w} c_{w,t} ( -surrogate_t + beta kl_t )

The token weights c (`loss_norm`) say how tokens and windows are averaged, over the n x K windows of the batch:

    paper        c = 1 / (n K)                    each window's tokens summed, windows averaged (the paper's formula)
    window_mean  c = 1 / (n K |w|)                tokens averaged within each window, then windows averaged
    token_mean   c = 1 / (sum_w |w|)              every token of the batch counts the same (DAPO)
    constant     c = 1 / (n K C)                  token sums over a constant C (Dr. GRPO; C = `loss_norm_tokens`)

The KL term (`kl_estimator`), with d_t = logp_t - logp_ref_t on tokens sampled from the policy:

    k1 = d_t                      unbiased for KL(policy || ref); as a loss its gradient is zero in expectation
                                  (it only shapes a reward, it does not pull the policy toward the reference)
    k2 = d_t^2 / 2                biased as a value; as a loss its gradient is exactly that of KL(policy || ref)
    k3 = exp(-d_t) + d_t - 1      unbiased for KL(policy || ref) and >= 0 (Schulman's low-variance estimator, GRPO's);
                                  as a loss its gradient is that of KL(ref || policy), the other direction
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

LOSS_NORMS = ("paper", "window_mean", "token_mean", "constant")
KL_ESTIMATORS = ("k1", "k2", "k3")


def rollout_advantages(rewards: Sequence[float], windows: Sequence[int], *, baseline: str = "windows",
                       std_normalize: bool = False, eps: float = 1e-6) -> list[float]:  # fmt: skip
    """Advantage of each rollout's windows, for the n rollouts of one task (`windows[j]` = K_j)."""
    if len(rewards) != len(windows):
        raise ValueError("one window count per rollout is needed")
    if baseline == "windows":
        population = [q for q, k in zip(rewards, windows, strict=True) for _ in range(k)]
    elif baseline == "rollouts":
        population = list(rewards)
    else:
        raise ValueError(f"unknown baseline {baseline!r}")
    if not population:
        return [0.0] * len(rewards)
    mean = sum(population) / len(population)
    adv = [q - mean for q in rewards]
    if std_normalize:
        std = math.sqrt(sum((q - mean) ** 2 for q in population) / len(population))
        adv = [a / (std + eps) for a in adv]
    return adv


def token_weights(trained: Sequence[int], norm: str, *, constant: int | None = None) -> list[float]:
    """The weight c of every token of each window of one batch (`trained[w]` = trained tokens of window w)."""
    n = len(trained)
    if n == 0:
        return []
    if norm == "paper":
        return [1.0 / n] * n
    if norm == "window_mean":
        return [1.0 / (n * max(1, k)) for k in trained]
    if norm == "token_mean":
        return [1.0 / max(1, sum(trained))] * n
    if norm == "constant":
        if not constant or constant <= 0:
            raise ValueError("the constant normalisation needs a positive token count")
        return [1.0 / (n * constant)] * n
    raise ValueError(f"unknown loss normalisation {norm!r}; known: {', '.join(LOSS_NORMS)}")


def kl_penalty(logp_T: torch.Tensor, logp_ref_T: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token KL estimate between the policy and the reference (see the module doc for what each one is)."""
    d_T = logp_T - logp_ref_T
    if estimator == "k1":
        return d_T
    if estimator == "k2":
        return 0.5 * d_T**2
    if estimator == "k3":
        return torch.exp(-d_T) + d_T - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; known: {', '.join(KL_ESTIMATORS)}")


@dataclass
class PPOStats:
    policy_loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float
    ratio_dev_max: float
    """Largest |ratio - 1| over the tokens (on a first PPO step: how far the trainer is from the sampler)."""
    tokens: int
    kl_sum: float
    """Unweighted sum of the per-token KL estimates (for a per-token mean over a batch)."""


def ppo_kl_loss(logp_T: torch.Tensor, logp_old_T: torch.Tensor, logp_ref_T: torch.Tensor, adv_T: torch.Tensor,
                weight_T: torch.Tensor, *, eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.01,
                kl_estimator: str = "k3") -> tuple[torch.Tensor, PPOStats]:  # fmt: skip
    """Sum over tokens of weight_t * (-surrogate_t + beta * kl_t); statistics are weighted the same way."""
    ratio_T = torch.exp(logp_T - logp_old_T)
    unclipped_T = ratio_T * adv_T
    clipped_T = torch.clamp(ratio_T, 1.0 - eps_low, 1.0 + eps_high) * adv_T
    surrogate_T = torch.minimum(unclipped_T, clipped_T)
    kl_T = kl_penalty(logp_T, logp_ref_T, kl_estimator)
    loss = (weight_T * (-surrogate_T + beta * kl_T)).sum()
    with torch.no_grad():
        clipped = ((ratio_T < 1.0 - eps_low) | (ratio_T > 1.0 + eps_high)).float()
        stats = PPOStats(policy_loss=float((weight_T * -surrogate_T).sum()), kl=float((weight_T * kl_T).sum()),
                         clip_fraction=float((weight_T * clipped).sum() / weight_T.sum().clamp_min(1e-30)),
                         ratio_mean=float((weight_T * ratio_T).sum() / weight_T.sum().clamp_min(1e-30)),
                         ratio_dev_max=float((ratio_T - 1).abs().max()) if ratio_T.numel() else 0.0,
                         tokens=int(ratio_T.numel()), kl_sum=float(kl_T.sum()))  # fmt: skip
    return loss, stats
