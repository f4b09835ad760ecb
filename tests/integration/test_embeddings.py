"""Embeddings end to end: the official ``openai`` SDK, LangChain's ``OpenAIEmbeddings`` and
``google-genai`` against a real gateway, whose upstream is one ``gateway mock`` process
answering OpenAI's ``/v1/embeddings`` and Gemini's ``:batchEmbedContents`` and recording
what it received; and the in-process mock provider."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import Proc, serve_config, start_mock

KEY = "sk-embed-upstream-0123456789"
VK_ONCE = "vk-embed-once-0123456789"
VK_NARROW = "vk-embed-narrow-0123456789"

# Model -> the vector length its target answers with by default (the mock's defaults).
MODELS = {
    "up/text-embedding-3-small": 1536,  # OpenAI dialect, the mock over HTTP
    "gem/gemini-embedding-001": 3072,  # Gemini dialect, the mock's Gemini paths
    "mock/text-embedding-3-small": 1536,  # the in-process mock
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("embed-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


def _providers(up: Proc) -> dict[str, Any]:
    key = [{"value": "env.EMBED_KEY"}]
    return {
        # Priced as OpenAI's models: the upstream is the mock, the prices are real.
        "up": {"base_url": up.url + "/v1", "keys": key, "pricing_provider": "openai"},
        "gem": {"dialect": "gemini", "base_url": up.url, "keys": key, "pricing_provider": "google"},
        "claude": {"dialect": "anthropic", "base_url": up.url, "keys": key},
        "mock": {"dialect": "mock"},
    }


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    """The gateway, once with each upstream client (the gateway's pool, aiohttp's session)."""
    providers = _providers(up)
    for name in ("up", "gem", "claude"):
        providers[name]["client"] = request.param
    config = {"providers": providers, "default_provider": "up"}
    proc = serve_config(config, tmp_path_factory.mktemp(f"embed-gw-{request.param}"), env={"EMBED_KEY": KEY})
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


@pytest.fixture(scope="module")
def client(gw: Proc) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=20)
    yield c
    c.close()


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def _clear(up: Proc) -> None:
    httpx.delete(up.url + "/mock/requests")


def _norm(v: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in v))


def _cos(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


def _post(gw: Proc, body: dict[str, Any], path: str = "/v1/embeddings", **headers: str) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=20)


@pytest.mark.parametrize("model", list(MODELS))
def test_embeddings_sdk_default_base64(client: openai.OpenAI, gw: Proc, model: str) -> None:
    """The SDK asks for base64 unless told otherwise, and decodes it itself."""
    raw = client.embeddings.with_raw_response.create(model=model, input="the cat sat on the mat")
    assert json.loads(raw.content)["data"][0]["embedding"][:1] != "["  # a string on the wire
    sent = json.loads(raw.http_request.content)
    assert sent["encoding_format"] == "base64"
    out = raw.parse()
    assert len(out.data) == 1 and len(out.data[0].embedding) == MODELS[model]
    assert abs(_norm(out.data[0].embedding) - 1) < 1e-6
    assert out.usage.prompt_tokens > 0 and out.usage.total_tokens == out.usage.prompt_tokens


@pytest.mark.parametrize("model", list(MODELS))
def test_embeddings_sdk_float_list_dimensions(client: openai.OpenAI, model: str) -> None:
    texts = ["the cat sat on the mat", "a cat sat on the mat", "quarterly revenue grew nine percent"]
    out = client.embeddings.create(model=model, input=texts, encoding_format="float", dimensions=64)
    vectors = [d.embedding for d in out.data]
    assert [d.index for d in out.data] == [0, 1, 2] and all(len(v) == 64 for v in vectors)
    assert all(abs(_norm(v) - 1) < 1e-6 for v in vectors)
    # The same text gives the same vector; similar texts are closer than unrelated ones.
    assert client.embeddings.create(model=model, input=texts[0], encoding_format="float", dimensions=64).data[
        0
    ].embedding == pytest.approx(vectors[0])
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3
    # base64 carries the same float32 values.
    b64 = client.embeddings.create(model=model, input=texts, dimensions=64).data[0].embedding
    assert b64 == pytest.approx(vectors[0], abs=1e-6)


def test_embeddings_openai_target_gets_the_clients_bytes(gw: Proc, up: Proc) -> None:
    """Unknown fields reach the upstream as sent; the gateway's fallbacks do not."""
    _clear(up)
    body = {"model": "up/text-embedding-3-small", "input": "hi", "fallbacks": ["mock/x"], "x_custom": {"k": [1, 2]}}
    r = _post(gw, body)
    assert r.status_code == 200, r.text
    (seen,) = _seen(up)
    assert seen["path"] == "/v1/embeddings"
    assert json.loads(seen["body"]) == {"model": "text-embedding-3-small", "input": "hi", "x_custom": {"k": [1, 2]}}
    data = r.json()
    assert data["extra_fields"]["request_type"] == "embedding"
    assert data["extra_fields"]["provider"] == "up" and "usage_estimated" not in data["extra_fields"]


