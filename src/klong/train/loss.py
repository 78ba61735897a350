"""Token losses at the trained positions only, three ways that compute the same thing.

- `fused` (default): the decoder's hidden states are taken at the trained positions only and go through the output
  layer and cross-entropy in chunks, with the gradient computed chunk by chunk: neither `T x vocab` nor even
  `K x vocab` logits are ever held (K = trained positions). Liger's fused kernel is used instead on CUDA when
  `liger-kernel` is installed.
- `logits_to_keep`: the model's own forward with `logits_to_keep` = the trained positions (`K x vocab` logits).
- `full`: plain transformers, full `T x vocab` logits, then the trained positions (the reference, for tests and
  benchmarks).

All return the per-target cross-entropy (and log-probabilities of the targets, for RL) in target order.

Under several processes the loss must run inside the distributed wrapper's forward: DDP synchronises gradients only
for a forward it ran, FSDP gathers the root parameters (embeddings, final norm, output layer) only in the root
module's forward, and ZeRO-3 gathers a parameter only inside its module's forward or the forward of a module it is
registered with. `TokenLoss` is that module: the model and its loss as one `nn.Module`, given to `accelerator.prepare`;
the fused path's direct use of the output layer's weight is registered with it for ZeRO-3.
"""

from __future__ import annotations

import torch


def _base(model):
    if hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        raise TypeError(
            "target_logprobs got a distributed wrapper: give `TokenLoss(model)` to the wrapper and call that instead, "
            "so that the wrapper's forward runs (gradient synchronisation, parameter gathering)"
        )
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "_orig_mod", base)  # torch.compile


def _decoder_and_head(model):
    base = _base(model)
    head = base.get_output_embeddings()
    decoder = base.get_decoder()
    if head is None or decoder is None or getattr(head, "bias", None) is not None:
        return None
    if getattr(base.config, "final_logit_softcapping", None) or getattr(base.config, "logit_scale", None):
        return None
    return decoder, head


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Weighted cross-entropy of `hidden @ weight.T` without materialising the logits (gradients computed in chunks
    during the forward pass, as Liger's fused kernel does)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, weights, chunk):
        acc = torch.promote_types(hidden.dtype, torch.float32)  # at least fp32 for the softmax and the sums
        total = torch.zeros((), dtype=acc, device=hidden.device)
        grad_h = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_w = torch.zeros_like(weight, dtype=acc) if weight.requires_grad else None
        logps = torch.empty(hidden.shape[0], dtype=acc, device=hidden.device)
        for s in range(0, hidden.shape[0], chunk):
            h = hidden[s : s + chunk]
            t = targets[s : s + chunk]
            w = weights[s : s + chunk].to(acc)
            logits = (h @ weight.T).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            target_logit = logits.gather(1, t[:, None]).squeeze(1)
            logps[s : s + chunk] = target_logit - lse
            total += (w * (lse - target_logit)).sum()
            if grad_h is not None or grad_w is not None:
                g = torch.softmax(logits, dim=-1)
                g.scatter_add_(1, t[:, None], -torch.ones_like(t[:, None], dtype=g.dtype))
                g *= w[:, None]
                if grad_h is not None:
                    grad_h[s : s + chunk] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
                if grad_w is not None:
                    grad_w += g.T @ h.to(acc)
        ctx.save_for_backward(
            grad_h if grad_h is not None else torch.empty(0), grad_w if grad_w is not None else torch.empty(0)
        )
        ctx.has = (grad_h is not None, grad_w is not None)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(logps)
        return total, logps

    @staticmethod
    def backward(ctx, grad_total, grad_logps):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_total.to(grad_h.dtype) if ctx.has[0] else None
        gw = (grad_w * grad_total).to(ctx.weight_dtype) if ctx.has[1] else None
        return gh, gw, None, None, None


def target_logprobs(model, input_ids: torch.Tensor, position_ids: torch.Tensor, positions: torch.Tensor,
                    targets: torch.Tensor, *, impl: str = "fused", chunk: int = 4096,
                    weights: torch.Tensor | None = None, temperature: float | torch.Tensor = 1.0,
                    need_logprobs: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """(weighted sum of cross-entropy, log-probability of each target) for one packed row (batch of 1).

    `positions` index the sequence; `targets` are the tokens they predict; `weights` scale each target's loss (the
    log-probabilities are returned unweighted, and differentiable except under `fused`, where RL uses the
    `logits_to_keep` path). `temperature` divides the logits (RL: the temperature the recorded logprobs are at; a
    number or one per target; non-fused paths only). Without `need_logprobs` the fused path may use Liger's kernel
    and returns None for them."""
    _base(model)
    weights = weights if weights is not None else torch.ones_like(targets, dtype=torch.float32)
    scaled = not (isinstance(temperature, int | float) and temperature == 1.0)
    if impl == "fused" and scaled:
        raise ValueError("the fused path computes temperature-1 log-probabilities; use logits_to_keep")
    parts = _decoder_and_head(model) if impl == "fused" else None
    if impl == "fused" and parts is not None:
        decoder, head = parts
        hidden = decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state[
            0, positions
        ]
        liger = _liger(input_ids.device) if not need_logprobs else None
        if liger is not None and weights.eq(1).all():
            loss, *_ = liger.apply(hidden, head.weight, targets, None, None, -100, 0.0, 0.0, "sum")
            return loss, None
        return ChunkedLinearCrossEntropy.apply(hidden, head.weight, targets, weights, chunk)
    if impl in ("fused", "logits_to_keep"):
        logits = model(
            input_ids=input_ids, position_ids=position_ids, use_cache=False, logits_to_keep=positions
        ).logits[0]
    elif impl == "full":
        logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits[0, positions]
    else:
        raise ValueError(f"unknown loss implementation {impl!r}")
    logits = logits.float()
    if scaled:
        temp = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        logits = logits / (temp[:, None] if temp.ndim else temp)
    logps = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    return -(weights * logps).sum(), logps


class TokenLoss(torch.nn.Module):
    """A causal LM and `target_logprobs` as one module: what SFT and RL give to `accelerator.prepare`, so that the
    distributed wrapper's forward is the one that runs (see the module doc). `model` stays reachable as `.model`."""

    def __init__(self, model, *, impl: str = "fused", chunk: int = 4096):
        super().__init__()
        self.model = model
        self.impl = impl
        self.chunk = chunk
        base = _base(model)
        no_split = getattr(base, "_no_split_modules", None)
        if no_split:  # FSDP's transformer auto-wrap policy reads the layer classes from the module it wraps
            self._no_split_modules = list(no_split)

    def register_zero3(self) -> None:
        """Under DeepSpeed ZeRO-3: the fused path reads the output layer's weight outside that layer's forward;
        register it with this module so that ZeRO-3 gathers it for this forward and its backward."""
        parts = _decoder_and_head(self.model)
        if parts is None or self.impl != "fused":
            return
        import deepspeed

        deepspeed.zero.register_external_parameter(self, parts[1].weight)

    def forward(self, input_ids, position_ids, positions, targets, weights=None, temperature=1.0,
                need_logprobs: bool = True):  # fmt: skip
        return target_logprobs(self.model, input_ids, position_ids, positions, targets, impl=self.impl,
                               chunk=self.chunk, weights=weights, temperature=temperature,
                               need_logprobs=need_logprobs)  # fmt: skip


def _liger(device: torch.device):
    if device.type != "cuda":
        return None
    try:
        from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
    except ImportError:
        return None
    return LigerFusedLinearCrossEntropyFunction
