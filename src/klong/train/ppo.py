"""One PPO update of progressive RL over the split windows of an iteration's rollouts (the objective: `rl_loss`).

The windows are shuffled and dealt into `minibatches`; each minibatch is one optimizer step, and `ppo_epochs` passes go
over all of them. Log-probabilities are computed at the temperature each window's recorded logprobs were taken at
(`Window.temperature`: the sampling temperature for processed logprobs, 1 for raw ones), so that on the first step
the ratio to the recorded behaviour policy is 1 up to numerics; `first_step_ratio_dev_max` reports how far it is.
Reference log-probabilities (and old ones where the rollout recorded none) are computed once, before the first step.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

import torch

from klong.train.common import row_tensors
from klong.train.data import PackedRow, Window, pack
from klong.train.loss import TokenLoss
from klong.train.rl_loss import PPOStats, ppo_kl_loss, token_weights


class PPOUpdate:
    """`policy` and `reference` are causal LMs on `device`; `config` is the `RLConfig`."""

    def __init__(self, policy, reference, optimizer, config, device: torch.device, *, norm_tokens: int):
        self.policy = TokenLoss(policy, impl="logits_to_keep")
        self.reference = TokenLoss(reference, impl="logits_to_keep")
        self.optimizer = optimizer
        self.config = config
        self.device = device
        self.norm_tokens = norm_tokens
        """C of the `constant` normalisation (`loss_norm_tokens`, default the context window)."""

    def plan(self, windows: list[Window], rng: random.Random) -> list[list[PackedRow]]:
        cfg = self.config
        order = list(windows)
        rng.shuffle(order)
        batches = [order[i :: cfg.minibatches] for i in range(cfg.minibatches) if order[i :: cfg.minibatches]]
        plans = []
        for batch in batches:
            trained = [sum(w.loss_mask[1:]) for w in batch]
            c = token_weights(trained, cfg.loss_norm, constant=self.norm_tokens)
            weights = {(w.trajectory_id, w.window): ci for w, ci in zip(batch, c, strict=True)}
            plans.append([r for r in pack(batch, cfg.pack_length, weights) if r.targets])
        return plans

    def logprobs(self, model: TokenLoss, row: PackedRow, grad: bool) -> torch.Tensor:
        t = row_tensors(row, self.device)
        with torch.set_grad_enabled(grad):
            _, logp = model(t["input_ids"], t["position_ids"], t["positions"], t["targets"],
                            temperature=t["temperatures"])  # fmt: skip
        return logp

    def __call__(self, windows: list[Window], rng: random.Random) -> dict[str, Any]:
        cfg = self.config
        plans = self.plan(windows, rng)
        self.policy.eval()
        with torch.no_grad():  # reference logprobs, and old logprobs where the rollout did not record them
            extra = [[(self.logprobs(self.reference, r, False),
                       self.logprobs(self.policy, r, False) if not any(r.old_logprobs) else None) for r in rows]
                     for rows in plans]  # fmt: skip
        self.policy.train()
        stats: list[PPOStats] = []
        first: list[PPOStats] = []
        grad_norms = []
        for epoch in range(cfg.ppo_epochs):
            for k, (rows, refs) in enumerate(zip(plans, extra, strict=True)):
                self.optimizer.zero_grad(set_to_none=True)
                for row, (ref, recomputed_old) in zip(rows, refs, strict=True):
                    t = row_tensors(row, self.device)
                    logp = self.logprobs(self.policy, row, True)
                    old = recomputed_old if recomputed_old is not None else t["old_logprobs"]
                    loss, s = ppo_kl_loss(logp, old, ref, t["advantages"], t["weights"], eps_low=cfg.eps_low,
                                          eps_high=cfg.eps_high, beta=cfg.beta, kl_estimator=cfg.kl_estimator)  # fmt: skip
                    loss.backward()
                    stats.append(s)
                    if epoch == 0 and k == 0:
                        first.append(s)
                if cfg.max_grad_norm > 0:
                    grad_norms.append(
                        float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm))
                    )
                self.optimizer.step()
        steps = max(1, cfg.ppo_epochs * len(plans))
        tokens = sum(s.tokens for s in stats) or 1
        first_tokens = sum(s.tokens for s in first) or 1
        return {
            "policy_loss": sum(s.policy_loss for s in stats) / steps,
            "kl_loss": sum(s.kl for s in stats) / steps,
            "kl": sum(s.kl_sum for s in stats) / tokens,
            "clip_fraction": sum(s.clip_fraction * s.tokens for s in stats) / tokens,
            "ratio_mean": sum(s.ratio_mean * s.tokens for s in stats) / tokens,
            "first_step_ratio_dev_max": max((s.ratio_dev_max for s in first), default=0.0),
            "first_step_clip_fraction": sum(s.clip_fraction * s.tokens for s in first) / first_tokens,
            "grad_norm": statistics.mean(grad_norms) if grad_norms else 0.0,
            "windows": len(windows),
            "trained_tokens": sum(len(r.targets) for rows in plans for r in rows),
        }
