"""The progressive-RL objective, in the paper's terms, on small tensors (tested against hand-computed values).

For a task, n rollouts get rewards Q_1..Q_n from the judge; rollout j is split into K_j windows by the shared
ContextPolicy. Advantage of every window of rollout j:

    A_j = Q_j - mean(Q over all windows of all n rollouts)      (baseline="windows", the paper's)
        = Q_j - sum_j K_j Q_j / sum_j K_j
    A_j = Q_j - mean_j Q_j                                       (baseline="rollouts")
    optionally divided by the standard deviation of the same population (std_normalize)

Per trained token t of window w, with r_t = exp(logp_t - logp_old_t) the ratio to the sampling policy:

    surrogate_t = min(r_t A_w, clip(r_t, 1 - eps_low, 1 + eps_high) A_w)
    kl_t        = exp(logp_ref_t - logp_t) - (logp_ref_t - logp_t) - 1      (the k3 estimator, >= 0)
    loss        = 1/(n K) sum_w  mean_{t in w} ( -surrogate_t + beta kl_t )

i.e. tokens are averaged within a window and windows are averaged over all n x K windows of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


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


@dataclass
class PPOStats:
    policy_loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float


def ppo_kl_loss(logp_T: torch.Tensor, logp_old_T: torch.Tensor, logp_ref_T: torch.Tensor, adv_T: torch.Tensor,
                weight_T: torch.Tensor, *, eps_low: float = 0.2, eps_high: float = 0.2,
                beta: float = 0.01) -> tuple[torch.Tensor, PPOStats]:  # fmt: skip
    """Sum over tokens of weight_t * (-surrogate_t + beta * kl_t).

    With weight_t = 1 / (tokens of t's window x windows in the batch) the sum is the paper's average over windows of
    per-window token means. Statistics are weighted the same way."""
    ratio_T = torch.exp(logp_T - logp_old_T)
    unclipped_T = ratio_T * adv_T
    clipped_T = torch.clamp(ratio_T, 1.0 - eps_low, 1.0 + eps_high) * adv_T
    surrogate_T = torch.minimum(unclipped_T, clipped_T)
    delta_T = logp_ref_T - logp_T
    kl_T = torch.exp(delta_T) - delta_T - 1.0
    loss = (weight_T * (-surrogate_T + beta * kl_T)).sum()
    with torch.no_grad():
        clipped = ((ratio_T < 1.0 - eps_low) | (ratio_T > 1.0 + eps_high)).float()
        stats = PPOStats(policy_loss=float((weight_T * -surrogate_T).sum()), kl=float((weight_T * kl_T).sum()),
                         clip_fraction=float((weight_T * clipped).sum()), ratio_mean=float((weight_T * ratio_T).sum()))  # fmt: skip
    return loss, stats
