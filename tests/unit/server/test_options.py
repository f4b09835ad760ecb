"""gateway.server.options: the x-bf-* headers, read once into RequestOptions."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.errors import Forbidden, GatewayError, InvalidRequest
from gateway.relay.call import NO_OPTIONS, RequestOptions
from gateway.server.options import request_options
from gateway.upstream.client import Timeouts

SECRET = "sk-client-0123456789"
# What the openai SDK sends besides its key: none of it is an option.
SDK_HEADERS = {
    "Host": "127.0.0.1",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": "OpenAI/Python 1.50.0",
    "X-Stainless-Lang": "python",
    "X-Stainless-Retry-Count": "0",
}


def request(headers: dict[str, str]) -> web.BaseRequest:
    return make_mocked_request("POST", "/v1/chat/completions", headers={**SDK_HEADERS, **headers})


def options(headers: dict[str, str], *, direct_keys: bool = True) -> RequestOptions:
    return request_options(request(headers), direct_keys=direct_keys)


def refusal(headers: dict[str, str], *, direct_keys: bool = True) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        options(headers, direct_keys=direct_keys)
    return info.value


def test_request_options_without_bf_headers_is_the_shared_constant() -> None:
    assert options({}) is NO_OPTIONS
    assert options({"Authorization": "Bearer sk-gateway"}) is NO_OPTIONS
    # An x-bf-* header the relay does not read (the virtual key) leaves it shared too.
    assert options({"x-bf-vk": "sk-bf-team"}) is NO_OPTIONS
    assert options({"x-bf-send-back-raw-request": "false", "x-bf-direct-key": "false"}) is NO_OPTIONS


def test_request_options_no_options_is_all_defaults() -> None:
    o = NO_OPTIONS
    assert (o.raw_request, o.raw_response, o.timeouts, o.pinned_key, o.extra_headers, o.direct_key) == (
        False,
        False,
        None,
        None,
        (),
        None,
    )


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_request_options_raw_flags(value: str) -> None:
    o = options({"x-bf-send-back-raw-request": value})
    assert (o.raw_request, o.raw_response) == (True, False)
    o = options({"X-BF-Send-Back-Raw-Response": value})
    assert (o.raw_request, o.raw_response) == (False, True)


def test_request_options_raw_flag_other_than_true_is_off() -> None:
    assert options({"x-bf-send-back-raw-request": "yes"}) is NO_OPTIONS


def test_request_options_timeouts() -> None:
    assert options({"x-bf-request-timeout": "2.5"}).timeouts == Timeouts(2.5, None)
    assert options({"x-bf-stream-idle-timeout": "3"}).timeouts == Timeouts(None, 3.0)
    both = options({"x-bf-request-timeout": "1800", "x-bf-stream-idle-timeout": "0.5"})
    assert both.timeouts == Timeouts(1800.0, 0.5)


@pytest.mark.parametrize("value", ["0", "-1", "1800.5", "soon", "nan"])
@pytest.mark.parametrize("name", ["x-bf-request-timeout", "x-bf-stream-idle-timeout"])
def test_request_options_bad_timeout_is_a_400_naming_its_header(name: str, value: str) -> None:
    err = refusal({name: value})
    assert isinstance(err, InvalidRequest) and err.status == 400
    assert err.param == name and err.code == "invalid_header"
    assert err.message == f"header {name} must be a number of seconds in (0, 1800], got {value!r}"


def test_request_options_pinned_key() -> None:
    assert options({"x-bf-api-key": "backup"}).pinned_key == "backup"


def test_request_options_extra_headers_keep_order_and_values() -> None:
    o = options({"x-bf-eh-OpenAI-Organization": "org-1", "X-BF-EH-x-trace": " a\tb "})
    assert o.extra_headers == (("openai-organization", "org-1"), ("x-trace", " a\tb "))


@pytest.mark.parametrize("name", ["x-bf-eh-authorization", "x-bf-eh-Host", "x-bf-eh-proxy-authorization"])
def test_request_options_denied_extra_header_is_a_400(name: str) -> None:
    err = refusal({name: "x"})
    assert err.status == 400 and err.param == name and err.code == "invalid_header"
    assert "may not be forwarded" in err.message


def test_request_options_extra_header_value_must_be_visible_ascii() -> None:
    err = refusal({"x-bf-eh-x-note": "caf\u00e9"})
    assert err.status == 400 and err.param == "x-bf-eh-x-note" and "visible ASCII" in err.message


@pytest.mark.parametrize("carrier", ["Authorization", "x-api-key", "api-key", "x-goog-api-key"])
def test_request_options_direct_key_is_read_from_the_credential_headers(carrier: str) -> None:
    value = f"Bearer {SECRET}" if carrier == "Authorization" else SECRET
    o = options({"x-bf-direct-key": "true", carrier: value})
    assert o.direct_key == SECRET


def test_request_options_direct_key_switched_off_is_a_403() -> None:
    err = refusal({"x-bf-direct-key": "true"}, direct_keys=False)
    assert isinstance(err, Forbidden) and err.status == 403 and err.code == "direct_keys_disabled"


@pytest.mark.parametrize(
    ("headers", "code", "param"),
    [
        ({"x-bf-direct-key": "yes"}, "invalid_header", "x-bf-direct-key"),
        ({"x-bf-direct-key": "true", "x-bf-api-key": "main"}, "invalid_header", "x-bf-api-key"),
        ({"x-bf-direct-key": "true", "Authorization": "Basic dXNlcjpwYXNz"}, "missing_provider_key", "x-bf-direct-key"),
    ],
)
def test_request_options_direct_key_refusals(headers: dict[str, str], code: str, param: str) -> None:
    err = refusal(headers)
    assert err.status == 400 and err.code == code and err.param == param


def test_request_options_repr_hides_the_client_key() -> None:
    o = options({"x-bf-direct-key": "true", "Authorization": f"Bearer {SECRET}", "x-bf-eh-x-trace": "t1"})
    assert o.direct_key == SECRET
    for text in (repr(o), str(o), f"{o!r}", repr(o.forwarding((("anthropic-beta", "b"),)))):
        assert SECRET not in text and "direct_key=<hidden>" in text
    assert "x-trace" in repr(o)  # the rest is shown
    assert repr(NO_OPTIONS).endswith("direct_key=None)")


def test_request_options_forwarding_leaves_the_original_alone() -> None:
    more = NO_OPTIONS.forwarding((("anthropic-beta", "b"),))
    assert more is not NO_OPTIONS and more.extra_headers == (("anthropic-beta", "b"),)
    assert NO_OPTIONS.extra_headers == ()
    o = options({"x-bf-api-key": "main", "x-bf-request-timeout": "5"})
    both = o.forwarding((("a", "1"),))
    assert (both.pinned_key, both.timeouts, both.extra_headers) == ("main", Timeouts(5.0, None), (("a", "1"),))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("90", 90.0), ("1.5", 1.5), ("2h", 7200.0), ("500ms", 0.5), ("1d", 86400.0)],
)
def test_request_options_cache_ttl(value: str, seconds: float) -> None:
    ask = options({"x-bf-cache-ttl": value}).cache
    assert ask is not None and ask.ttl_s == seconds


def test_request_options_cache_headers_read_together() -> None:
    o = options(
        {
            "x-bf-cache-key": "team-a",
            "x-bf-cache-no-store": "TRUE",
            "x-bf-cache-type": "Semantic",
            "x-bf-cache-threshold": "0.9",
        }
    )
    ask = o.cache
    assert ask is not None
    assert (ask.key, ask.no_store, ask.direct, ask.semantic, ask.threshold) == ("team-a", True, False, True, 0.9)
    both = options({"x-bf-cache-key": "k"}).cache
    assert both is not None and both.direct and both.semantic and both.ttl_s is None and not both.no_store
    assert options({}).cache is None


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-bf-cache-key", " padded"),
        ("x-bf-cache-key", "k" * 257),
        ("x-bf-cache-ttl", "-5"),
        ("x-bf-cache-ttl", "5 minutes"),
        ("x-bf-cache-ttl", "inf"),
        ("x-bf-cache-threshold", "-0.1"),
        ("x-bf-cache-threshold", "NaN"),
        ("x-bf-cache-type", "both"),
        ("x-bf-cache-no-store", "1"),
    ],
)
def test_request_options_cache_refusals_name_the_header(header: str, value: str) -> None:
    err = refusal({header: value})
    assert isinstance(err, InvalidRequest) and err.param == header and err.code == "invalid_header"
