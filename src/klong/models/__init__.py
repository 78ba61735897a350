"""Model backends, chosen by spec: `scripted:FILE` (more backends register here as they are added)."""

from __future__ import annotations

from klong.exceptions import ConfigError
from klong.protocols import Model


def load_model(spec: str) -> Model:
    """Create a model from a spec `KIND:ARG`."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise ConfigError(f"model spec {spec!r} must look like KIND:ARG, e.g. scripted:turns.yaml")
    if kind == "scripted":
        from klong.models.scripted import ScriptedModel

        return ScriptedModel.from_file(arg)
    raise ConfigError(f"unknown model kind {kind!r} in spec {spec!r}; known: scripted")
