"""gateway.upstream.client.classify: each aiohttp/asyncio failure becomes one gateway
error class, with the provider named in its message."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from gateway.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from gateway.upstream.client import classify

KEY = ConnectionKey("up.test", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (TimeoutError(), UpstreamTimeout, "provider 'p' timed out"),
        (aiohttp.ServerTimeoutError("read"), UpstreamTimeout, "provider 'p' timed out"),
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
            UpstreamConnectError,
            "cannot connect to provider 'p': [Errno 111] refused",
        ),
        (
            aiohttp.ServerDisconnectedError(),
            UpstreamConnectError,
            "provider 'p' closed the connection before answering",
        ),
        (aiohttp.ClientPayloadError("cut"), UpstreamProtocolError, "provider 'p' sent a broken body: cut"),
        (ConnectionResetError("reset"), UpstreamConnectError, "provider 'p' failed: ConnectionResetError: reset"),
    ],
)
def test_classify(exc: BaseException, kind: type, message: str) -> None:
    err = classify(exc, provider="p")
    assert type(err) is kind and err.message == message


def test_classify_keeps_gateway_errors_and_raises_the_rest() -> None:
    own = UpstreamTimeout("already classified")
    assert classify(own, provider="p") is own
    with pytest.raises(KeyError):
        classify(KeyError("a bug"), provider="p")
