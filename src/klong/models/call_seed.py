"""Per-call sampling seeds that do not depend on call order: the same episode samples the same way however many
episodes share the model and in whatever order their calls arrive.

The runtime names each model call (`model_call(run_id, index)`: the run, and the number of assistant turns before
this one, so that a resumed episode names its calls as the uninterrupted one did); a model with a configured seed
samples that call with `call_seed(seed)`, a hash of the seed and that name. Outside an episode (a judge, a probe) the
model's own counter stands in, as before. The name is a context variable: it follows the episode's asyncio task into
the thread an in-process model samples in (`asyncio.to_thread` copies the context).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar

_CALL: ContextVar[str | None] = ContextVar("klong_model_call", default=None)


@contextlib.contextmanager
def model_call(run_id: str, index: int) -> Iterator[None]:
    """Name the model calls made inside (one episode's call number `index`)."""
    token = _CALL.set(f"{run_id}:{index}")
    try:
        yield
    finally:
        _CALL.reset(token)


def call_seed(seed: int | None, fallback_calls: int = 0) -> int | None:
    """The seed for this call: None without a configured seed; inside a named call a 63-bit hash of (seed, name);
    otherwise `seed + fallback_calls` (the model's own call counter)."""
    if seed is None:
        return None
    name = _CALL.get()
    if name is None:
        return seed + fallback_calls
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") >> 1