def test_embeddings_cost_priced_input_only(gw: Proc) -> None:
    data = _post(gw, {"model": "up/text-embedding-3-small", "input": ["one text", "another text"]}).json()
    usage = data["usage"]
    # text-embedding-3-small: $0.02 per million input tokens.
    assert usage["cost"]["input_tokens_cost"] == pytest.approx(usage["prompt_tokens"] * 0.02e-6)
    assert usage["cost"]["output_tokens_cost"] == 0
    assert usage["cost"]["total_cost"] == pytest.approx(usage["cost"]["input_tokens_cost"])


def test_embeddings_gemini_target_translated_and_counted(gw: Proc, up: Proc) -> None:
    _clear(up)
    r = _post(gw, {"model": "gem/gemini-embedding-001", "input": ["hello world", "bye"], "dimensions": 8, "user": "u1"})
    assert r.status_code == 200, r.text
    (seen,) = _seen(up)
    assert seen["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert seen["headers"]["x-goog-api-key"] == KEY
    assert json.loads(seen["body"]) == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 8}
            for t in ("hello world", "bye")
        ]
    }
    data = r.json()
    assert data["object"] == "list" and data["model"] == "gemini-embedding-001"
    assert [len(d["embedding"]) for d in data["data"]] == [8, 8]
    # Gemini reports no usage: the gateway counts the input with the tokenizer and prices it.
    assert data["usage"]["prompt_tokens"] == 3 and data["usage"]["total_tokens"] == 3
    assert data["usage"]["cost"]["total_cost"] == pytest.approx(3 * 0.15e-6)
    assert data["extra_fields"]["usage_estimated"] is True


