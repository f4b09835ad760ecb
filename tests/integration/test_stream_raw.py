"""``x-bf-send-back-raw-request`` / ``x-bf-send-back-raw-response`` on chat streams:
the body sent upstream and the upstream's last usage (or finish) chunk as it came, in the
``extra_fields`` of the stream's final chunk, only when asked. The real openai SDK
against a real gateway in front of ``gateway mock``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.integration.test_stream_usage import MESSAGES, chat, extra, gw, sdk, up  # noqa: F401 (fixtures, named by the tests)

RAW = {"x-bf-send-back-raw-request": "true", "x-bf-send-back-raw-response": "true"}


def final_extra(chunks: list[Any]) -> dict[str, Any]:
    [final] = [ch for ch in chunks if (ch.model_extra or {}).get("extra_fields")]
    assert final is chunks[-1]
    return extra(final)


@pytest.mark.parametrize("asked", [False, True])
def test_stream_raw_request_and_response_on_the_final_chunk(sdk: openai.OpenAI, asked: bool) -> None:  # noqa: F811
    chunks = chat(sdk, "priced/gpt-4o-mini", asked=asked, max_tokens=6, extra_headers=RAW)
    fields = final_extra(chunks)
    # What went upstream: the model swapped, usage asked of the upstream whatever the client asked.
    sent = fields["raw_request"]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"] == MESSAGES and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    # The upstream's usage-only chunk, as it came: no cost, no extra_fields of the gateway's.
    raw = fields["raw_response"]
    assert raw["choices"] == [] and raw["usage"]["completion_tokens"] == 6
    assert "cost" not in raw["usage"] and "extra_fields" not in raw


def test_stream_raw_only_when_asked(sdk: openai.OpenAI) -> None:  # noqa: F811
    only_request = {"x-bf-send-back-raw-request": "true"}
    only = final_extra(chat(sdk, "priced/gpt-4o-mini", asked=False, extra_headers=only_request))
    assert "raw_request" in only and "raw_response" not in only
    plain = final_extra(chat(sdk, "priced/gpt-4o-mini", asked=False))
    assert "raw_request" not in plain and "raw_response" not in plain
