"""Moving the trainer's weights into the vLLM server that samples the rollouts, and proving they arrived.

After each update (`rollout_backend: vllm`): the server is paused (requests in flight finish, new ones wait), the saved
policy reaches it (`full`: `reload_weights` from the checkpoint folder; `lora`: the adapter loaded as a new runtime
adapter, which requests use from then on), its prefix cache is dropped, and it resumes. Then a probe: the served
logprobs of a fixed token sequence must equal the trainer's own (fp32, temperature 1) within `probe_tolerance`;
otherwise the run stops with `EngineError` before any rollout samples from weights that are not the trainer's.

The server counts its updates (`VLLMServer.version`); every reply records the version that sampled it
(`Message.meta["policy_version"]`), and RL trains each turn against the logprobs recorded at sampling time, so a
rollout that spans an update (a resumed one) is trained against the version that sampled each turn.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from klong.exceptions import EngineError
from klong.models.vllm_server import VLLMServer

PROBE_TEXT = ("klong weight-sync probe. The policy served for rollouts must be the policy being trained: token for "
              "token, the same log-probabilities. 0123456789 <tool_call>{\"name\": \"bash\"}</tool_call>")  # fmt: skip


def probe_ids(tokenizer, length: int = 64) -> list[int]:
    ids = tokenizer.encode(PROBE_TEXT, add_special_tokens=False)
    while len(ids) < length:
        ids = ids + ids
    return ids[:length]


@torch.no_grad()
def trainer_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1 under `model` at temperature 1, in fp32."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0, :-1].float()
    finally:
        model.train(was_training)
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, torch.tensor(ids[1:], device=logp.device)[:, None])[:, 0].tolist()


def verify(server: VLLMServer, model, tokenizer, tolerance: float) -> float:
    """The largest difference between the served and the trainer's logprobs of the probe; raises above `tolerance`."""
    ids = probe_ids(tokenizer)
    served = server.prompt_logprobs(ids)
    mine = trainer_logprobs(model, ids)
    diff = max(abs(a - b) for a, b in zip(served, mine, strict=True))
    if not diff <= tolerance:
        raise EngineError(f"weight sync not verified: the served logprobs of the probe differ from the trainer's by "
                          f"{diff:.2e} (tolerance {tolerance:g}; server at policy version {server.version})")  # fmt: skip
    return diff


def write_serving_folder(model, tokenizer, folder: Path) -> Path:
    """The policy's full weights as vLLM loads them, written atomically to `folder` (replacing what was there).

    Every tensor of the state dict is written, the output head of tied embeddings (Qwen2.5 up to 3B, the tiny model)
    included: `save_pretrained` leaves it out, and vLLM's in-place `reload_weights` then keeps the old head (checked
    with vLLM 0.32: the probe was off by 0.52 after a sync; with the head written, 9.5e-7)."""
    import shutil

    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False) and "lm_head.weight" not in state:
        state["lm_head.weight"] = model.get_input_embeddings().weight.detach().to("cpu")
    seen: set[int] = set()
    for key, value in state.items():  # safetensors stores no two names for one storage
        if value.data_ptr() in seen:
            state[key] = value.clone()
        seen.add(state[key].data_ptr())
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def sync(server: VLLMServer, folder: Path, mode: str, *, timeout: float, version: int | None = None) -> float:
    """Give the server the weights saved in `folder` as policy `version` (default: the server's next); returns the
    seconds it took (pause to resume)."""
    started = time.monotonic()
    server.pause(timeout=timeout)
    try:
        if mode == "lora":
            server.load_lora(folder, timeout=timeout, version=version)
        else:
            server.reload_weights(folder, timeout=timeout, version=version)
    finally:
        server.resume()
    return time.monotonic() - started
