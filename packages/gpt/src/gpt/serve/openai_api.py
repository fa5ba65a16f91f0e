"""The request and response shapes of OpenAI's API, as far as `gpt serve` speaks it.

Requests are pydantic models, so a field of the wrong type or out of range is refused before
any work, and the error names the field the way OpenAI's does:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "top_p", "code": null}}

Fields a client may send that this server ignores (penalties, logprobs, `user`, ...) are
accepted and ignored; a field nobody defined is refused, so a typo does not pass silently.
Responses are plain dicts built by the functions at the bottom; streamed ones are the same
objects as server-sent events, each `data: {json}\\n\\n`, the last `data: [DONE]\\n\\n`.
"""

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    # Accepted for compatibility, not used:
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | int | None = None
    top_logprobs: int | None = None
    user: str | None = None
    stream_options: dict[str, Any] | None = None

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s]


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients add name, tool_calls, ...

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None


class APIError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = (
            status, message, param, kind, code)  # fmt: skip

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}  # fmt: skip


def validation_error(errors: list[dict[str, Any]]) -> APIError:
    """pydantic's first complaint as one OpenAI error naming the field (`messages.0.role`)."""
    first = errors[0]
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    if first.get("type") == "json_invalid":
        return APIError(400, f"the body is not valid JSON: {first.get('msg')}", None)
    if first.get("type") == "extra_forbidden":
        return APIError(400, f"unrecognized request argument supplied: {param}", param)
    return APIError(400, f"{param or 'body'}: {first.get('msg')}", param)


# ----------------------------------------------------------------------------------------------
# Responses


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def _envelope(rid: str, kind: str, model: str, choices: list[dict]) -> dict:
    return {"id": rid, "object": kind, "created": int(time.time()), "model": model,
            "choices": choices}  # fmt: skip


def completion(rid: str, model: str, choices: list[dict], use: dict, chat: bool) -> dict:
    kind = "chat.completion" if chat else "text_completion"
    return {**_envelope(rid, kind, model, choices), "usage": use}


def choice(index: int, text: str, finish_reason: str, chat: bool) -> dict:
    if chat:
        return {"index": index, "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason, "logprobs": None}  # fmt: skip
    return {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}


def chunk_kind(chat: bool) -> str:
    return "chat.completion.chunk" if chat else "text_completion"


def chunk(rid: str, model: str, index: int, text: str | None, finish_reason: str | None,
          chat: bool, first: bool = False) -> dict:  # fmt: skip
    """One streamed piece: a text delta, or (text None) the end of a choice."""
    if chat:
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        piece = {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    else:
        piece = {"index": index, "text": text or "", "finish_reason": finish_reason,
                 "logprobs": None}  # fmt: skip
    return _envelope(rid, chunk_kind(chat), model, [piece])


def usage_chunk(rid: str, model: str, use: dict, chat: bool) -> dict:
    """The last streamed piece: no choices, the usage (as OpenAI's `include_usage` sends)."""
    return {**_envelope(rid, chunk_kind(chat), model, []), "usage": use}


def sse(data: dict | str) -> str:
    """One server-sent event."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
