"""`gpt serve`: any gpt run behind OpenAI's HTTP API, a chat page, health and metrics.

    uv run --package gpt serve --run RUN [--host 127.0.0.1] [--port 8000] [--api-key KEY]

    GET  /                      a chat page (gpt/serve/static/chat.html), no build step
    GET  /v1/models             the one model served, named after its run
    POST /v1/completions        text in, text out; `stream: true` for server-sent events
    POST /v1/chat/completions   messages in the SFT chat template (a base model gets their
                                contents joined by newlines as a plain prompt)
    GET  /health                {"status": "ok", ...} once the model is loaded
    GET  /metrics               Prometheus text: requests, tokens, queue, latency

So the official `openai` package (or anything that speaks its API) works unchanged:

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY or "none")
    client.chat.completions.create(model=RUN, messages=[...], stream=True)

Every request becomes one `Request` per choice for the `Scheduler`, which decodes all running
requests together; this module only translates between HTTP and those requests. The event loop
never runs the model: the scheduler's thread does, and hands text back through
`loop.call_soon_threadsafe`. A streaming client that goes away cancels its requests, and their
slots are free before the next decoding step.

Binds to 127.0.0.1 unless told otherwise: the model answers anyone who can reach the port.
With `--api-key` (or GPT_API_KEY in the environment) every /v1 route needs
`Authorization: Bearer KEY`; the page, /health and /metrics stay open.
"""

import asyncio
import hmac
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import torch
from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from gpt.chat.format import END, ROLE_TOKENS, Message, render
from gpt.model import GPT
from gpt.serve import openai_api as api
from gpt.serve.scheduler import Request, Sampling, Scheduler
from shared.config import option, parse_config
from shared.errors import UsageError
from tokenizers_fromscratch import Tokenizer


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (two apps in one process,
    as in the tests, must not share counters)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("gpt_requests", "HTTP requests", ["route", "status"], registry=r)
        self.prompt_tokens = Counter("gpt_prompt_tokens", "prompt tokens read", registry=r)
        self.completion_tokens = Counter("gpt_completion_tokens", "tokens generated", registry=r)
        queue = Gauge("gpt_queue_length", "requests waiting for a slot", registry=r)
        queue.set_function(lambda: scheduler.queue_length)
        running = Gauge("gpt_running_requests", "requests being decoded", registry=r)
        running.set_function(lambda: scheduler.active)
        self.latency = Histogram("gpt_request_latency_seconds", "submit to last token",
                                 registry=r)  # fmt: skip
        self.ttft = Histogram("gpt_time_to_first_token_seconds", "submit to first token",
                              registry=r)  # fmt: skip
        # Histograms give percentiles only to a bucket's width; these give them exactly, over
        # the most recent 1,000 requests.
        self.recent_latency: deque[float] = deque(maxlen=1000)
        self.recent_ttft: deque[float] = deque(maxlen=1000)
        for name, values in (("request_latency", self.recent_latency),
                             ("time_to_first_token", self.recent_ttft)):  # fmt: skip
            for q in (50, 90, 99):
                gauge = Gauge(
                    f"gpt_{name}_p{q}_seconds",
                    f"{name} percentile {q}, last 1,000 requests",
                    registry=r,
                )
                gauge.set_function(lambda v=values, q=q: percentile(v, q))

    def finished(self, request: Request) -> None:
        now = time.perf_counter()
        self.prompt_tokens.inc(len(request.prompt_ids))
        self.completion_tokens.inc(len(request.output_ids))
        self.latency.observe(now - request.submitted)
        self.recent_latency.append(now - request.submitted)
        if request.first_token_at is not None:
            self.ttft.observe(request.first_token_at - request.submitted)
            self.recent_ttft.append(request.first_token_at - request.submitted)


