"""gateway.providers.document: an OpenAI file part read once for every translating
dialect; and a document carried across two translations (client dialect -> OpenAI ->
upstream dialect), as the gateway chains them for an SDK drop-in route."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.codec import decode_chat
from gateway.errors import InvalidRequest
from gateway.providers import anthropic, gemini
from gateway.providers.document import InlineFile, file_name, inline_file

PDF = base64.b64encode(b"%PDF-1.4\n%mini\n").decode()


@pytest.mark.parametrize(
    ("file_data", "filename", "expected"),
    [
        (f"data:application/pdf;base64,{PDF}", None, InlineFile(media_type="application/pdf", data=PDF)),
        (f"data:Application/PDF;base64,{PDF}", "x.txt", InlineFile(media_type="application/pdf", data=PDF)),
        ("data:text/plain;charset=utf-8;base64,aGk=", None, InlineFile(media_type="text/plain", data="aGk=")),
        ("data:;base64,aGk=", "a.md", InlineFile(media_type="text/markdown", data="aGk=")),
        (PDF, "Report.PDF", InlineFile(media_type="application/pdf", data=PDF)),
        ("aGk=", "notes.txt", InlineFile(media_type="text/plain", data="aGk=")),
        ("aGk=", "notes.md", InlineFile(media_type="text/markdown", data="aGk=")),
        ("aGk=", "t.csv", InlineFile(media_type="text/csv", data="aGk=")),
        ("aGk=", "page.html", InlineFile(media_type="text/html", data="aGk=")),
        ("aGk=", "page.htm", InlineFile(media_type="text/html", data="aGk=")),
        ("e30=", "data.json", InlineFile(media_type="application/json", data="e30=")),
    ],
)
def test_inline_file_reads_data_urls_and_plain_base64_by_extension(
    file_data: str, filename: str | None, expected: InlineFile
) -> None:
    assert inline_file(file_data, filename=filename, param="p.file_data") == expected


@pytest.mark.parametrize(
    ("file_data", "filename"),
    [
        (PDF, None),  # plain base64 and no name: no type
        (PDF, "report"),  # no extension
        (PDF, "slides.pptx"),  # an extension the gateway does not guess
        ("data:application/pdf," + PDF, None),  # not base64
        ("data:application/pdf;base64" + PDF, None),  # no comma
        ("data:;base64,aGk=", None),  # no type anywhere
    ],
)
def test_inline_file_refuses_what_names_no_type_with_the_param(file_data: str, filename: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        inline_file(file_data, filename=filename, param="messages[0].content[1].file.file_data")
    assert (info.value.status, info.value.param) == (400, "messages[0].content[1].file.file_data")
    assert info.value.code == "invalid_value"


def test_file_name_is_the_title_or_document_with_the_types_extension() -> None:
    assert file_name("application/pdf", "Q3.pdf") == "Q3.pdf"
    assert file_name("application/pdf") == "document.pdf"
    assert file_name("text/csv") == "document.csv"
    assert file_name("application/vnd.ms-excel") == "document"


# --- chains: an SDK's document reaching the other dialect through the OpenAI form -----


def _anthropic_doc(source: dict[str, Any], **fields: Any) -> bytes:
    body = {
        "model": "gemini-2.5-flash",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "document", "source": source, **fields}]}],
    }
    return json.dumps(body).encode()


def test_anthropic_document_reaches_gemini_as_inline_data() -> None:
    openai, _, _ = anthropic.messages_request(
        _anthropic_doc({"type": "base64", "media_type": "application/pdf", "data": PDF}, title="r.pdf")
    )
    decode_chat(openai)  # the pipeline accepts what the inbound side makes
    out = json.loads(gemini.chat_request(openai))
    assert out["contents"] == [
        {"parts": [{"inlineData": {"mimeType": "application/pdf", "data": PDF}}], "role": "user"}
    ]


def test_anthropic_text_document_reaches_gemini_as_text() -> None:
    openai, _, _ = anthropic.messages_request(_anthropic_doc({"type": "text", "media_type": "text/plain", "data": "x"}))
    out = json.loads(gemini.chat_request(openai))
    assert out["contents"][0]["parts"] == [{"text": "x"}]


def test_gemini_inline_pdf_reaches_anthropic_as_a_document() -> None:
    body = {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "application/pdf", "data": PDF}}]}]}
    openai = gemini.generate_request(json.dumps(body).encode(), model="claude-x", stream=False)
    decode_chat(openai)
    out = json.loads(anthropic.chat_request(openai, model="claude-x"))
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    "title": "document.pdf",
                }
            ],
        }
    ]


def test_anthropic_document_survives_the_round_trip_through_openai() -> None:
    """Anthropic -> OpenAI (inbound) -> Anthropic (outbound): the same block."""
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [{**block, "title": "a.pdf"}]}]}
    openai, _, _ = anthropic.messages_request(json.dumps(body).encode())
    out = json.loads(anthropic.chat_request(openai, model="m"))
    assert out["messages"][0]["content"] == [{**block, "title": "a.pdf"}]
