"""A local stand-in for Anthropic's Messages API, speaking its real wire format.

``POST /v1/messages`` answers with the documented ``message`` object. Tests steer it:

* ``reply``: a function of the request body that returns the assistant text (default: the last user
  message reversed, so a test can assert on it);
* ``usage``: input/output tokens plus ``cache_creation_input_tokens`` and ``cache_read_input_tokens``; an
  :class:`AnthropicUsage`, or a mapping sent verbatim as the ``usage`` object (a recorded real one);
* ``api_key``: the key to accept, from ``x-api-key`` or (as anthropic SDK 2.x sends it) an
  ``Authorization: Bearer`` header; any other gets the real 401 ``authentication_error`` body;
* ``fail(status, times)``: answer the next ``times`` requests with 429/500/529 and Anthropic's error body;
* ``delay_s``: sleep before answering (longer than the client's timeout proves the timeout path).

Like the real API it requires the ``anthropic-version`` header, ``model``, ``max_tokens`` and ``messages``,
and refuses a ``system`` role inside ``messages`` (the persona belongs in the top-level ``system``).

Scripted tool use: with ``tool_turns`` (one list of ``{"name", "arguments"}`` per turn, ``arguments`` being
the ``tool_use`` block's ``input``), a request that offers ``tools`` is answered with the ``tool_use`` blocks
of turn *k*, where *k* is the number of assistant messages already in the conversation (stateless, so
retries and parallel jobs cannot desynchronize it), and ``stop_reason: "tool_use"``. Once the script is
spent the answer is text: by default :func:`tool_results_digest`, which quotes every ``tool_result`` block
the request carried back (``!`` marks ``is_error``), so a test can prove the results really reached the
model. ``tool_preamble`` is a text block sent before the ``tool_use`` blocks; ``turn_usage`` gives per-turn
token counts. Like the real API, the fake refuses tools without a valid ``name`` or an ``input_schema``,
``tool_use`` blocks not answered by ``tool_result`` blocks in the next message, and ``tool_result`` blocks
that answer no ``tool_use`` of the previous message.

Every request is recorded in ``requests``.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from external._loopback import LoopbackServer, RecordedRequest, Reply

# The API answers an alias with the dated model that served it, as the real service does.
SNAPSHOTS = {"claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
             "claude-sonnet-4-0": "claude-sonnet-4-20250514"}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "max_tokens: Input should be less than or equal to 8192"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


@dataclass(frozen=True)
class AnthropicUsage:
    input_tokens: int = 900
    output_tokens: int = 60
    cache_creation_input_tokens: int = 300
    cache_read_input_tokens: int = 2000


def last_user_reversed(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)[::-1]


def tool_results_digest(body: dict[str, Any]) -> str:
    """``tool results: <id>=<content> | ...`` for every ``tool_result`` block, in order (``<id>!=`` when
    the block has ``is_error``)."""
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = block.get("content", "")
                if isinstance(text, list):
                    text = "".join(b.get("text", "") for b in text if isinstance(b, dict))
                parts.append(f"{block.get('tool_use_id')}{'!' if block.get('is_error') else ''}={text}")
    return "tool results: " + " | ".join(parts)


def tool_use_id(turn: int, index: int) -> str:
    """The id the fake gives the ``index``-th ``tool_use`` block of turn ``turn`` (both from 0)."""
    return f"toolu_fake_{turn}_{index}"


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class FakeAnthropic(LoopbackServer):
    def __init__(self, *, api_key: str = "sk-ant-test-0123456789",
                 usage: AnthropicUsage | Mapping[str, Any] | None = None,
                 reply: Callable[[dict[str, Any]], str] | None = None,
                 stop_reason: str = "end_turn",
                 tool_turns: Sequence[Sequence[Mapping[str, Any]]] | None = None,
                 tool_preamble: str | None = None,
                 turn_usage: Sequence[AnthropicUsage | Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.usage = usage or AnthropicUsage()
        self.reply = reply or (tool_results_digest if tool_turns is not None else last_user_reversed)
        self.stop_reason = stop_reason
        self.tool_turns = [list(turn) for turn in tool_turns or ()]
        self.tool_preamble = tool_preamble
        self.turn_usage = list(turn_usage or ())
        self.delay_s = 0.0
        self._failures: deque[tuple[int, int | None]] = deque()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """The SDK's ``base_url`` is the host root; it appends ``/v1/messages`` itself."""
        return self.root

    @property
    def messages(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    def fail(self, status: int, times: int = 1, *, retry_after_ms: int | None = 10) -> None:
        """Answer the next ``times`` requests with ``status`` (400, 429, 500, 529 have Anthropic's own
        error bodies); ``retry_after_ms`` is sent as a
        ``retry-after-ms`` header (``None`` omits it, leaving the SDK to its own exponential backoff)."""
        self._failures.extend([(status, retry_after_ms)] * times)

    def respond(self, request: RecordedRequest, index: int) -> Reply:
        headers = {"request-id": f"req_fake{index:08d}"}
        if request.method != "POST" or request.path != "/v1/messages":
            return Reply(404, _error("not_found_error", "Not Found"), headers)
        presented = presented_key(request)
        if presented is None:
            return Reply(401, _error("authentication_error", "x-api-key header is required"), headers)
        if presented != self.api_key:
            return Reply(401, _error("authentication_error", "invalid x-api-key"), headers)
        if "anthropic-version" not in request.headers:
            return Reply(400, _error("invalid_request_error", "anthropic-version: header is required"),
                         headers)
        if self._failures:
            status, retry_after_ms = self._failures.popleft()
            if retry_after_ms is not None:
                headers["retry-after-ms"] = str(retry_after_ms)
            kind, message = _ERRORS.get(status, ("api_error", "Internal server error"))
            return Reply(status, _error(kind, message), headers)
        body = request.body
        if not isinstance(body, dict):
            return Reply(400, _error("invalid_request_error", "Request body must be JSON"), headers)
        for required in ("model", "max_tokens", "messages"):
            if required not in body:
                return Reply(400, _error("invalid_request_error", f"{required}: Field required"), headers)
        for i, message in enumerate(body["messages"]):
            if message.get("role") not in ("user", "assistant"):
                problem = f"messages.{i}.role: Input should be 'user' or 'assistant'"
                return Reply(400, _error("invalid_request_error", problem), headers)
        problem = _tool_problem(body)
        if problem is not None:
            return Reply(400, _error("invalid_request_error", problem), headers)
        turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        u = self.turn_usage[turn] if turn < len(self.turn_usage) else self.usage
        content: list[dict[str, Any]]
        if body.get("tools") and turn < len(self.tool_turns):
            content = [{"type": "text", "text": self.tool_preamble}] if self.tool_preamble else []
            content += [{"type": "tool_use", "id": tool_use_id(turn, i), "name": call["name"],
                         "input": call.get("arguments", {})} for i, call in enumerate(self.tool_turns[turn])]
            stop_reason = "tool_use"
        else:
            content = [{"type": "text", "text": self.reply(body)}]
            stop_reason = self.stop_reason
        message = {
            "id": f"msg_fake{next(self._ids):018d}",
            "type": "message",
            "role": "assistant",
            "model": SNAPSHOTS.get(body["model"], body["model"]),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _usage_body(u),
        }
        return Reply(200, message, headers, delay_s=self.delay_s)


def _usage_body(u: AnthropicUsage | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(u, Mapping):
        return dict(u)
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "service_tier": "standard",
    }


def presented_key(request: RecordedRequest) -> str | None:
    """The API key a request carried: the ``x-api-key`` header, or (as SDK 2.x sends it) a bearer token."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    auth = request.headers.get("authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _tool_problem(body: dict[str, Any]) -> str | None:
    """The message the real API gives for a malformed tools list or tool conversation, if any."""
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
            return f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if not isinstance(tool.get("input_schema"), dict):
            return f"tools.{i}.custom.input_schema: Field required"
    messages = body["messages"]
    for i, message in enumerate(messages):
        uses = [b.get("id") for b in _blocks(message, "tool_use")]
        if message.get("role") == "assistant" and uses:
            following = messages[i + 1] if i + 1 < len(messages) else {}
            answered = {b.get("tool_use_id") for b in _blocks(following, "tool_result")}
            missing = [u for u in uses if u not in answered]
            if missing:
                return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                        f"after: {', '.join(map(str, missing))}. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message.")
        for j, block in enumerate(_blocks(message, "tool_result")):
            previous = messages[i - 1] if i > 0 else {}
            offered = {b.get("id") for b in _blocks(previous, "tool_use")} if previous.get("role") == "assistant" \
                else set()
            if block.get("tool_use_id") not in offered:
                return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message.")
    return None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