def test_embeddings_gemini_refuses_token_ids(gw: Proc) -> None:
    r = _post(gw, {"model": "gem/gemini-embedding-001", "input": [[1, 2, 3]]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input" and "text only" in r.json()["error"]["message"]


def test_embeddings_token_ids_to_openai_dialect(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="up/text-embedding-3-small", input=[[1, 2, 3], [4, 5]], dimensions=4)
    assert len(out.data) == 2 and out.usage.prompt_tokens == 5


def test_embeddings_anthropic_primary_falls_back(client: openai.OpenAI, gw: Proc) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="claude/claude-x", input="hi", extra_body={"fallbacks": ["gem/gemini-embedding-001"]}
    )
    assert raw.headers["x-bifrost-fallback-index"] == "1" and raw.headers["x-bifrost-provider"] == "gem"
    assert len(raw.parse().data[0].embedding) == 3072


def test_embeddings_anthropic_only_is_a_400_naming_the_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude/claude-x", input="hi")
    err = info.value.body
    assert isinstance(err, dict)
    assert err["param"] == "model" and err["code"] == "unsupported_endpoint"
    assert "claude-x" in err["message"] and "embeddings" in err["message"]


def test_embeddings_mock_fault_falls_back(gw: Proc) -> None:
    body = {"model": "mock/text-embedding-3-small", "input": "hi", "mock": {"fail_status": 503}}
    # The fallback on Gemini: its translated request carries no "mock" field to fail it too.
    r = _post(gw, {**body, "fallbacks": ["gem/gemini-embedding-001"]})
    assert r.status_code == 200 and r.headers["x-bifrost-fallback-index"] == "1"
    r = _post(gw, body)
    assert r.status_code == 503 and r.json()["error"]["code"] == "mock_injected"


@pytest.mark.parametrize(
    ("input_", "why"),
    [
        ([], "length >= 1"),
        ("", "length >= 1"),
        (["a", ""], "length >= 1"),
        ([[]], "length >= 1"),
        (["a", 1], "not a mix"),
        ([{"text": "a"}], "Expected"),
        (5, "Expected"),
        (None, "Expected"),
        (["x"] * 2049, "length <= 2048"),
    ],
)
def test_embeddings_bad_input_is_a_400_naming_input(gw: Proc, input_: object, why: str) -> None:
    r = _post(gw, {"model": "up/text-embedding-3-small", "input": input_})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "input" and why in err["message"] and err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"stream": True}, "stream"),
        ({"dimensions": 0}, "dimensions"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"fallbacks": [""]}, "fallbacks[0]"),
    ],
)
def test_embeddings_bad_fields_are_400s(gw: Proc, extra: dict[str, Any], param: str) -> None:
    r = _post(gw, {"model": "up/text-embedding-3-small", "input": "hi", **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_embeddings_langchain(gw: Proc) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(
        model="mock/text-embedding-3-small",
        base_url=gw.url + "/langchain/v1",
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # its tiktoken chunking would download the BPE tables
        max_retries=0,
    )
    docs = emb.embed_documents(["the cat sat on the mat", "a cat sat on a mat", "bond yields fell"])
    query = emb.embed_query("the cat sat on the mat")
    assert len(docs) == 3 and all(len(d) == 1536 for d in docs)
    assert query == pytest.approx(docs[0], abs=1e-6)
    assert _cos(docs[0], docs[1]) > _cos(docs[0], docs[2])


def _genai(gw: Proc) -> genai.Client:
    opts = types.HttpOptions(base_url=gw.url + "/genai", api_version="v1beta", retry_options=None)
    return genai.Client(api_key="unused", http_options=opts)


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-embedding-001", "/v1beta/models/gemini-embedding-001:batchEmbedContents"),  # bare: Gemini
        ("up/text-embedding-3-small", "/v1/embeddings"),
        ("mock/text-embedding-3-small", None),
    ],
)
def test_embeddings_genai_sdk(gw: Proc, up: Proc, model: str, path: str | None) -> None:
    _clear(up)
    config = types.EmbedContentConfig(output_dimensionality=16, task_type="RETRIEVAL_DOCUMENT", title="t")
    sdk = _genai(gw)
    out = sdk.models.embed_content(model=model, contents=["the cat sat", "a cat sat", "bond yields"], config=config)
    assert out.embeddings is not None and len(out.embeddings) == 3
    values = [e.values or [] for e in out.embeddings]
    assert all(len(v) == 16 and abs(_norm(v) - 1) < 1e-6 for v in values)
    assert _cos(values[0], values[1]) > _cos(values[0], values[2])
    seen = _seen(up)
    assert [s["path"] for s in seen] == ([path] if path else [])
    if path and path.endswith(":batchEmbedContents"):
        # A Gemini target gets the client's requests: taskType and title kept.
        first = json.loads(seen[0]["body"])["requests"][0]
        assert first["taskType"] == "RETRIEVAL_DOCUMENT" and first["title"] == "t"
    elif path:
        assert json.loads(seen[0]["body"]) == {
            "model": "text-embedding-3-small",
            "input": ["the cat sat", "a cat sat", "bond yields"],
            "encoding_format": "float",
            "dimensions": 16,
        }


@pytest.mark.parametrize("model", ["gemini-embedding-001", "up/text-embedding-3-small"])
def test_embeddings_genai_embed_content_single(gw: Proc, model: str) -> None:
    r = _post(
        gw,
        {"content": {"parts": [{"text": "hello "}, {"text": "world"}]}},
        f"/genai/v1beta/models/{model}:embedContent",
    )
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["embedding"] and len(r.json()["embedding"]["values"]) in (1536, 3072)


