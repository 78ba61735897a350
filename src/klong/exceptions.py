"""The klong error tree and the reasons an episode ends.

Every error klong raises on purpose derives from `KlongError`, so a CLI can print it as one clear line and exit non-zero
instead of a traceback. Errors about a file always name the file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class StopReason(StrEnum):
    """Why an episode (one rollout) ended. Stored in every finished trajectory as `stop_reason`."""

    END_TASK = "end_task"
    """The model called `end_task` (or the source agent submitted) and the call was accepted."""
    TIMEOUT = "timeout"
    """The time limit (wall or virtual) was reached: a normal end, the submission is graded."""
    MAX_TURNS = "max_turns"
    """The configured limit on assistant turns was reached."""
    CONTEXT_EXHAUSTED = "context_exhausted"
    """The pinned prefix alone no longer fits the context window, so no further call is possible."""
    REFUSED = "refused"
    """The model kept making only calls the scaffold refuses (`max_refusals` turns in a row, e.g. `end_task` before
    reading the paper): a normal end of a stuck episode, graded like any other."""
    MODEL_ERROR = "model_error"
    """The model endpoint kept failing after all retries (infrastructure, never shown to the model)."""
    ENGINE_ERROR = "engine_error"
    """The serving engine (a vLLM server) died, could not be reached or did not take new weights (infrastructure;
    `--resume` runs the episode on once the engine is back)."""
    SANDBOX_ERROR = "sandbox_error"
    """The sandbox died or could not run a command (infrastructure, never shown to the model)."""
    INTERRUPTED = "interrupted"
    """The run was stopped from outside (Ctrl-C, SIGTERM); it can be resumed."""
    ERROR = "error"
    """Any other failure of the harness itself."""
    UNKNOWN = "unknown"
    """Imported from a source that does not say why it ended."""

    @property
    def is_infrastructure(self) -> bool:
        """The episode ended because the harness, the endpoint or the sandbox failed, not by anything the model did:
        its submission says nothing about the model (RL re-runs or leaves out such rollouts, never trains on them)."""
        return self in (StopReason.MODEL_ERROR, StopReason.ENGINE_ERROR, StopReason.SANDBOX_ERROR,
                        StopReason.INTERRUPTED, StopReason.ERROR)  # fmt: skip


class KlongError(Exception):
    """Base of every error klong raises deliberately. `str(err)` is a complete, user-facing message."""


class InputFileError(KlongError):
    """A file klong was asked to read is missing, malformed, truncated or of the wrong shape."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(KlongError):
    """A configuration value or model/sandbox spec is invalid."""


class ImportFormatError(InputFileError):
    """A trajectory file does not have the shape of the agent format it was imported as."""


class ModelError(KlongError):
    """The model endpoint failed and retries are exhausted (infrastructure: ends the episode, never shown to the model)."""


class ContextLengthError(ModelError):
    """The server refused the request because the prompt is longer than its context window."""


class EngineError(ModelError):
    """The serving engine klong drives (a vLLM server) died, cannot be reached or did not take new weights: an
    infrastructure failure (`StopReason.ENGINE_ERROR`), never something shown to the model."""


class SandboxError(KlongError):
    """The sandbox could not run a command (infrastructure: ends the episode, never shown to the model)."""
