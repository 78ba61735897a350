"""Configuration of `klong rl` (YAML + dotted overrides; the resolved config is saved in the run dir)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from klong.agent.config import AgentConfig
from klong.config import Duration
from klong.models.config import ModelConfig
from klong.train.config import LoraConfig


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: Duration
    """Rollout time limit of this stage, in seconds (`2h`, `30m` accepted). The paper: 2 h, then 4 h, then 6 h."""
    iterations: int = 1
    max_turns: int | None = None
    """Optional cap on assistant turns per rollout in this stage."""
    context_tokens: int | None = None
    """Optional context window for this stage (default: the agent config's)."""


class RLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str
    """Path of the policy to train (usually the SFT result; `hf:` prefix accepted)."""
    reference: str | None = None
    """Frozen reference policy for the KL penalty (default: the initial policy)."""
    output_dir: str
    tasks: list[str]
    """Task dirs, or folders of task dirs, to sample training tasks from."""
    eval_tasks: list[str] = Field(default_factory=list)
    """Held-out tasks rolled out and graded (before any training grading) after every stage."""
    eval_timeout: Duration | None = None
    """Rollout time limit for evaluation, in seconds (`12h` accepted; default: the last stage's)."""
    stages: list[Stage]
    tasks_per_iteration: int = 4
    group_size: int = 4
    """Rollouts per task (n): the advantage baseline is computed over them."""
    judge: str = "check"
    """Judge spec: `check` for programmatic leaves, or a model spec (the paper uses an open model, gpt-oss-120b)."""
    judge_workers: int = 4
    judge_model: ModelConfig = Field(default_factory=lambda: ModelConfig(temperature=0.0))
    sandbox: str = "local"
    concurrency: int = 8
    """Rollouts running at once."""
    executor: Literal["local", "ray"] = "local"
    """`ray`: rollouts as Ray tasks (each on a node with a free `klong_sandbox` slot) and the judge as a pool of
    `judge_workers` Ray actors (docs/scale.md); needs a served policy (`rollout_backend` vllm or openai)."""
    ray_address: str | None = None
    """`ray`: the cluster to attach to (default: a local Ray instance)."""
    agent: AgentConfig = Field(default_factory=AgentConfig)
    """Runtime settings of the rollouts (clock, tools, context, scaffold rules); the stage sets the time limit."""
    generation: ModelConfig = Field(default_factory=lambda: ModelConfig(max_tokens=512, temperature=1.0))
    """Sampling settings of the policy during rollouts (temperature also used for the training log-probabilities)."""
    rollout_backend: Literal["hf", "vllm", "openai"] = "hf"
    """`hf`: the policy in this process. `vllm`: a vLLM server klong starts (`generation.vllm` says how) or attaches to
    (`generation.base_url`), sampling token in and token out, given the new weights after each update and checked
    (`klong.train.weight_sync`). `openai`: any server at `generation.base_url` serving `served_model` through its chat
    API, given the new weights by `reload_command` (unchecked)."""
    weight_sync: Literal["auto", "full", "lora"] = "auto"
    """`vllm`: how new weights reach the server: `full` (`reload_weights` from the saved folder), `lora` (the adapter
    as a runtime LoRA adapter; the server needs `generation.vllm.enable_lora`), `auto`: `lora` for a LoRA policy."""
    sync_timeout: float = 600.0
    """Seconds one weight sync (pause, load, resume) and its probe may take before the run stops (`EngineError`)."""
    probe_tolerance: float = 1e-3
    """Largest difference allowed between the served and the trainer's logprobs of the probe after a sync (fp32 on
    both sides; bf16 serving needs about 5e-2)."""
    served_model: str = "policy"
    reload_command: str | None = None
    """`openai`: shell command run after each update with `{checkpoint}` replaced by the saved policy's folder."""

    baseline: Literal["windows", "rollouts"] = "windows"
    """Advantage baseline: mean reward over all windows of the task's rollouts (the paper's), or over rollouts."""
    std_normalize: bool = False
    """Divide advantages by the standard deviation (off in the paper: group mean only)."""
    infra_failures: Literal["rerun", "drop"] = "rerun"
    """Rollouts that ended by an infrastructure failure (endpoint, sandbox, harness; `StopReason.is_infrastructure`)
    are never graded or trained: `rerun` runs them again (up to `max_reruns` times; the failed attempt is kept under
    `rollouts/failed/`), `drop` leaves them out. Both are counted in metrics.jsonl."""
    max_reruns: int = 2
    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.01
    """Weight of the KL penalty to the reference policy."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Per-token KL estimate (see `klong.train.rl_loss`): `k3` (GRPO's; unbiased and >= 0 as a value, its gradient is
    that of KL(ref || policy)), `k2` (its gradient is that of KL(policy || ref)), `k1` (zero gradient in expectation)."""
    loss_norm: Literal["paper", "window_mean", "token_mean", "constant"] = "paper"
    """How token terms are averaged over the n x K windows: `paper` (each window's tokens summed, windows averaged:
    the paper's 1/(nK) sum), `window_mean` (tokens averaged per window first), `token_mean` (DAPO), `constant`
    (Dr. GRPO: token sums over `loss_norm_tokens`)."""
    loss_norm_tokens: int | None = None
    """The constant C of `loss_norm: constant` (default: the agent's context window)."""
    ppo_epochs: int = 1
    minibatches: int = 1
    """Optimizer steps per PPO epoch (1: one step over all n x K windows, the paper's average)."""
    learning_rate: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = True
    pack_length: int = 32768
    attn_implementation: str = "sdpa"
    seed: int = 0
    torch_threads: int | None = None
    """CPU threads torch uses (`torch.set_num_threads`). Default: `KLONG_TORCH_THREADS`, else an explicit
    `OMP_NUM_THREADS`, else the cores this process may use (affinity, cgroup quota) divided by the local processes."""

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        if not self.stages:
            raise ValueError("at least one stage is needed")
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2 (the baseline is a group mean)")
        if self.rollout_backend == "vllm" and self.weight_sync == "lora" and self.lora is None:
            raise ValueError("weight_sync lora needs a LoRA policy (lora: ...); use weight_sync full or auto")
        if self.rollout_backend == "vllm" and self.weight_sync == "full" and self.lora is not None:
            raise ValueError("weight_sync full with a LoRA policy is not supported; use weight_sync lora or auto")
        if self.rollout_backend == "openai" and not self.generation.base_url:
            raise ValueError("rollout_backend openai needs generation.base_url (the policy server)")
        if self.generation.top_p < 1.0:
            raise ValueError(
                "generation.top_p must be 1 for RL: the trainer's log-probabilities are log_softmax(logits / T) and "
                "cannot reproduce a top-p-truncated sampling distribution (the ratio would not be 1 on-policy)"
            )
        if self.max_reruns < 0:
            raise ValueError("max_reruns must be >= 0")
        if self.executor == "ray" and self.rollout_backend == "hf":
            raise ValueError("executor ray needs a served policy (rollout_backend vllm or openai): the hf backend "
                             "samples from the trainer's own in-process model, which Ray's workers cannot reach")  # fmt: skip
        if self.ray_address and self.executor != "ray":
            raise ValueError("ray_address is for executor ray")
        return self

    @property
    def policy_path(self) -> str:
        return self.policy.removeprefix("hf:")
