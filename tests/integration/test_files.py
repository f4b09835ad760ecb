"""Documents across dialects: the official openai, anthropic and google-genai SDKs send
a PDF through a real gateway to providers of the other dialects; the upstream, one
``gateway mock`` answering all three wire formats, records what it received, which is
the translated block. What cannot be translated is a 400 naming the part."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from tests.conftest import Proc, free_port, start_mock

KEY = "sk-files-upstream-0123456789"
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PDF = base64.b64encode(PDF_BYTES).decode()
PDF_URL = f"data:application/pdf;base64,{PDF}"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("files-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("gw-files")
    key = [{"value": "env.FILES_KEY"}]
    providers = {
        "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
        "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
        "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key},
    }
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps({"providers": providers, "default_provider": "up"}))
    port = free_port()
    proc = Proc(
        ["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log", env={"FILES_KEY": KEY}
    )
    yield proc
    proc.stop()


def _received(up: Proc) -> dict[str, Any]:
    """The one request the upstream received since the last clear: path and body."""
    (seen,) = httpx.get(up.url + "/mock/requests").json()
    httpx.delete(up.url + "/mock/requests")
    return {"path": seen["path"], "body": json.loads(seen["body"])}


@pytest.fixture
def clear(up: Proc) -> None:
    httpx.delete(up.url + "/mock/requests")


def _openai(gw: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def _claude(gw: Proc) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key="unused", max_retries=0)


def _genai(gw: Proc) -> genai.Client:
    opts = types.HttpOptions(base_url=gw.url + "/genai", retry_options=None)
    return genai.Client(api_key="unused", http_options=opts)


FILE_PART: Any = {"type": "file", "file": {"file_data": PDF_URL, "filename": "report.pdf"}}
DOCUMENT: Any = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    "title": "report.pdf",
}


# --- an OpenAI client's file part --------------------------------------------------------


def test_openai_file_part_reaches_an_anthropic_provider_as_a_document(gw: Proc, up: Proc, clear: None) -> None:
    with _openai(gw) as client:
        r = client.chat.completions.create(
            model="anthropic/claude-x",
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "text", "text": "Summarise."}, FILE_PART]}],
        )
    assert r.choices[0].message.content
    seen = _received(up)
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Summarise."}, DOCUMENT]}]


def test_openai_file_part_reaches_a_gemini_provider_as_inline_data(gw: Proc, up: Proc, clear: None) -> None:
    with _openai(gw) as client:
        client.chat.completions.create(
            model="gemini/gem-x", max_tokens=5, messages=[{"role": "user", "content": [FILE_PART]}]
        )
    seen = _received(up)
    assert seen["path"] == "/v1beta/models/gem-x:generateContent"
    assert seen["body"]["contents"] == [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}
    ]


def test_openai_file_id_is_a_400_naming_it_for_an_anthropic_provider(gw: Proc, up: Proc, clear: None) -> None:
    content = [{"type": "text", "text": "Summarise."}, {"type": "file", "file": {"file_id": "file-abc"}}]
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "anthropic/claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": content}]},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "messages[0].content[1].file.file_id"
    assert "OpenAI-dialect providers" in error["message"] and "file_data" in error["message"]
    assert httpx.get(up.url + "/mock/requests").json() == []  # nothing went upstream


def test_openai_file_id_passes_through_to_an_openai_provider(gw: Proc, up: Proc, clear: None) -> None:
    content = [{"type": "file", "file": {"file_id": "file-abc"}}]
    with _openai(gw) as client:
        client.chat.completions.create(model="up/gpt-x", max_tokens=5, messages=[{"role": "user", "content": content}])
    seen = _received(up)
    assert seen["path"] == "/v1/chat/completions" and seen["body"]["messages"][0]["content"] == content


# --- the Anthropic SDK's document block --------------------------------------------------


def test_anthropic_document_reaches_an_openai_provider_as_a_file_part(gw: Proc, up: Proc, clear: None) -> None:
    with _claude(gw) as client:
        msg = client.messages.create(
            model="up/gpt-x",
            max_tokens=5,
            messages=[{"role": "user", "content": [DOCUMENT, {"type": "text", "text": "Summarise."}]}],
        )
    assert msg.content[0].type == "text"
    seen = _received(up)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"] == [
        {"role": "user", "content": [FILE_PART, {"type": "text", "text": "Summarise."}]}
    ]


def test_anthropic_text_document_reaches_an_openai_provider_as_text(gw: Proc, up: Proc, clear: None) -> None:
    doc: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."}}
    with _claude(gw) as client:
        client.messages.create(model="up/gpt-x", max_tokens=5, messages=[{"role": "user", "content": [doc]}])
    assert _received(up)["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Grass is green."}]}
    ]


def test_anthropic_document_reaches_a_gemini_provider_as_inline_data(gw: Proc, up: Proc, clear: None) -> None:
    with _claude(gw) as client:
        client.messages.create(model="gemini/gem-x", max_tokens=5, messages=[{"role": "user", "content": [DOCUMENT]}])
    seen = _received(up)
    assert seen["path"] == "/v1beta/models/gem-x:generateContent"
    assert seen["body"]["contents"] == [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}
    ]


def test_anthropic_url_document_is_a_400_naming_its_source_for_gemini(gw: Proc, up: Proc, clear: None) -> None:
    doc: Any = {"type": "document", "source": {"type": "url", "url": "https://example.com/report.pdf"}}
    text: Any = {"type": "text", "text": "Summarise."}
    with _claude(gw) as client, pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gemini/gem-x", max_tokens=5, messages=[{"role": "user", "content": [text, doc]}])
    error = info.value.body["error"]  # type: ignore[index]
    assert error["param"] == "messages[0].content[1].source.type" and "base64" in error["message"]
    assert httpx.get(up.url + "/mock/requests").json() == []


def test_anthropic_document_passes_through_to_an_anthropic_provider(gw: Proc, up: Proc, clear: None) -> None:
    with _claude(gw) as client:
        client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": [DOCUMENT]}])
    assert _received(up)["body"]["messages"] == [{"role": "user", "content": [DOCUMENT]}]


# --- the google-genai SDK's inline data ------------------------------------------------


def test_genai_inline_pdf_reaches_an_anthropic_provider_as_a_document(gw: Proc, up: Proc, clear: None) -> None:
    client = _genai(gw)  # held: a client collected mid-call closes its connection
    r = client.models.generate_content(
        model="anthropic/claude-x",
        contents=[types.Part.from_bytes(data=PDF_BYTES, mime_type="application/pdf"), "Summarise."],
        config=types.GenerateContentConfig(max_output_tokens=5),
    )
    assert r.text
    seen = _received(up)
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    "title": "document.pdf",
                },
                {"type": "text", "text": "Summarise."},
            ],
        }
    ]


def test_genai_inline_pdf_reaches_an_openai_provider_as_a_file_part(gw: Proc, up: Proc, clear: None) -> None:
    client = _genai(gw)
    client.models.generate_content(
        model="up/gpt-x",
        contents=[types.Part.from_bytes(data=PDF_BYTES, mime_type="application/pdf")],
        config=types.GenerateContentConfig(max_output_tokens=5),
    )
    seen = _received(up)
    assert seen["body"]["messages"] == [
        {"role": "user", "content": [{"type": "file", "file": {"file_data": PDF_URL, "filename": "document.pdf"}}]}
    ]
