"""The agent loop: one episode of one model on one task, saved after every step, resumable after `kill -9`.

    while not stopped:
        view  = context policy's view of the history            (a new epoch on a context-length error)
        reply = model(view, tools)                               (save)
        for each tool call: result = tool(call)                  (save after each)

Infrastructure failures (endpoint down after retries, broken sandbox) end the episode with their stop reason and are
never shown to the model; the model's own mistakes (malformed calls, refused paths, early end_task) are, and it goes on.
On resume, the reading progress, clock, context epochs and the model's script position are rebuilt from the saved
trajectory; tool calls saved without results are run, so every turn appears exactly once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from klong.agent.clock import Clock, VirtualClock, WallClock, format_duration
from klong.agent.config import AgentConfig
from klong.agent.monitor import blacklist_violations
from klong.agent.prompts import INTERRUPTED, NO_TOOL_CALL, NOT_RUN_AFTER_END, SYSTEM_PROMPT, TIME_NOTICE, task_message
from klong.agent.tools import SIDE_EFFECTS, Toolbox
from klong.agent.workspace import Workspace
from klong.chat.approx import ApproxRenderer
from klong.chat.context import ContextConfig, ContextExhaustedError, ContextPolicy
from klong.chat.render import ChatRenderer
from klong.exceptions import (
    ConfigError,
    ContextLengthError,
    EngineError,
    InputFileError,
    ModelError,
    SandboxError,
    StopReason,
)
from klong.io import format_validation_error
from klong.models.call_seed import model_call
from klong.protocols import Model
from klong.redact import redact
from klong.sandbox import Sandbox
from klong.schema import Message, Trajectory, TrajectoryWriter, read_trajectory
from klong.task import Task

OnUpdate = Callable[[Trajectory, str], None]


class Episode:
    def __init__(self, task: Task, model: Model, sandbox: Sandbox, config: AgentConfig, path: str | Path, *,
                 run_id: str, tokenizer=None, on_update: OnUpdate | None = None):  # fmt: skip
        self.task, self.model, self.sandbox, self.config = task, model, sandbox, config
        self.path = Path(path)
        self.run_id = run_id
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        self.on_update = on_update
        self.workspace = Workspace(sandbox.workspace, sandbox.root, getattr(sandbox, "owner", None))
        self.traj: Trajectory
        self.clock: Clock
        self.tools: Toolbox
        self.policy: ContextPolicy
        self._resuming = False  # the first pending call on resume may have been running when klong was killed

    # -- setup -----------------------------------------------------------------------------------------------------
    def _load(self, resume: bool) -> Trajectory:
        if self.path.exists():
            if not resume:
                raise InputFileError(self.path, "a trajectory exists already: resume it (--resume) or redo (--redo)")
            return read_trajectory(self.path)
        task_text = task_message(self.task, self.sandbox.root, self.config.time_limit, self.config.task_template)
        messages = [Message(role="system", content=self.config.system_prompt or SYSTEM_PROMPT, time=0.0),
                    Message(role="user", content=task_text, time=0.0)]  # fmt: skip
        return Trajectory(id=self.run_id, task_id=self.task.id, model=self.model.name, sandbox=self.sandbox.kind,
                          messages=messages, time_limit=self.config.time_limit,
                          virtual_time=0.0 if self.config.clock == "virtual" else None)  # fmt: skip

    def _setup(self, resume: bool) -> None:
        self.traj = self._load(resume)
        self._writer = TrajectoryWriter(self.path)
        self._wall_offset = self.traj.wall_time
        self._wall_start = time.monotonic()
        virtual = self.config.clock == "virtual"
        self.clock = VirtualClock(self.traj.virtual_time or 0.0) if virtual else WallClock(self.traj.wall_time)
        self.workspace.prepare(self.task)
        self.tools = Toolbox(self.task, self.workspace, self.sandbox, self.config, self.clock)
        self.tools.restore(self.traj.messages)
        self.tools.turns = self.traj.assistant_turns()
        self.traj.tools = self.tools.schemas()
        context = self._context_config()
        renderer = (ChatRenderer(self.tokenizer, self.traj.tools, self.traj.messages[0])
                    if self.tokenizer is not None else ApproxRenderer())  # fmt: skip
        self.policy = ContextPolicy(context, renderer)
        # the resolved settings (concrete notice role) are what the splitter replays
        self.traj.meta["context"] = context.model_copy(update={"notice_role": self.policy.notice_role}).model_dump()
        self.traj.meta["context_counting"] = "tokenizer" if isinstance(renderer, ChatRenderer) else "approximate"
        self._replay_policy()
        if hasattr(self.model, "resume"):
            self.model.resume(self.traj.assistant_turns())

    def _context_config(self) -> ContextConfig:
        """The configured context, keeping room for the model's longest answer (`reserve_tokens` >= `max_tokens`).
        A resumed episode keeps the settings it recorded when it started, so its views go on as they began."""
        recorded = self.traj.meta.get("context")
        if recorded is not None:
            try:
                return ContextConfig.model_validate(recorded)
            except ValidationError as e:
                raise InputFileError(self.path, f"meta.context: {format_validation_error(e)}") from None
        context = self.config.context
        max_tokens = getattr(getattr(self.model, "config", None), "max_tokens", 0) or 0
        if max_tokens <= context.reserve_tokens:
            return context
        try:
            return ContextConfig.model_validate({**context.model_dump(), "reserve_tokens": max_tokens})
        except ValidationError as e:
            raise ConfigError(
                f"the model's max_tokens ({max_tokens}) does not fit the context settings: {format_validation_error(e)}"
            ) from None

    def _replay_policy(self) -> None:
        """Bring the policy's epoch state to the end of a resumed trajectory (forced epochs were recorded)."""
        history: list[Message] = []
        for m in self.traj.messages:
            if m.role == "assistant":
                forced = int((m.meta or {}).get("context", {}).get("forced") or 0)
                with contextlib.suppress(ContextExhaustedError):
                    self.policy.view(history, force_new_epoch=forced)
            history.append(m)

    # -- bookkeeping -----------------------------------------------------------------------------------------------
    def _stamp(self, message: Message) -> Message:
        message.time = round(self._wall(), 3)
        if self.clock.kind == "virtual":
            message.virtual_time = self.clock.elapsed()
        return message

    def _wall(self) -> float:
        return self._wall_offset + time.monotonic() - self._wall_start

    async def _save(self, event: str = "") -> None:
        self.traj.wall_time = round(self._wall(), 3)
        if self.clock.kind == "virtual":
            self.traj.virtual_time = self.clock.elapsed()
        await self._writer.save_async(self.traj, final=event in ("end", "interrupted"))
        if self.on_update is not None:
            self.on_update(self.traj, event)

    def _stop(self, reason: StopReason, detail: str | None = None) -> None:
        self.traj.stop_reason = reason
        self.traj.stop_detail = redact(detail)  # an endpoint's error may echo the API key

    def _time_up(self) -> bool:
        return self.clock.elapsed() >= self.config.time_limit

    # -- the loop --------------------------------------------------------------------------------------------------
    async def run(self, *, resume: bool = False) -> Trajectory:
        self._setup(resume)
        if self.traj.finished:
            if not (resume and self.traj.stop_reason.is_infrastructure):
                return self.traj
            # an infrastructure stop is not the end of the episode: resuming goes on from where it stopped
            self.traj.meta.setdefault("resumed_after", []).append(
                {"stop_reason": self.traj.stop_reason.value, "stop_detail": self.traj.stop_detail}
            )
            self.traj.stop_reason = self.traj.stop_detail = None
        resumed = self.traj.assistant_turns() > 0
        self._resuming = resumed
        await self._save("start")
        reclaim = getattr(self.sandbox, "reclaim", None)
        if resumed and reclaim is not None:  # what a killed klong left running must not go on beside this episode
            await reclaim()
        await self.sandbox.start()
        try:
            await self._answer_pending()
            while not self.traj.finished:
                await self._step()
        except SandboxError as e:
            self._stop(StopReason.SANDBOX_ERROR, str(e))
        finally:
            violations = blacklist_violations(self.traj, self.task.blacklist)
            self.traj.meta["monitor"] = {"blacklist_violations": violations}
            await self._save("end" if self.traj.finished else "interrupted")
            await self.sandbox.close()
        return self.traj

    async def _step(self) -> None:
        if self._time_up():
            return self._stop(StopReason.TIMEOUT, f"time limit {format_duration(self.config.time_limit)} reached")
        if self.config.max_turns is not None and self.tools.turns >= self.config.max_turns:
            return self._stop(StopReason.MAX_TURNS)
        reply = await self._call_model()
        if reply is None:
            return None
        self.traj.messages.append(self._stamp(reply))
        self.tools.turns += 1
        self.clock.charge(self.config.turn_cost)
        await self._save("model")
        await self._answer_pending()

    async def _call_model(self) -> Message | None:
        """One model call on the policy's view. After a context-length error the view is recomputed as a new,
        smaller epoch (attempt k, see `ContextPolicy.view`); only the accepted view changes the policy's state."""
        detail = ""
        for attempt in range(self.config.max_context_retries + 1):
            state = self.policy.state()
            try:
                view = self.policy.view(self.traj.messages, force_new_epoch=attempt)
            except ContextExhaustedError as e:
                self._stop(StopReason.CONTEXT_EXHAUSTED, f"{e}{f' (after: {detail})' if detail else ''}")
                return None
            try:
                with model_call(self.run_id, self.traj.assistant_turns()):  # the call's seed: this episode, this turn
                    reply = await self.model.generate(view.messages, self.traj.tools)
            except ContextLengthError as e:
                self.policy.restore(state)
                detail = str(e)
                continue
            except ModelError as e:
                self._stop(StopReason.ENGINE_ERROR if isinstance(e, EngineError) else StopReason.MODEL_ERROR, str(e))
                return None
            if reply.role != "assistant":
                raise ModelError(f"{self.model.name} returned a {reply.role!r} message")
            meta = dict(reply.meta or {})
            reply.meta = meta
            meta["context"] = self._view_record(view, meta.pop("prompt", None), attempt)
            return reply
        self._stop(
            StopReason.CONTEXT_EXHAUSTED,
            f"context-length errors after {self.config.max_context_retries} new epochs: {detail}",
        )
        return None

    def _view_record(self, view, prompt: dict | None, attempt: int) -> dict:
        """What the model was given at this call: the epoch, the view's structure (`View.fingerprint`), and the
        prompt's length, with the fingerprint of its token ids where the backend reports the ids it fed the model
        (`hf`; a server that takes token ids). Cheap: no rendering beyond what the policy already did."""
        record: dict = {"epoch": view.epoch, "view_sha": view.fingerprint(), "prompt_tokens": view.prompt_tokens}
        if prompt is not None:
            record.update(prompt_tokens=prompt["tokens"], prompt_sha=prompt["sha"])
        if attempt:
            record["forced"] = attempt
        return record

    async def _answer_pending(self) -> None:
        """Run the tool calls of the last assistant message that have no result yet (all of them, or the rest after a
        resume), then add the time notice. An accepted `end_task` and the stop reason are saved together; a call
        that was running when klong was killed is reported as interrupted on resume (`interrupted_calls`)."""
        last = next(
            (i for i in range(len(self.traj.messages) - 1, -1, -1) if self.traj.messages[i].role == "assistant"), None
        )
        if last is None:
            return
        assistant = self.traj.messages[last]
        answered = {m.tool_call_id for m in self.traj.messages[last + 1 :] if m.role == "tool"}
        # on resume, the first call without a result may have been running when klong was killed (or, in the
        # moment between saving the reply and starting it, not yet): one with side effects is reported, not rerun
        first = next((c for c in assistant.tool_calls or [] if c.id not in answered), None)
        running = first.id if self._resuming and first and first.function.name in SIDE_EFFECTS else None
        self._resuming = False
        ended = False
        refused = bool(assistant.tool_calls)
        for call in assistant.tool_calls or []:
            if call.id in answered:
                continue
            end = False
            if ended:
                outcome_text = NOT_RUN_AFTER_END
            elif call.id == running and self.config.interrupted_calls == "report":
                outcome_text, refused = INTERRUPTED, False
            elif self._time_up():
                outcome_text, refused = "[not run: the time limit was reached]", False
            else:
                outcome = await self.tools.execute(call)
                self.clock.charge(self.tools.cost(call.function.name, outcome))
                outcome_text, end = outcome.text, outcome.end_task
                refused = refused and outcome.refused
            if end:
                ended = True
                self._stop(StopReason.END_TASK)
            self.traj.messages.append(self._stamp(Message(role="tool", content=outcome_text, tool_call_id=call.id,
                                                          name=call.function.name)))  # fmt: skip
            await self._save(call.function.name)
        if not assistant.tool_calls and last == len(self.traj.messages) - 1:
            errors = (assistant.meta or {}).get("parse_errors")
            text = NO_TOOL_CALL if not errors else f"Your tool call could not be read: {errors[0]}. {NO_TOOL_CALL}"
            # in the role under which the template keeps earlier turns as they were (see ContextConfig.notice_role)
            self.traj.messages.append(self._stamp(Message(role=self.policy.notice_role, content=text)))
            await self._save("reminder")
        if ended:
            return
        self._count_refusals(refused)
        if not self.traj.finished:
            await self._time_notice()

    def _count_refusals(self, refused: bool) -> None:
        """Turns in a row whose every call the scaffold refused; `max_refusals` of them end the episode."""
        count = int(self.traj.meta.get("refusals_in_a_row", 0)) + 1 if refused else 0
        self.traj.meta["refusals_in_a_row"] = count
        if count >= self.config.max_refusals:
            self._stop(StopReason.REFUSED, f"{count} turns in a row made only calls the scaffold refused")

    async def _time_notice(self) -> None:
        used = self.clock.elapsed() / self.config.time_limit if self.config.time_limit else 0.0
        given = int(self.traj.meta.get("notices_given", 0))
        due = sum(1 for f in self.config.time_notices if used >= f)
        if due <= given:
            return
        self.traj.meta["notices_given"] = due
        limit = self.config.time_limit
        text = TIME_NOTICE.format(used=format_duration(self.clock.elapsed()),
                                  left=format_duration(max(0.0, limit - self.clock.elapsed())), limit=format_duration(limit))  # fmt: skip
        last = self.traj.messages[-1]
        if last.role in ("tool", "user", "system"):
            last.content = f"{last.content or ''}\n\n{text}"
        await self._save("notice")
