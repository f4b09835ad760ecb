"""gateway.server.options: the x-bf-* request headers, read through their public names."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.errors import InvalidRequest
from gateway.server.options import extra_headers, flag, has_bf_headers, header_seconds, timeouts
from gateway.upstream.client import Timeouts


def request(*headers: tuple[str, str]) -> object:
    return make_mocked_request("POST", "/v1/chat/completions", headers=CIMultiDict(headers))


@pytest.mark.parametrize(("value", "seconds"), [(None, None), ("1", 1.0), ("0.25", 0.25), ("1800", 1800.0)])
def test_header_seconds(value: str | None, seconds: float | None) -> None:
    req = request(*([("x-bf-request-timeout", value)] if value is not None else []))
    assert header_seconds(req, "x-bf-request-timeout") == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "-1", "1801", "soon", "nan", "inf", ""])
def test_header_seconds_refuses(value: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        header_seconds(request(("x-bf-request-timeout", value)), "x-bf-request-timeout")  # type: ignore[arg-type]
    assert e.value.param == "x-bf-request-timeout" and e.value.status == 400


def test_timeouts_and_flag() -> None:
    assert timeouts(request()) is None  # type: ignore[arg-type]
    assert timeouts(request(("x-bf-stream-idle-timeout", "3"))) == Timeouts(None, 3.0)  # type: ignore[arg-type]
    assert flag(request(("x-bf-async", "TRUE")), "x-bf-async")  # type: ignore[arg-type]
    assert not flag(request(("x-bf-async", "yes")), "x-bf-async")  # type: ignore[arg-type]
    assert has_bf_headers(request(("X-BF-Async", "true")))  # type: ignore[arg-type]
    assert not has_bf_headers(request(("x-bfa", "1"), ("authorization", "x")))  # type: ignore[arg-type]


def test_extra_headers_forwarded_in_order() -> None:
    req = request(("X-Bf-Eh-Trace", "a b\tc"), ("accept", "x"), ("x-bf-eh-openai-beta", "v2"))
    assert extra_headers(req) == (("trace", "a b\tc"), ("openai-beta", "v2"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header",
    [("x-bf-eh-authorization", "k"), ("x-bf-eh-proxy-authorization", "k"), ("x-bf-eh-", "v"), ("x-bf-eh-a", "\xe9")],
)
def test_extra_headers_refused(header: tuple[str, str]) -> None:
    with pytest.raises(InvalidRequest) as e:
        extra_headers(request(header))  # type: ignore[arg-type]
    assert e.value.code == "invalid_header"
