"""Model backends, chosen by spec: `openai:NAME`, `hf:PATH`, `vllm:PATH`, `scripted:FILE`, `replay:TRAJECTORY`."""

from __future__ import annotations

from klong.exceptions import ConfigError
from klong.models.config import ModelConfig
from klong.protocols import Model

KINDS = ("openai", "hf", "vllm", "scripted", "replay")


def load_model(spec: str, config: ModelConfig | None = None) -> Model:
    """Create a model from a spec `KIND:ARG`. Each call returns a new object (episodes keep their own state);
    `hf` weights are loaded once per path and shared."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise ConfigError(f"model spec {spec!r} must look like KIND:ARG, with KIND one of {', '.join(KINDS)}")
    if kind == "scripted":
        from klong.models.scripted import ScriptedModel

        return ScriptedModel.from_file(arg)
    if kind == "replay":
        from klong.models.replay import ReplayModel

        return ReplayModel(arg)
    if kind == "openai":
        from klong.models.openai_compat import OpenAIModel

        return OpenAIModel(arg, config)
    if kind == "hf":
        from klong.models.hf_local import HFModel

        return HFModel(arg, config)
    if kind == "vllm":
        from klong.models.vllm_model import VLLMModel

        return VLLMModel(arg, config)
    raise ConfigError(f"unknown model kind {kind!r} in spec {spec!r}; known: {', '.join(KINDS)}")


class ModelFactory:
    """`load_model(spec, config)` as a callable object (a model per episode), plain data so that Ray can send it to
    the workers that make the models."""

    def __init__(self, spec: str, config: ModelConfig | None = None) -> None:
        self.spec, self.config = spec, config

    def __call__(self) -> Model:
        return load_model(self.spec, self.config)
