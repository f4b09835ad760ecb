"""One provider's HTTP transport: its URLs, its per-key request heads, its timeouts,
sent over the gateway's pool or the process's aiohttp session.

Routing facts (keys' health, pricing, limits) live above, in ``routing.providers``;
this module only knows how to reach one upstream in its dialect.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from urllib.parse import urlsplit

import aiohttp
import msgspec

from gateway.config import ProviderConfig
from gateway.config.proxy import Proxy
from gateway.errors import UpstreamError, UpstreamProtocolError
from gateway.providers import Endpoint
from gateway.providers.registry import DIALECTS
from gateway.upstream.client import Bounds, Reply, Timeouts, bounds, first_byte_s, send
from gateway.upstream.origin import Origin
from gateway.upstream.pool import Pool

# Bounded so a client cycling through model names cannot grow the head cache forever.
_MAX_HEADS = 1024


class HTTPTransport:
    """A provider reached over HTTP in its own dialect (OpenAI-compatible, Anthropic, Gemini)."""

    __slots__ = (
        "dialect",
        "first_byte_s",
        "name",
        "pool_limit",
        "_base",
        "_bounds",
        "_extra",
        "_heads",
        "_keys",
        "_max_bytes",
        "_models",
        "_models_url",
        "_origin",
        "_pool",
        "_proxy",
        "_proxy_auth",
        "_session",
        "_ssl",
        "_stream",
        "_timeouts",
        "_unary",
        "_url_names_model",
        "_urls",
        "_wire",
    )

    def __init__(self, name: str, cfg: ProviderConfig, *, session: aiohttp.ClientSession, pool: Pool | None) -> None:
        self.name = name
        self.dialect: str = cfg.dialect
        wire = DIALECTS[cfg.dialect].upstream
        assert wire is not None, f"dialect {cfg.dialect} is not reached over HTTP"
        self._base = cfg.base_url
        # A URL that names the model (Gemini's) is built per request (``_url``); the
        # others once, here. Decided once: a plain attribute test per request.
        self._url_names_model = wire.url_names_model
        self._urls: dict[Endpoint, str] = {} if wire.url_names_model else wire.urls(cfg.base_url)
        self._models_url: str = cfg.base_url + wire.models_path
        keys = cfg.keys or ()
        self._keys = [wire.request_headers(api_key=k.value, extra=cfg.headers) for k in keys] or [
            wire.request_headers(api_key=None, extra=cfg.headers)
        ]
        # A client's own key (x-bf-direct-key) gets its headers built the same way, per request.
        self._wire, self._extra = wire, cfg.headers
        t = cfg.timeouts
        self._timeouts = t
        # Without per-request overrides, an attempt's bounds are the provider's: once, here.
        self._bounds = (bounds(t, None, stream=False), bounds(t, None, stream=True))
        self._unary = self._client_timeout(self._bounds[0])
        self._stream = self._client_timeout(self._bounds[1])
        self.first_byte_s = first_byte_s(t)
        self._max_bytes = cfg.max_response_bytes
        self._session = session
        self._models = list(cfg.models)
        self._ssl = ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else None
        # The forward proxy, as config resolved it (HTTPS_PROXY and friends, or the provider's own).
        proxy = None if cfg.proxy == "none" else Proxy(cfg.proxy)
        # aiohttp is given the proxy without its credentials, which go apart (proxy_auth):
        # the URL it puts into its errors then holds no secret.
        self._proxy = proxy.name if proxy is not None else None
        self._proxy_auth = (
            aiohttp.BasicAuth(proxy.user, proxy.password, encoding="utf-8")
            if proxy is not None and proxy.user is not None
            else None
        )
        # The gateway's own pool when configured: request heads built once per key and URL.
        self._pool = pool if cfg.client == "pool" else None
        self._origin = self._pool.origin(cfg.base_url, ssl_context=self._ssl, proxy=proxy) if self._pool else None
        # The origin's cap and wait this provider asks for, set by ``limit_origins`` once
        # its whole config is built (the aiohttp client keeps its own per-host cap).
        self.pool_limit: tuple[Origin, int, float] | None = (
            (self._origin, cfg.max_connections, cfg.pool_timeout_s) if self._origin is not None else None
        )
        self._heads: dict[tuple[str, int], bytes] = {}

    def _url(self, endpoint: Endpoint, *, model: str, stream: bool) -> str:
        if self._url_names_model:
            return self._wire.url(self._base, endpoint, model=model, stream=stream)
        return self._urls[endpoint]

    def _head(self, url: str, key: int) -> bytes:
        head = self._heads.get((url, key))
        if head is None:
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            assert self._origin is not None
            head = self._heads[(url, key)] = self._origin.head("POST", _path(url), self._keys[key])
        return head

    def _timeout(self, stream: bool, o: Timeouts | None) -> aiohttp.ClientTimeout:
        if o is None:
            return self._stream if stream else self._unary
        return self._client_timeout(bounds(self._timeouts, o, stream=stream))

    def _client_timeout(self, b: Bounds) -> aiohttp.ClientTimeout:
        # aiohttp has no first-byte bound of its own: relay.stream waits for the first chunk.
        return aiohttp.ClientTimeout(total=b.total_s, sock_connect=self._timeouts.connect_s, sock_read=b.idle_s)

    async def send(
        self,
        endpoint: Endpoint,
        body: bytes,
        *,
        stream: bool,
        timeouts: Timeouts | None,
        key: int = 0,
        model: str = "",
        extra: tuple[tuple[str, str], ...] = (),
        secret: str | None = None,
    ) -> Reply:
        if secret is not None:
            return await self._send_direct(
                endpoint, body, stream=stream, timeouts=timeouts, model=model, extra=extra, secret=secret
            )
        pool = self._pool
        if pool is not None and not stream and timeouts is None and not self._url_names_model:
            # The common unary call, in one frame (``_send_pooled`` below, specialised).
            head = self._head(self._urls[endpoint], key)
            if extra:
                head += "".join(f"\r\n{k}: {v}" for k, v in extra).encode("latin-1")
            t = self._timeouts
            try:
                # One deadline for headers and body alike: request_s from now (as bounds()
                # gives it, proven equal by tests/unit/upstream/test_http.py).
                return await pool.request(
                    self._origin,  # type: ignore[arg-type]
                    head,
                    body,
                    connect_s=t.connect_s,
                    first_byte_s=None,
                    total_s=t.request_s,
                    max_body_bytes=self._max_bytes,
                )
            except UpstreamError as e:
                e.message = f"provider '{self.name}': {e.message}"
                raise
        url = self._url(endpoint, model=model, stream=stream)
        if pool is not None:
            head = self._head(url, key)
            if extra:
                head += "".join(f"\r\n{k}: {v}" for k, v in extra).encode("latin-1")
            return await self._send_pooled(head, body, stream=stream, timeouts=timeouts)
        headers = self._keys[key]
        if extra:
            headers = {**headers, **dict(extra)}
        return await self._send_session(url, body, headers, stream=stream, timeouts=timeouts)

    async def _send_direct(
        self,
        endpoint: Endpoint,
        body: bytes,
        *,
        stream: bool,
        timeouts: Timeouts | None,
        model: str,
        extra: tuple[tuple[str, str], ...],
        secret: str,
    ) -> Reply:
        """A call with the client's own key (x-bf-direct-key): its headers are built for
        this request alone, as a configured key's are, and never cached (``_heads``)."""
        url = self._url(endpoint, model=model, stream=stream)
        headers = self._wire.request_headers(api_key=secret, extra=self._extra)
        headers.update(extra)
        if self._origin is not None:
            return await self._send_pooled(
                self._origin.head("POST", _path(url), headers), body, stream=stream, timeouts=timeouts
            )
        return await self._send_session(url, body, headers, stream=stream, timeouts=timeouts)

    def _send_session(
        self, url: str, body: bytes, headers: dict[str, str], *, stream: bool, timeouts: Timeouts | None
    ) -> Awaitable[Reply]:
        """A POST over the process's aiohttp session (``client: aiohttp``)."""
        return send(
            self._session,
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=self._timeout(stream, timeouts),
            provider=self.name,
            ssl=self._ssl,
            max_body_bytes=self._max_bytes,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        )

    async def _send_pooled(self, head: bytes, body: bytes, *, stream: bool, timeouts: Timeouts | None) -> Reply:
        b = self._bounds[stream] if timeouts is None else bounds(self._timeouts, timeouts, stream=stream)
        assert self._pool is not None and self._origin is not None
        try:
            reply = await self._pool.request(
                self._origin,
                head,
                body,
                connect_s=self._timeouts.connect_s,
                first_byte_s=b.first_byte_s,
                total_s=b.total_s,
                max_body_bytes=self._max_bytes,
            )
        except UpstreamError as e:
            e.message = f"provider '{self.name}': {e.message}"
            raise
        if stream:  # between reads
            assert b.idle_s is not None
            reply.watch_idle(b.idle_s)
        return reply

    def resource(
        self,
        method: str,
        path: str,
        *,
        key: int,
        extra: tuple[tuple[str, str], ...] = (),
        timeouts: Timeouts | None = None,
        secret: str | None = None,
    ) -> Awaitable[Reply]:
        """``method`` (GET, DELETE, POST without a body) on something the upstream keeps,
        ``{base_url}{path}`` (``path``: already percent-encoded, its query too), with key
        ``key`` (or the client's own, ``secret``), the client's forwarded headers
        (``extra``) and timeouts, as ``send`` takes them. Over the process's session, as
        the model list: these are rare management calls, not worth a pooled head per URL."""
        headers = self._keys[key] if secret is None else self._wire.request_headers(api_key=secret, extra=self._extra)
        if extra:
            headers = {**headers, **dict(extra)}
        return send(
            self._session,
            method,
            self._base + path,
            headers=headers,
            timeout=self._timeout(False, timeouts),
            provider=self.name,
            ssl=self._ssl,
            max_body_bytes=self._max_bytes,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        )

    async def list_models(self) -> list[str]:
        if self._models:
            return self._models
        reply = await send(
            self._session,
            "GET",
            self._models_url,
            headers=self._keys[0],
            timeout=self._unary,
            provider=self.name,
            ssl=self._ssl,
            max_body_bytes=self._max_bytes,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        )
        try:
            data = await reply.read()
        finally:
            reply.close()
        if reply.status != 200:
            raise UpstreamProtocolError(
                f"provider '{self.name}' answered GET {self._models_url} with HTTP {reply.status}"
            )
        try:
            return self._wire.model_list(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{self.name}' sent an unreadable model list: {e}") from None


def _path(url: str) -> str:
    """The request target of ``url``: its path and query."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")
