"""``gateway mock``: the built-in fake LLM as a standalone OpenAI-compatible server.

The upstream for the test suite and the benchmarks, and a load-testing target of its
own. It can record what it receives (``--record N``; ``GET /mock/requests``) so tests
assert on exactly what a gateway forwarded.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
from functools import partial

import msgspec
from aiohttp import web

from gateway.accounting.tokens import Tokenizers, count_chat_prompt
from gateway.codec import splice_field
from gateway.config import MockConfig
from gateway.errors import GatewayError, NotFound
from gateway.providers import Endpoint, mock_embed
from gateway.providers import mock as dialect
from gateway.providers.dialect import Dialect, Inbound, ListedModel
from gateway.providers.registry import DIALECTS
from gateway.server.app import BACKLOG, wait_for_signal
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Dispatcher, Routes
from gateway.server.listing import pick
from gateway.server.mock_responses import MockResponses
from gateway.server.protocol import Server, settle_heap

log = logging.getLogger("gateway.mock")

MAX_BODY_BYTES = 16 * 1024 * 1024
MOCK_HEADER = "x-mock"  # the "mock" overrides as JSON (a body's own "mock" field wins)
RATE_LIMIT_HEADERS = {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999"}
# A short wait, so retry tests through a gateway stay fast.
RETRY_AFTER_HEADERS = {"retry-after-ms": "20", "retry-after": "1"}


class Recorded(msgspec.Struct):
    method: str
    path: str
    headers: dict[str, str]
    body: str
    query: str = ""  # as sent, percent-encoded


class Stats(msgspec.Struct):
    """What the mock saw of its streams: lets tests see, from the upstream's side,
    whether a gateway closed a stream when its client went away."""

    streams_started: int = 0
    streams_completed: int = 0
    streams_client_gone: int = 0
    streams_active: int = 0
    frames_sent: int = 0


class AuthError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class MockServer:
    __slots__ = ("_api_key", "_config", "_plan", "_recorded", "_responses", "_stats", "_tokenizers")

    def __init__(self, config: MockConfig, *, api_key: str | None, record: int, responses: bool = True) -> None:
        self._config = config
        self._api_key = api_key.encode() if api_key else None
        self._recorded: collections.deque[Recorded] = collections.deque(maxlen=record)
        self._plan = dialect.Planner(config)
        self._stats = Stats()
        self._tokenizers = Tokenizers()  # token counts, loaded on the first
        # The Responses API, and the responses it keeps (None: a server without it).
        self._responses = MockResponses(self) if responses else None

    def plan(self, body: bytes) -> dialect.Plan:
        """The fake's plan for an OpenAI chat request."""
        return self._plan(body, endpoint="chat")

    async def stream_response(self, request: web.BaseRequest) -> web.StreamResponse:
        """An event stream's response, its headers sent."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        return resp

    def check_auth(self, request: web.BaseRequest) -> None:
        if self._api_key is None:
            return
        h = request.headers
        # OpenAI's bearer token, Anthropic's x-api-key, Gemini's x-goog-api-key.
        given = h.get("x-api-key") or h.get("x-goog-api-key") or h.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self._api_key):
            # Echoes the key back, as OpenAI's own 401 does (partly masked there): a
            # gateway in front must scrub it.
            raise AuthError(f"mock provider: incorrect API key provided: {given}")

    async def _serve(self, request: web.BaseRequest, endpoint: Endpoint) -> web.StreamResponse:
        body = await self.read(request)
        self.check_auth(request)
        overrides = request.headers.get(MOCK_HEADER)
        if overrides and b'"mock"' not in body:
            # Faults steered by header, as on the dialect routes: a body translated from
            # another dialect by a gateway in front has lost its "mock" field.
            body = splice_field(body, b"mock", overrides.encode())
        plan = self._plan(body, endpoint=endpoint)
        # What real providers send and clients pace themselves by (relayed by a gateway).
        headers = {"x-request-id": f"req-{plan.id}", **RATE_LIMIT_HEADERS}
        if plan.fail_status:
            if plan.fail_status == 429:
                headers.update(RETRY_AFTER_HEADERS)
            return web.Response(
                status=plan.fail_status,
                body=dialect.error_body(plan.fail_status),
                headers={"Content-Type": JSON, **headers},
            )
        if endpoint == "embeddings":
            data = mock_embed.answer(body)
            if plan.ttft_s:
                await asyncio.sleep(plan.ttft_s)
            return web.Response(body=data, headers={"Content-Type": JSON, **headers})
        if not plan.stream:
            delay = dialect.unary_delay_s(plan)
            if delay:
                await asyncio.sleep(delay)
            return web.Response(body=dialect.completion_body(plan), headers={"Content-Type": JSON, **headers})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers})
        await resp.prepare(request)
        stats = self._stats
        stats.streams_started += 1
        stats.streams_active += 1
        gone = True
        try:
            async for frame in dialect.paced(plan):
                await resp.write(frame)
                stats.frames_sent += 1
            gone = False
        except dialect.MockReset:
            gone = False
            if request.transport is not None:
                request.transport.abort()  # a real reset: RST, no chunked terminator
            return resp
        finally:
            stats.streams_active -= 1
            if gone:
                stats.streams_client_gone += 1
        stats.streams_completed += 1
        await resp.write_eof()
        return resp

    async def chat(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def native(self, request: web.BaseRequest, *, inbound: Inbound) -> web.StreamResponse:
        """A translated dialect's upstream chat path (Anthropic's POST /v1/messages)."""
        return await self._dialect(request, inbound, stream=False, model="")

    async def by_model(
        self, request: web.BaseRequest, *, wire: Dialect, inbound: Inbound, prefix: str
    ) -> web.StreamResponse:
        """A dialect whose URL names the model (Gemini's POST
        /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens |
        :embedContent | :batchEmbedContents)."""
        assert wire.upstream is not None
        parsed = wire.upstream.model_path(request.path.removeprefix(prefix))
        if parsed is None:
            raise NotFound(f"Invalid URL ({request.method} {request.path})")
        model, action = parsed
        if action.kind in ("embed_one", "embed_batch") and wire.embedder is not None:
            return await self._embed_native(request, wire, model=model, single=action.kind == "embed_one")
        if action.kind == "count_tokens":
            return await self.count(request, inbound=inbound, model=model)
        return await self._dialect(request, inbound, stream=action.stream, model=model)

    async def count(self, request: web.BaseRequest, *, inbound: Inbound, model: str = "") -> web.StreamResponse:
        """A translated dialect's token count (Anthropic's POST /v1/messages/count_tokens,
        Gemini's :countTokens), with the gateway's offline tokenizer (``model``: the URL's,
        for a dialect whose URL names it)."""
        body = await self.read(request)
        try:
            self.check_auth(request)
            model = model or inbound.head(body, strict=False).model or ""
            prompt = inbound.count_request(body, model=model)
            tokens = count_chat_prompt(self._tokenizers.for_model(model), prompt)
        except GatewayError as e:
            return self._dialect_error(inbound, e.status, e.body())
        return web.Response(body=inbound.count_answer(tokens), content_type=JSON)

    async def read(self, request: web.BaseRequest) -> bytes:
        body = await read_bounded(request, limit=MAX_BODY_BYTES)
        if self._recorded.maxlen:
            self._recorded.append(
                Recorded(
                    request.method,
                    request.path,
                    dict(request.headers),
                    body.decode("utf-8", "replace"),
                    request.query_string,
                )
            )
        return body

    async def _dialect(
        self, request: web.BaseRequest, inbound: Inbound, *, stream: bool, model: str
    ) -> web.StreamResponse:
        """The OpenAI fake behind a reverse translator: the request into OpenAI's form,
        the answer, stream or error back into the dialect's (``model`` and ``stream``:
        from the URL, for a dialect whose URL names them)."""
        body = await self.read(request)
        try:
            self.check_auth(request)
            openai_body = inbound.to_openai(body, model=model, stream=stream)
            overrides = request.headers.get(MOCK_HEADER)
            if overrides:
                # A dialect's body has no room for the "mock" field: steer by header
                # (through a gateway: x-bf-eh-x-mock).
                openai_body = splice_field(openai_body, b"mock", overrides.encode())
            plan = self._plan(openai_body, endpoint="chat")
        except GatewayError as e:
            return self._dialect_error(inbound, e.status, e.body())
        if plan.fail_status:
            return self._dialect_error(inbound, plan.fail_status, dialect.error_body(plan.fail_status))
        if not plan.stream:
            delay = dialect.unary_delay_s(plan)
            if delay:
                await asyncio.sleep(delay)
            data = dialect.completion_body(plan)
            return web.Response(body=inbound.answer(data, request=body), content_type=JSON)
        tr = inbound.stream(request=body)
        resp = await self.stream_response(request)
        try:
            async for frame in dialect.paced(plan):
                out = tr.feed(frame)
                if out:
                    await resp.write(out)
        except dialect.MockReset:
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    async def _embed_native(self, request: web.BaseRequest, wire: Dialect, *, model: str, single: bool) -> web.Response:
        """Gemini's embedContent / batchEmbedContents: the OpenAI fake's vectors, in
        Gemini's shape."""
        assert wire.embedder is not None and wire.inbound is not None
        body = await read_bounded(request, limit=MAX_BODY_BYTES)
        if self._recorded.maxlen:
            self._recorded.append(
                Recorded(request.method, request.path, dict(request.headers), body.decode("utf-8", "replace"))
            )
        try:
            self.check_auth(request)
            openai_body = wire.embedder.client_request(body, model=model, single=single)
            overrides = request.headers.get(MOCK_HEADER)
            if overrides:
                openai_body = splice_field(openai_body, b"mock", overrides.encode())
            plan = self._plan(openai_body, endpoint="embeddings")
            if plan.fail_status:
                return self._dialect_error(wire.inbound, plan.fail_status, dialect.error_body(plan.fail_status))
            data = wire.embedder.client_answer(mock_embed.answer(openai_body), single=single)
        except GatewayError as e:
            return self._dialect_error(wire.inbound, e.status, e.body())
        return web.Response(body=data, content_type=JSON)

    async def embeddings(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._serve(request, "embeddings")

    def _dialect_error(self, inbound: Inbound, status: int, openai_body: bytes) -> web.Response:
        return web.Response(status=status, body=inbound.error(status, openai_body), content_type=JSON)

    async def completions(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._serve(request, "text")

    async def models(
        self, request: web.BaseRequest, *, families: tuple[Dialect, ...] = (dialect.DIALECT,)
    ) -> web.StreamResponse:
        """The model list in the shape of the dialect that asked (``families``: those
        whose upstreams list models at this path; Anthropic's and OpenAI's share
        /v1/models, told apart by ``anthropic-version``)."""
        self.check_auth(request)
        shape = pick(request, families)
        if shape is not None and shape.inbound is not None:
            entries = [ListedModel(m, "mock", dialect.ENDPOINTS) for m in self._config.models]
            return web.Response(body=shape.inbound.model_list(entries), content_type=JSON)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in self._config.models]
        return web.Response(body=msgspec.json.encode({"object": "list", "data": data}), content_type=JSON)

    async def health(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=b'{"status":"ok"}', content_type=JSON)

    async def requests(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=msgspec.json.encode(list(self._recorded)), content_type=JSON)

    async def stats(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=msgspec.json.encode(self._stats), content_type=JSON)

    async def clear(self, request: web.BaseRequest) -> web.StreamResponse:
        self._recorded.clear()
        return web.Response(status=204)

    def routes(self) -> Routes:
        table: Routes = {
            "/health": {"GET": self.health},
            "/mock/requests": {"GET": self.requests, "DELETE": self.clear},
            "/mock/stats": {"GET": self.stats},
        }
        for prefix in ("/v1", ""):
            table[f"{prefix}/chat/completions"] = {"POST": self.chat}
            table[f"{prefix}/completions"] = {"POST": self.completions}
            table[f"{prefix}/models"] = {"GET": self.models}
            table[f"{prefix}/embeddings"] = {"POST": self.embeddings}
        return {**table, **self.dialect_routes()[0], **self._responses_routes()[0]}

    def _responses_routes(self) -> tuple[Routes, Routes]:
        return self._responses.routes(self.count) if self._responses is not None else ({}, {})

    def dialect_routes(self) -> tuple[Routes, Routes]:
        """(exact routes, prefix routes): the upstream paths of every translated dialect
        (Anthropic's /v1/messages, /v1/messages/count_tokens, /v1/models; Gemini's
        /v1beta/models/{model}:action by prefix, /v1beta/models), answered in its wire
        format."""
        exact: Routes = {}
        prefixes: Routes = {}
        # Who lists models where: OpenAI's /v1/models, and each dialect's models path.
        lists: dict[str, tuple[Dialect, ...]] = {"/v1/models": (dialect.DIALECT,)}
        for wire in DIALECTS.values():
            up, inbound = wire.upstream, wire.inbound
            if up is None or inbound is None or wire.translator is None:
                continue
            lists[up.models_path] = (*lists.get(up.models_path, ()), wire)
            if up.url_names_model:
                prefix = up.models_path + "/"
                prefixes[prefix] = {"POST": partial(self.by_model, wire=wire, inbound=inbound, prefix=prefix)}
                continue
            exact[up.paths["chat"]] = {"POST": partial(self.native, inbound=inbound)}
            if "count_tokens" in up.paths:
                exact[up.paths["count_tokens"]] = {"POST": partial(self.count, inbound=inbound)}
        for path, families in lists.items():
            exact[path] = {"GET": partial(self.models, families=families)}
        return exact, {**prefixes, **self._responses_routes()[1]}


async def serve_mock(
    config: MockConfig, *, host: str, port: int, api_key: str | None, record: int, responses: bool = True
) -> None:
    mock = MockServer(config, api_key=api_key, record=record, responses=responses)
    server = Server(
        Dispatcher(
            mock.routes(),
            prefixes=mock.dialect_routes()[1],
        ),
        handler_cancellation=True,
        access_log=None,
    )
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, host=host, port=port, backlog=BACKLOG, reuse_address=True)
    bound = listener.sockets[0].getsockname()[1]
    settle_heap()
    log.info("mock provider listening on http://%s:%d/v1", host, bound)
    try:
        await wait_for_signal()
    finally:
        listener.close()
        server.pre_shutdown()
        await server.shutdown(1.0)