def test_embeddings_genai_errors_in_gemini_shape(gw: Proc) -> None:
    sdk = _genai(gw)
    with pytest.raises(genai_errors.ClientError) as info:
        sdk.models.embed_content(model="claude/claude-x", contents="hi")
    assert info.value.code == 400 and "embeddings" in str(info.value.message)
    r = _post(gw, {"requests": []}, "/genai/v1beta/models/gemini-embedding-001:batchEmbedContents")
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = _post(
        gw,
        {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}},
        "/genai/v1beta/models/up/x:embedContent",
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "content.parts[0]"


def test_embeddings_async_job(client: openai.OpenAI, gw: Proc) -> None:
    pending = client.embeddings.create(
        model="up/text-embedding-3-small", input="hi", encoding_format="float", extra_headers={"x-bf-async": "true"}
    )
    assert pending.data == [] and pending.object == "list"
    job_id = pending.model_extra["extra_fields"]["async_job"]["id"]  # type: ignore[index]
    deadline = time.monotonic() + 10
    while True:
        # The job is the submitting credential's (the SDK sent "unused").
        poll = {"x-bf-async-id": job_id, "Authorization": "Bearer unused"}
        r = httpx.post(gw.url + "/v1/embeddings", content=b"", headers=poll, timeout=10)
        if r.status_code != 202 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"][0]["embedding"]) == 1536 and r.json()["extra_fields"]["request_type"] == "embedding"
    # The reference API's paths too.
    r = httpx.post(gw.url + "/v1/async/embeddings", json={"model": "mock/e", "input": "hi"}, timeout=10)
    assert r.status_code == 202
    job = r.json()["id"]
    for _ in range(200):
        r = httpx.get(gw.url + f"/v1/async/embeddings/{job}", timeout=10)
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.json()["status"] == "completed" and len(r.json()["result"]["data"][0]["embedding"]) == 768


def test_embeddings_governed(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Virtual keys' model lists and rate limits hold on the embeddings route too."""
    auth = {
        "virtual_keys": [
            {"name": "once", "value": VK_ONCE, "rate_limits": [{"requests": 1, "window": "1h"}]},
            {"name": "narrow", "value": VK_NARROW, "models": ["up/text-embedding-3-small"]},
        ]
    }
    config = {"providers": _providers(up), "default_provider": "up", "auth": auth}
    proc = serve_config(config, tmp_path_factory.mktemp("embed-gov"), env={"EMBED_KEY": KEY})
    try:
        body = {"model": "up/text-embedding-3-small", "input": "hi"}
        once = {"Authorization": f"Bearer {VK_ONCE}"}
        assert _post(proc, body, **once).status_code == 200
        assert _post(proc, body, **once).status_code == 429
        narrow = {"Authorization": f"Bearer {VK_NARROW}"}
        assert _post(proc, body, **narrow).status_code == 200
        assert _post(proc, {**body, "model": "mock/text-embedding-3-small"}, **narrow).status_code == 403
    finally:
        proc.stop()


def test_embeddings_base64_is_openais_float32(client: openai.OpenAI, gw: Proc) -> None:
    """The wire's base64 decodes as little-endian float32, as OpenAI's does."""
    for model in ("gem/gemini-embedding-001", "up/text-embedding-3-small"):
        body = {"model": model, "input": "hi", "dimensions": 4}
        floats = _post(gw, {**body, "encoding_format": "float"}).json()["data"][0]["embedding"]
        text = _post(gw, {**body, "encoding_format": "base64"}).json()["data"][0]["embedding"]
        decoded = struct.unpack("<4f", base64.b64decode(text))
        assert decoded == pytest.approx(floats, abs=1e-7)


def test_embeddings_raw_request_and_response(gw: Proc) -> None:
    """x-bf-send-back-raw-*: what went to a Gemini upstream and what it answered."""
    headers = {"x-bf-send-back-raw-request": "true", "x-bf-send-back-raw-response": "true"}
    r = _post(gw, {"model": "gem/gemini-embedding-001", "input": "hi", "dimensions": 2}, **headers)
    extra = r.json()["extra_fields"]
    assert extra["raw_request"]["requests"][0]["outputDimensionality"] == 2
    assert len(extra["raw_response"]["embeddings"][0]["values"]) == 2
