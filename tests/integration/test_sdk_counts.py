"""Token counts and model lists at the SDK drop-in routes, with the real ``anthropic``,
``google-genai`` and ``openai`` SDKs against a real gateway in front of one ``gateway
mock`` (which answers every dialect's count and model list paths with the gateway's
own tokenizer). A count is relayed to a target of the SDK's dialect and counted
offline for any other: the same text gives the same number either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gateway.accounting.tokens import Tokenizers, count_chat_prompt
from tests.conftest import Proc, serve_config, start_mock

KEY = "sk-sdk-counts-upstream-0123456789"
VK_ONCE = "sk-bf-counts-once-0123456789abcdef"
VK_UP = "sk-bf-counts-up-0123456789abcdef00"
SYSTEM = "Be brief."
TEXT = "Count these words, please: one two three."


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("counts-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


def _config(up: Proc) -> dict[str, Any]:
    key = [{"value": "env.COUNTS_KEY"}]
    return {
        "providers": {
            "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
            "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
            "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key},
            "mock": {"dialect": "mock"},
        },
        "default_provider": "up",
    }


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_config(_config(up), tmp_path_factory.mktemp("counts-gw"), env={"COUNTS_KEY": KEY})
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


@pytest.fixture(scope="module")
def governed(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = _config(up)
    config["auth"] = {
        "required": True,
        "virtual_keys": [
            {"name": "once", "value": VK_ONCE, "rate_limits": [{"requests": 1, "window": "1h"}]},
            {"name": "uponly", "value": VK_UP, "providers": ["up"]},
        ],
    }
    proc = serve_config(config, tmp_path_factory.mktemp("counts-gov"), env={"COUNTS_KEY": KEY})
    yield proc
    proc.stop()


def _expected(*texts: str) -> int:
    """The prompt tokens of one message per text, as the ledger counts them."""
    body = {"messages": [{"role": "user", "content": t} for t in texts]}
    return count_chat_prompt(Tokenizers().for_model("any"), httpx.Request("POST", "/", json=body).content)


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def _claude(gw: Proc, prefix: str, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url + prefix, api_key=key, max_retries=0)


def _genai(gw: Proc, prefix: str = "/genai", version: str = "v1beta") -> genai.Client:
    opts = types.HttpOptions(base_url=gw.url + prefix, api_version=version, retry_options=None)
    return genai.Client(api_key="unused", http_options=opts)


# --- Anthropic count_tokens --------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/anthropic", "/langchain", "/litellm"])
@pytest.mark.parametrize(
    ("model", "upstream_path"),
    [("claude-x", "/v1/messages/count_tokens"), ("up/gpt-x", None), ("gemini/gem-x", None), ("mock/m", None)],
)
def test_anthropic_count_tokens(gw: Proc, up: Proc, prefix: str, model: str, upstream_path: str | None) -> None:
    httpx.delete(up.url + "/mock/requests")
    with _claude(gw, prefix) as client:
        raw = client.messages.with_raw_response.count_tokens(
            model=model, system=SYSTEM, messages=[{"role": "user", "content": TEXT}]
        )
    counted = raw.parse()
    assert counted.input_tokens == _expected(SYSTEM, TEXT)
    provider = model.split("/")[0] if "/" in model else "anthropic"
    assert raw.headers["x-bifrost-provider"] == provider
    seen = _seen(up)
    if upstream_path is None:
        assert seen == []  # counted offline: nothing sent upstream
        return
    (request,) = seen
    assert request["path"] == upstream_path and request["headers"]["x-api-key"] == KEY
    assert request["headers"]["anthropic-version"]


def test_anthropic_count_tokens_errors_in_its_shape(gw: Proc) -> None:
    with _claude(gw, "/anthropic") as client:
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.count_tokens(model="up/gpt-x", messages=[])
        assert bad.value.body["type"] == "error" and bad.value.body["error"]["param"] == "messages"  # type: ignore[index]
    r = httpx.post(gw.url + "/anthropic/v1/messages/count_tokens", json={"messages": []})
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["param"] == "model"


# --- Gemini countTokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "upstream_path"),
    [("gem-x", "/v1beta/models/gem-x:countTokens"), ("anthropic/claude-x", None), ("up/gpt-x", None)],
)
@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_genai_count_tokens(gw: Proc, up: Proc, model: str, upstream_path: str | None, version: str) -> None:
    httpx.delete(up.url + "/mock/requests")
    client = _genai(gw, version=version)
    counted = client.models.count_tokens(model=model, contents=TEXT)
    assert counted.total_tokens == _expected(TEXT)
    seen = _seen(up)
    if upstream_path is None:
        assert seen == []
    else:
        assert [r["path"] for r in seen] == [upstream_path]


def test_genai_count_tokens_generate_content_request_form(gw: Proc) -> None:
    body = {"generateContentRequest": {"model": "models/x", "contents": [{"role": "user", "parts": [{"text": TEXT}]}]}}
    for model in ("gem-x", "up/gpt-x"):
        r = httpx.post(gw.url + f"/genai/v1beta/models/{model}:countTokens", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"totalTokens": _expected(TEXT)}


@pytest.mark.parametrize("model", ["gem-x", "up/gpt-x"])  # the upstream's 400, the gateway's own
def test_genai_count_tokens_errors_in_its_shape(gw: Proc, model: str) -> None:
    r = httpx.post(gw.url + f"/genai/v1beta/models/{model}:countTokens", json={"contents": []})
    error = r.json()["error"]
    assert r.status_code == 400 and error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "contents" in error["message"]


# --- governance: counts need credentials, are checked against allow lists, cost nothing --


def test_count_tokens_is_governed_not_charged(governed: Proc) -> None:
    with _claude(governed, "/anthropic", key="sk-nobody") as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.count_tokens(model="up/gpt-x", messages=[{"role": "user", "content": "hi"}])
    with _claude(governed, "/anthropic", key=VK_UP) as client:
        with pytest.raises(anthropic.PermissionDeniedError):
            client.messages.count_tokens(model="anthropic/claude-x", messages=[{"role": "user", "content": "hi"}])
        assert client.messages.count_tokens(model="up/gpt-x", messages=[{"role": "user", "content": "hi"}])
    with _claude(governed, "/anthropic", key=VK_ONCE) as client:
        for _ in range(3):  # no request of its one an hour used up
            client.messages.count_tokens(model="up/gpt-x", messages=[{"role": "user", "content": "hi"}])
        client.messages.create(model="up/gpt-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="up/gpt-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    r = httpx.post(governed.url + "/genai/v1beta/models/up/gpt-x:countTokens", json={"contents": []})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"


# --- model lists in each SDK's shape -------------------------------------------------------

LISTED = ["anthropic/mock-chat", "gemini/mock-chat", "up/mock-chat", "mock/mock-chat"]


@pytest.mark.parametrize("prefix", ["/anthropic", "/langchain", "/pydanticai"])
def test_anthropic_models_list_and_retrieve(gw: Proc, prefix: str) -> None:
    with _claude(gw, prefix) as client:
        page = client.models.list()
        ids = [m.id for m in page.data]
        # Each provider's own list, read in its dialect's shape from the upstream.
        assert set(LISTED) <= set(ids)
        assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]
        assert all(m.type == "model" and m.display_name == m.id for m in page.data)
        info = client.models.retrieve("up/mock-chat")
        assert info.id == "up/mock-chat" and info.created_at.year == 1970
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("up/nosuch")


@pytest.mark.parametrize(("prefix", "version"), [("/genai", "v1beta"), ("/genai", "v1"), ("/langchain", "v1")])
def test_genai_models_list_and_get(gw: Proc, prefix: str, version: str) -> None:
    client = _genai(gw, prefix, version)
    listed = {m.name: m for m in client.models.list()}
    assert {f"models/{m}" for m in LISTED} <= set(listed)
    methods = listed["models/up/mock-chat"].supported_actions
    assert methods == ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]
    got = client.models.get(model="gemini/mock-chat")
    assert got.name == "models/gemini/mock-chat" and got.display_name == "gemini/mock-chat"
    with pytest.raises(genai_errors.APIError) as info:
        client.models.get(model="up/nosuch")
    assert info.value.code == 404
    with pytest.raises(genai_errors.APIError) as info:
        client.models.get(model="x" * 300)  # over the model name bound, not quoted back
    assert info.value.code == 400 and "x" * 300 not in (info.value.message or "")


def test_shared_models_path_answers_each_sdk_in_its_shape(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/langchain/v1", api_key="x", max_retries=0) as oa:
        assert set(LISTED) <= {m.id for m in oa.models.list()}
        assert oa.models.retrieve("up/mock-chat").owned_by == "up"
    plain = httpx.get(gw.url + "/langchain/v1/models").json()
    assert plain["object"] == "list"
    assert "has_more" in httpx.get(gw.url + "/langchain/v1/models", headers={"anthropic-version": "x"}).json()
    assert "models" in httpx.get(gw.url + "/langchain/v1/models", headers={"x-goog-api-key": "k"}).json()


# --- cross-dialect chat calls on the same gateway ---------------------------------------


def test_anthropic_sdk_to_the_in_process_mock_and_genai_sdk_to_an_anthropic_target(gw: Proc, up: Proc) -> None:
    with _claude(gw, "/langchain") as client:
        msg = client.messages.create(model="mock/mock-chat", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert msg.type == "message" and msg.usage.output_tokens == 3
    assert len(msg.content[0].text.split()) == 3  # type: ignore[union-attr]
    httpx.delete(up.url + "/mock/requests")
    client_g = _genai(gw, "/litellm")
    answer = client_g.models.generate_content(
        model="anthropic/claude-x", contents="hi", config=types.GenerateContentConfig(max_output_tokens=3)
    )
    assert answer.text is not None and len(answer.text.split()) == 3
    assert [r["path"] for r in _seen(up)] == ["/v1/messages"]
