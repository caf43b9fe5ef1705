"""A local stand-in for OpenAI's Chat Completions endpoint, speaking its real wire format.

``POST /v1/chat/completions`` answers with the documented ``chat.completion`` object. Tests steer it:

* ``reply``: a function of the request body that returns the assistant text (default: the last user
  message upper-cased, so a test can assert on it);
* ``usage``: the token counts to report, including ``prompt_tokens_details.cached_tokens``; an
  :class:`OpenAIUsage`, or a mapping sent verbatim as the ``usage`` object (a recorded real one);
* ``api_key``: the bearer token to accept; any other gets the real 401 body (``None`` accepts anything,
  like a local Ollama or llama.cpp server);
* ``fail(status, times)``: answer the next ``times`` requests with 429/5xx and OpenAI's error body;
* ``delay_s``: sleep before answering (longer than the client's timeout proves the timeout path).

Scripted tool use: with ``tool_turns`` (one list of ``{"name", "arguments"}`` per turn; ``arguments`` a dict,
or a raw string sent as is, so malformed JSON can be scripted), a request that offers ``tools`` is answered
with the ``tool_calls`` of turn *k*, where *k* is the number of assistant messages already in the
conversation (stateless, so provider retries and parallel jobs cannot desynchronize it). Once the script
is spent the answer is text: by default :func:`tool_results_digest`, which quotes every ``tool`` message the
request carried back, so a test can prove the results really reached the model. ``tool_preamble`` is the
assistant text sent alongside the tool calls; ``turn_usage`` gives per-turn token counts. Like the real
API, the fake refuses tool names outside ``^[a-zA-Z0-9_-]{1,64}$``, ``tool`` messages that answer no
preceding ``tool_calls``, and ``tool_calls`` left without a ``tool`` message for each id.

Every request is recorded in ``requests`` (path, lower-cased headers, parsed JSON body).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from external._loopback import LoopbackServer, RecordedRequest, Reply

# The API answers an alias with the dated snapshot that served it, as the real service does.
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}

_ERRORS: dict[int, dict[str, Any]] = {
    400: {"message": "Invalid 'max_tokens': integer above maximum value.", "type": "invalid_request_error",
          "param": "max_tokens", "code": "integer_above_max_value"},
    429: {"message": "Rate limit reached for requests. Please try again in 20ms.", "type": "requests",
          "param": None, "code": "rate_limit_exceeded"},
    500: {"message": "The server had an error while processing your request. Sorry about that!",
          "type": "server_error", "param": None, "code": None},
    502: {"message": "Bad gateway.", "type": "server_error", "param": None, "code": None},
    503: {"message": "The engine is currently overloaded, please try again later.", "type": "server_error",
          "param": None, "code": None},
}


@dataclass(frozen=True)
class OpenAIUsage:
    prompt_tokens: int = 1200
    completion_tokens: int = 42
    cached_tokens: int = 1024


def last_user_upper(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content).upper()


def tool_results_digest(body: dict[str, Any]) -> str:
    """``tool results: <id>=<content> | ...`` for every ``tool`` message in the conversation, in order."""
    parts = [f"{m.get('tool_call_id')}={m.get('content')}" for m in body.get("messages", [])
             if m.get("role") == "tool"]
    return "tool results: " + " | ".join(parts)


def tool_call_id(turn: int, index: int) -> str:
    """The id the fake gives the ``index``-th tool call of turn ``turn`` (both from 0)."""
    return f"call_fake_{turn}_{index}"


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def _mask(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "*" * len(key)


class FakeOpenAI(LoopbackServer):
    def __init__(self, *, api_key: str | None = "sk-test-openai-0123456789",
                 usage: OpenAIUsage | Mapping[str, Any] | None = None,
                 reply: Callable[[dict[str, Any]], str] | None = None,
                 finish_reason: str = "stop",
                 tool_turns: Sequence[Sequence[Mapping[str, Any]]] | None = None,
                 tool_preamble: str | None = None,
                 turn_usage: Sequence[OpenAIUsage | Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.usage = usage or OpenAIUsage()
        self.reply = reply or (tool_results_digest if tool_turns is not None else last_user_upper)
        self.finish_reason = finish_reason
        self.tool_turns = [list(turn) for turn in tool_turns or ()]
        self.tool_preamble = tool_preamble
        self.turn_usage = list(turn_usage or ())
        self.delay_s = 0.0
        self._failures: deque[tuple[int, int | None]] = deque()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def completions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def fail(self, status: int, times: int = 1, *, retry_after_ms: int | None = 10) -> None:
        """Answer the next ``times`` requests with ``status`` (400, 429, 500, 502, 503 have OpenAI's
        own error bodies); ``retry_after_ms`` is sent as OpenAI's
        ``retry-after-ms`` header (``None`` omits it, leaving the SDK to its own exponential backoff)."""
        self._failures.extend([(status, retry_after_ms)] * times)

    def respond(self, request: RecordedRequest, index: int) -> Reply:
        headers = {"x-request-id": f"req_{index:08d}", "openai-processing-ms": "7"}
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return Reply(404, _error(f"Invalid URL ({request.method} {request.path})",
                                     "invalid_request_error", code="unknown_url"), headers)
        auth = request.headers.get("authorization", "")
        if self.api_key is not None:
            if not auth.startswith("Bearer "):
                return Reply(401, _error("You didn't provide an API key. You need to provide your API key in "
                                         "an Authorization header using Bearer auth.",
                                         "invalid_request_error"), headers)
            presented = auth.removeprefix("Bearer ")
            if presented != self.api_key:
                return Reply(401, _error(f"Incorrect API key provided: {_mask(presented)}. You can find your "
                                         "API key at https://platform.openai.com/account/api-keys.",
                                         "invalid_request_error", code="invalid_api_key"), headers)
        if self._failures:
            status, retry_after_ms = self._failures.popleft()
            if retry_after_ms is not None:
                headers["retry-after-ms"] = str(retry_after_ms)
            err = _ERRORS.get(status, {"message": "error", "type": "server_error", "param": None,
                                       "code": None})
            return Reply(status, {"error": err}, headers)
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return Reply(400, _error("you must provide a model parameter", "invalid_request_error"), headers)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return Reply(400, _error("[] is too short - 'messages'", "invalid_request_error",
                                     param="messages"), headers)
        problem = _tool_problem(body)
        if problem is not None:
            return Reply(400, {"error": problem}, headers)
        turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        u = self.turn_usage[turn] if turn < len(self.turn_usage) else self.usage
        message: dict[str, Any]
        if body.get("tools") and turn < len(self.tool_turns):
            calls = [{"id": tool_call_id(turn, i), "type": "function",
                      "function": {"name": call["name"], "arguments": _arguments(call.get("arguments", {}))}}
                     for i, call in enumerate(self.tool_turns[turn])]
            message = {"role": "assistant", "content": self.tool_preamble, "refusal": None, "annotations": [],
                       "tool_calls": calls}
            finish_reason = "tool_calls"
        else:
            message = {"role": "assistant", "content": self.reply(body), "refusal": None, "annotations": []}
            finish_reason = self.finish_reason
        completion = {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": SNAPSHOTS.get(body["model"], body["model"]),
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": _usage_body(u),
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
        }
        return Reply(200, completion, headers, delay_s=self.delay_s)


def _usage_body(u: OpenAIUsage | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(u, Mapping):
        return dict(u)
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _arguments(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _tool_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """The error the real API gives for a malformed tools list or tool conversation, if any."""
    for i, tool in enumerate(body.get("tools") or []):
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            return {"message": f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a "
                               "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    "type": "invalid_request_error", "param": f"tools[{i}].function.name", "code": "invalid_value"}
        if len(name) > 64:
            return {"message": f"Invalid 'tools[{i}].function.name': string too long. Expected a string with "
                               f"maximum length 64, but got a string with length {len(name)} instead.",
                    "type": "invalid_request_error", "param": f"tools[{i}].function.name",
                    "code": "string_above_max_length"}
    messages = body["messages"]
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            j = i - 1
            while j >= 0 and messages[j].get("role") == "tool":
                j -= 1
            offered = {c.get("id") for c in (messages[j].get("tool_calls") or [])} if j >= 0 else set()
            if m.get("tool_call_id") not in offered:
                return {"message": "Invalid parameter: messages with role 'tool' must be a response to a "
                                   "preceeding message with 'tool_calls'.",
                        "type": "invalid_request_error", "param": f"messages.[{i}].role", "code": None}
        if m.get("role") == "assistant" and m.get("tool_calls"):
            answered = set()
            for later in messages[i + 1:]:
                if later.get("role") != "tool":
                    break
                answered.add(later.get("tool_call_id"))
            missing = [c.get("id") for c in m["tool_calls"] if c.get("id") not in answered]
            if missing:
                return {"message": "An assistant message with 'tool_calls' must be followed by tool messages "
                                   "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                                   f"response messages: {', '.join(map(str, missing))}",
                        "type": "invalid_request_error", "param": f"messages.[{i}].role", "code": None}
    return None


def _error(message: str, type_: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