class CountRequests:
    """ASGI middleware counting responses by path and status. (Plain ASGI rather than FastAPI's
    `@app.middleware`, whose wrapper would sit between a stream and its client's disconnect.)"""

    def __init__(self, app, counter: Counter) -> None:
        self.app, self.counter = app, counter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                self.counter.labels(scope["path"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def percentile(values: deque[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Served:
    """What one server serves: the model, its tokenizer and the name clients ask for."""

    model: GPT
    tok: Tokenizer
    name: str
    api_key: str | None = None
    slots: int = 16
    step_delay: float = 0.0

    @property
    def is_chat(self) -> bool:
        return all(t in self.tok.str_to_id for t in [*ROLE_TOKENS.values(), END])

    @property
    def end_id(self) -> int | None:
        return self.tok.token_to_id(END) if END in self.tok.str_to_id else None


async def _api_error(_: HTTPRequest, error: api.APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


async def _invalid(_: HTTPRequest, error: RequestValidationError) -> JSONResponse:
    refused = api.validation_error(list(error.errors()))
    return JSONResponse(refused.body(), status_code=refused.status)


async def _http(_: HTTPRequest, error: HTTPException) -> JSONResponse:
    kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
    body = api.APIError(error.status_code, str(error.detail), kind=kind).body()
    return JSONResponse(body, status_code=error.status_code)


class Endpoints:
    """The routes of one served model: each HTTP route is one method, the checks they share
    (the API key, the model's name, the prompt's length) are methods too."""

    def __init__(self, served: Served, scheduler: Scheduler, metrics: Metrics) -> None:
        self.served, self.scheduler, self.metrics = served, scheduler, metrics
        self.context = served.model.config.block_size

    # --- checks -----------------------------------------------------------------------------

    def authorize(self, request: HTTPRequest) -> None:
        sent, key = request.headers.get("authorization", ""), self.served.api_key
        if key and not hmac.compare_digest(sent, f"Bearer {key}"):
            raise api.APIError(401, "missing or wrong API key: send Authorization: Bearer KEY",
                               kind="invalid_request_error", code="invalid_api_key")  # fmt: skip

    def check_model(self, name: str) -> None:
        served = self.served.name
        if name != served:
            raise api.APIError(404, f"the model {name!r} does not exist; this server serves "
                               f"{served!r}", "model", code="model_not_found")  # fmt: skip

    def encode(self, text: str, param: str) -> list[int]:
        try:
            ids = self.served.tok.encode(text)
        except UsageError as error:
            raise api.APIError(400, f"{param}: {error}", param) from None
        if not ids:
            raise api.APIError(400, f"{param}: empty", param)
        return ids

    def budget(self, body: api.GenerationRequest, prompt: list[int], param: str,
               default: int) -> int:  # fmt: skip
        """max_tokens, checked against the context window."""
        context = self.context
        if len(prompt) >= context:
            raise api.APIError(400, f"{param}: {len(prompt)} tokens, but the context window is "
                               f"{context} tokens (with room for a reply)", param)  # fmt: skip
        asked = getattr(body, "max_completion_tokens", None) or body.max_tokens
        if asked is None:
            return min(default, context - len(prompt))
        if len(prompt) + asked > context:
            raise api.APIError(400, f"max_tokens: {asked} new tokens after a {len(prompt)}-token "
                               f"prompt exceed the context window of {context} tokens; ask "
                               f"for at most {context - len(prompt)}", "max_tokens")  # fmt: skip
        return asked

    # --- routes -----------------------------------------------------------------------------

    async def page(self) -> str:
        return resources.files("gpt.serve").joinpath("static/chat.html").read_text(encoding="utf-8")

    async def health(self) -> dict:
        scheduler = self.scheduler
        return {"status": "ok", "model": self.served.name, "running": scheduler.active,
                "waiting": scheduler.queue_length, "decode_steps": scheduler.steps}  # fmt: skip

    async def prometheus(self) -> PlainTextResponse:
        registry = self.metrics.registry
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def models(self, request: HTTPRequest) -> dict:
        self.authorize(request)
        return {"object": "list", "data": [{"id": self.served.name, "object": "model",
                                            "created": 0, "owned_by": "gpt",
                                            "context_window": self.context,
                                            "chat_template": self.served.is_chat}]}  # fmt: skip

    async def completions(self, body: api.CompletionRequest, request: HTTPRequest):
        self.authorize(request)
        self.check_model(body.model)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise api.APIError(400, "prompt: send one prompt per request", "prompt")
        ids = self.encode(prompts[0], "prompt")
        return await self.respond(body, ids, self.budget(body, ids, "prompt", 16), chat=False)

    async def chat_completions(self, body: api.ChatRequest, request: HTTPRequest):
        self.authorize(request)
        self.check_model(body.model)
        messages = [Message(m.role, m.content) for m in body.messages]
        if self.served.is_chat:
            text = render(messages, generation_prompt=True)
        else:  # a base model has no template: its prompt is the conversation's text
            text = "\n".join(m.content for m in messages) + "\n"
        ids = self.encode(text, "messages")
        return await self.respond(body, ids, self.budget(body, ids, "messages", 256), chat=True)

    # --- generating -------------------------------------------------------------------------

    async def respond(self, body: api.GenerationRequest, ids: list[int], max_tokens: int,
                      chat: bool):  # fmt: skip
        """Submit one request per choice; stream their events, or wait and answer once."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        requests = []
        for index in range(body.n):
            seed = None if body.seed is None else body.seed + index
            sampling = Sampling(max_tokens, body.temperature, body.top_p, body.stop_strings(),
                                seed)  # fmt: skip

            def on_event(kind: str, value: str, index: int = index) -> None:
                loop.call_soon_threadsafe(events.put_nowait, (index, kind, value))

            requests.append(Request(ids, sampling, on_event, end_id=self.served.end_id))
        for r in requests:
            self.scheduler.submit(r)
        if body.stream:
            return StreamingResponse(stream(rid, body.model, requests, events, chat,
                                            self.metrics.finished),
                                     media_type="text/event-stream")  # fmt: skip
        texts, reasons = await self.collect(requests, events, body.n)
        choices = [api.choice(i, texts[i], reasons[i], chat) for i in range(body.n)]
        use = api.usage(len(ids), sum(len(r.output_ids) for r in requests))
        return api.completion(rid, self.served.name, choices, use, chat)

    async def collect(self, requests: list[Request], events: asyncio.Queue,
                      n: int) -> tuple[list[str], list[str]]:  # fmt: skip
        """Every choice's whole text and finish reason; cancels what runs if we are cancelled."""
        texts, reasons = [""] * n, [""] * n
        try:
            while not all(reasons):
                index, kind, value = await events.get()
                if kind == "text":
                    texts[index] += value
                else:
                    reasons[index] = value
                    self.metrics.finished(requests[index])
        finally:
            for r in requests:
                r.cancel()
        return texts, reasons


def create_app(served: Served) -> FastAPI:
    """The FastAPI application; the scheduler starts and stops with it."""
    scheduler = Scheduler(served.model, served.tok.decode, served.slots, served.step_delay)
    metrics = Metrics(scheduler)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        scheduler.start()
        yield
        scheduler.shutdown()

    app = FastAPI(title=f"gpt serve: {served.name}", docs_url=None, redoc_url=None,
                  lifespan=lifespan)  # fmt: skip
    app.state.scheduler, app.state.metrics = scheduler, metrics
    app.add_middleware(CountRequests, counter=metrics.requests)
    app.add_exception_handler(api.APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    routes = Endpoints(served, scheduler, metrics)
    app.get("/", response_class=HTMLResponse)(routes.page)
    app.get("/health")(routes.health)
    app.get("/metrics")(routes.prometheus)
    app.get("/v1/models")(routes.models)
    app.post("/v1/completions")(routes.completions)
    app.post("/v1/chat/completions")(routes.chat_completions)
    return app


async def stream(rid: str, model: str, requests: list[Request], events: asyncio.Queue,
                 chat: bool, finish) -> AsyncIterator[str]:  # fmt: skip
    """Server-sent events for `requests` as their text arrives; cancels them if the client
    goes away (the response is cancelled at an `await`, and `finally` runs)."""
    left = len(requests)
    try:
        if chat:  # OpenAI's first chunk carries the role
            for i in range(len(requests)):
                yield api.sse(api.chunk(rid, model, i, "", None, chat, first=True))
        while left:
            index, kind, value = await events.get()
            if kind == "text":
                yield api.sse(api.chunk(rid, model, index, value, None, chat))
            else:
                left -= 1
                finish(requests[index])
                yield api.sse(api.chunk(rid, model, index, None, value, chat))
        use = api.usage(len(requests[0].prompt_ids), sum(len(r.output_ids) for r in requests))
        yield api.sse(api.usage_chunk(rid, model, use, chat))
        yield api.sse("[DONE]")
    finally:
        for r in requests:
            r.cancel()


# ----------------------------------------------------------------------------------------------
# The command


@dataclass
class ServeConfig:
    run: str | None = option(None, "the gpt run to serve, base or fine-tuned (default: latest)")
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = option(8000, "port to listen on", ge=1, le=65535)
    api_key: str | None = option(None, "require Authorization: Bearer KEY on /v1 "
                                 "(default: $GPT_API_KEY, else no key)")  # fmt: skip
    slots: int = option(16, "requests decoded together at most; more wait in a queue", ge=1)
    name: str | None = option(None, "the model name clients send (default: the run's name)")
    threads: int = option(0, "torch CPU threads (0: the idle cores)", ge=0)
    step_delay: float = option(0.0, "seconds to pause after each decoding step (demos, tests)",
                               ge=0)  # fmt: skip


def serve(argv: list[str]) -> None:
    import uvicorn

    from gpt.runs import load_run_model, run_folder_of
    from shared.device import pick_threads

    cfg = parse_config(ServeConfig, argv, prog="gpt serve", description=__doc__.split("\n\n")[0])
    pick_threads(cfg.threads)
    model, tok, _, folder = load_run_model(cfg.run, torch.device("cpu"))
    name = cfg.name or run_folder_of(folder).name
    key = cfg.api_key or os.environ.get("GPT_API_KEY") or None
    served = Served(model, tok, name, key, cfg.slots, cfg.step_delay)
    print(f"serving {name} ({'chat template' if served.is_chat else 'base model'}, context "
          f"{model.config.block_size}) at http://{cfg.host}:{cfg.port}/  "
          f"(OpenAI base URL http://{cfg.host}:{cfg.port}/v1{', API key required' if key else ''})",
          flush=True)  # fmt: skip
    uvicorn.run(create_app(served), host=cfg.host, port=cfg.port, log_level="warning")
