"""The one upstream session per process, and the classification of its failures.

Every aiohttp exception is turned into a ``gateway.errors.Upstream*`` error here, at
the boundary; nothing above this module sees aiohttp's client exceptions.

An attempt's time bounds, for either client, are made in one place: ``bounds``. Above
it the relay only takes what is left of a client's x-bf-request-timeout
(``relay.call.Call.send``; the first-chunk wait of ``relay.stream`` and the retry
deadline of ``relay.attempts`` read the same deadline).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncGenerator, Mapping
from typing import NamedTuple, Protocol

import aiohttp

from gateway import __version__
from gateway.config import TimeoutConfig
from gateway.errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.upstream.relayed import RELAYED_HEADERS

USER_AGENT = f"gateway/{__version__}"
# Streams are read as they arrive; 64 KiB holds many SSE frames per read without
# letting one slow client pin much memory.
READ_BUFSIZE = 64 * 1024
# Connections kept open per upstream host: enough for a busy edge process, bounded
# so a stuck upstream cannot exhaust file descriptors.
MAX_CONNECTIONS_PER_HOST = 1000
DNS_CACHE_TTL_S = 30


class Timeouts(NamedTuple):
    """Per-request overrides (``x-bf-request-timeout``, ``x-bf-stream-idle-timeout``)."""

    request_s: float | None
    stream_idle_s: float | None


class Bounds(NamedTuple):
    """One attempt's time bounds, whichever client sends it (None: unbounded)."""

    total_s: float | None  # the whole answer, headers and body
    first_byte_s: float | None  # a stream's response headers (a unary call's: total_s)
    idle_s: float | None  # between two reads of a stream's body


def first_byte_s(t: TimeoutConfig) -> float:
    """A stream's first-byte bound as configured: ``first_byte_s``, else ``stream_idle_s``."""
    return t.first_byte_s or t.stream_idle_s


def bounds(t: TimeoutConfig, o: Timeouts | None, *, stream: bool) -> Bounds:
    """The one place a provider's configured timeouts and a request's overrides (``o``,
    what is left of them: ``relay.call.Call.send``) make an attempt's bounds. The client's
    x-bf-request-timeout bounds the whole answer, stream or not; without it a unary call
    has ``request_s``, a stream none. Its x-bf-stream-idle-timeout stands for both the
    first-byte and the idle bound of a stream. Computed at start-up for calls without
    overrides (``upstream.http``)."""
    request_s = o.request_s if o is not None else None
    idle_s = o.stream_idle_s if o is not None else None
    if not stream:
        return Bounds(request_s or t.request_s, None, None)
    return Bounds(request_s, idle_s or first_byte_s(t), idle_s or t.stream_idle_s)


class Reply(Protocol):
    """What the relay reads from any upstream, over HTTP or in-process."""

    status: int
    headers: list[tuple[str, str]]  # only those relayed to the client (gateway.upstream.relayed)
    # The Content-Type header's value as sent; None when there was none. A stream is
    # relayed only from a reply that declares text/event-stream (relay.stream).
    content_type: str | None

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncGenerator[bytes, None]: ...

    def close(self) -> None: ...


def classify(exc: BaseException, *, provider: str) -> UpstreamError:
    """One aiohttp/asyncio failure to one gateway error class."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"provider '{provider}' timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"cannot connect to provider '{provider}': {exc.os_error or exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # Before any response byte (a broken body is a ClientPayloadError): as the pool says.
        return UpstreamConnectError(f"provider '{provider}' closed the connection before answering")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamProtocolError(f"provider '{provider}' sent a broken body: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):  # a head aiohttp's parser refused
        return UpstreamProtocolError(f"provider '{provider}' sent a malformed HTTP response: {exc.message}")
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return UpstreamConnectError(f"provider '{provider}' failed: {type(exc).__name__}: {exc}")
    raise exc


class HTTPReply:
    __slots__ = ("_max_bytes", "_provider", "_resp", "content_type", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, *, provider: str, max_bytes: int) -> None:
        self._resp = resp
        self._provider = provider
        self._max_bytes = max_bytes
        self.status = resp.status
        self.content_type = resp.headers.get("Content-Type")
        self.headers = [(k, v) for k, v in resp.headers.items() if k.lower().encode().startswith(RELAYED_HEADERS)]

    async def read(self) -> bytes:
        """The whole body, refused past ``max_bytes`` (counted as decoded)."""
        resp, cap = self._resp, self._max_bytes
        try:
            if resp.content_length is not None and resp.content_length > cap:
                raise self._too_large()
            parts: list[bytes] = []
            size = 0
            async for data in resp.content.iter_any():
                size += len(data)
                if size > cap:
                    raise self._too_large()
                parts.append(data)
        except Exception as e:
            raise classify(e, provider=self._provider) from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _too_large(self) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"provider '{self._provider}' sent an answer over {self._max_bytes} bytes (max_response_bytes)"
        )

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        it = self._resp.content.iter_any()
        try:
            async for data in it:
                yield data
        except Exception as e:
            raise classify(e, provider=self._provider) from None

    def close(self) -> None:
        # close(), not release(): a half-read body must not go back to the pool.
        self._resp.close()


def new_session() -> aiohttp.ClientSession:
    """Built once per process at start-up, closed at shutdown."""
    connector = aiohttp.TCPConnector(
        resolver=aiohttp.AsyncResolver(),
        limit=0,
        limit_per_host=MAX_CONNECTIONS_PER_HOST,
        ttl_dns_cache=DNS_CACHE_TTL_S,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        read_bufsize=READ_BUFSIZE,
        headers={"User-Agent": USER_AGENT},
        raise_for_status=False,
        trust_env=False,
    )


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    provider: str,
    ssl: ssl_module.SSLContext | None = None,
    max_body_bytes: int,
    proxy: str | None = None,
    proxy_auth: aiohttp.BasicAuth | None = None,
) -> HTTPReply:
    """One upstream request; the reply's body is read (or streamed) by the caller.
    ``proxy``: ``http://host:port`` of the forward proxy (its credentials in ``proxy_auth``)."""
    try:
        resp = await session.request(
            method,
            url,
            data=body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            ssl=ssl or True,
            proxy=proxy,
            proxy_auth=proxy_auth,
        )
    except aiohttp.ClientProxyConnectionError as e:
        raise UpstreamConnectError(
            f"provider '{provider}': cannot connect to proxy {proxy}: {e.os_error or e}"
        ) from None
    except aiohttp.ClientHttpProxyError as e:  # its answer to CONNECT (an https origin)
        raise UpstreamConnectError(
            f"provider '{provider}': proxy {proxy} refused CONNECT: HTTP {e.status} {e.message}".rstrip()
        ) from None
    except Exception as e:
        raise classify(e, provider=provider) from None
    if proxy is not None and resp.status == 407:  # an http origin's request, refused by the proxy
        resp.close()
        raise UpstreamConnectError(
            f"provider '{provider}': proxy {proxy} refused the request: HTTP 407 (proxy authentication)"
        )
    return HTTPReply(resp, provider=provider, max_bytes=max_body_bytes)
