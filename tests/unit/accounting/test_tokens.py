"""gateway.accounting.tokens: encodings per model and offline token counting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.accounting.tokens import (
    COUNT_BATCH_CHARS,
    CompletionCounter,
    Tokenizers,
    count_chat_prompt,
    count_completion,
    count_text_prompt,
    encoding_for,
)

TOKENIZERS = Tokenizers()
TOK = TOKENIZERS.for_model("gpt-4o")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- encoding_for -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o3-mini", "o1", "gpt-5", "openai/gpt-oss-20b", "OpenAI/GPT-4o"],
)
def test_encoding_for_o200k_exact(model: str) -> None:
    assert encoding_for(model) == ("o200k_base", True)


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4-turbo", "gpt-4-0613", "gpt-3.5-turbo", "gpt-35-turbo"])
def test_encoding_for_cl100k_exact(model: str) -> None:
    assert encoding_for(model) == ("cl100k_base", True)


@pytest.mark.parametrize(
    "model", ["meta-llama/Llama-3.1-8B-Instruct", "llama3", "mistralai/Mistral-7B-Instruct-v0.3", "mistral-large"]
)
def test_encoding_for_other_families_estimated(model: str) -> None:
    assert encoding_for(model) == ("o200k_base", False)


# --- Tokenizers -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "llama3"])
def test_tokenizers_for_model_counts(model: str) -> None:
    assert TOKENIZERS.for_model(model).count("hello world") == 2


def test_tokenizers_encodings_differ() -> None:
    # A string whose count differs between cl100k and o200k shows the model picks the encoding.
    text = "Привет, как дела? " * 5
    assert TOKENIZERS.get("cl100k_base").count(text) != TOKENIZERS.get("o200k_base").count(text)
    assert TOKENIZERS.for_model("gpt-4").count(text) == TOKENIZERS.get("cl100k_base").count(text)
    assert TOKENIZERS.for_model("gpt-4o").count(text) == TOKENIZERS.get("o200k_base").count(text)


def test_tokenizers_shared_per_encoding() -> None:
    assert TOKENIZERS.for_model("gpt-4o") is TOKENIZERS.for_model("o3-mini")


# --- count_chat_prompt ------------------------------------------------------------------


def test_count_chat_prompt_formula() -> None:
    body = dumps(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "name": "alice", "content": "hello world"},
            ],
        }
    )
    c = TOK.count
    want = 3 + (3 + c("You are helpful.")) + (3 + c("hello world") + 1 + c("alice"))
    assert count_chat_prompt(TOK, body) == want
    assert want == 3 + (3 + 4) + (3 + 2 + 1 + 1)


def test_count_chat_prompt_no_messages() -> None:
    assert count_chat_prompt(TOK, dumps({"model": "m", "messages": []})) == 3


def test_count_chat_prompt_content_parts_text_only() -> None:
    parts = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": " this"},
    ]
    body = dumps({"messages": [{"role": "user", "content": parts}]})
    assert count_chat_prompt(TOK, body) == 3 + 3 + TOK.count("look at") + TOK.count(" this")
    text_only = dumps({"messages": [{"role": "user", "content": [parts[0], parts[2]]}]})
    assert count_chat_prompt(TOK, body) == count_chat_prompt(TOK, text_only)  # the image is not counted


def test_count_chat_prompt_null_content_and_tool_calls() -> None:
    body = dumps(
        {
            "messages": [
                {"role": "user", "content": "hello world"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "hello world"},
            ]
        }
    )
    assert count_chat_prompt(TOK, body) == 3 + (3 + 2) + 3 + (3 + 2)


# --- count_text_prompt ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "want"),
    [
        ("hello world", 2),
        ("", 0),
        (["hello world", "foo"], 2 + 1),
        ([1, 2, 3], 3),
        ([[1, 2], [3, 4, 5]], 5),
        ([], 0),
    ],
)
def test_count_text_prompt(prompt: Any, want: int) -> None:
    assert count_text_prompt(TOK, dumps({"model": "m", "prompt": prompt})) == want


def test_count_text_prompt_strings_use_tokenizer() -> None:
    texts = ["The quick brown fox", "jumps over the lazy dog."]
    assert count_text_prompt(TOK, dumps({"prompt": texts})) == sum(TOK.count(t) for t in texts)


# --- CompletionCounter ------------------------------------------------------------------


def test_completion_counter_equals_count_of_joined_text() -> None:
    pieces = ["Hello", ",", " world", "!", " How", " are", " you", " today", "?"]
    counter = CompletionCounter(TOK)
    for p in pieces:
        counter.add(p)
    assert counter.tokens == 0  # short text: not counted yet
    assert counter.flush() == TOK.count("".join(pieces))
    assert counter.flush() == TOK.count("".join(pieces))  # flushing again adds nothing


def test_completion_counter_empty() -> None:
    assert CompletionCounter(TOK).flush() == 0


def test_completion_counter_flushes_batches() -> None:
    counter = CompletionCounter(TOK)
    piece = " word"
    n = COUNT_BATCH_CHARS // len(piece) + 10
    for _ in range(n):
        counter.add(piece)
    # More than a batch of text arrived: it was counted and the buffer emptied.
    assert counter.tokens > 0
    assert counter._chars < COUNT_BATCH_CHARS
    assert sum(map(len, counter._pieces)) < COUNT_BATCH_CHARS
    total = counter.flush()
    exact = TOK.count(piece * n)
    assert abs(total - exact) <= 1  # at most one token of error per batch cut
    assert total >= counter.tokens > 0


def test_completion_counter_one_large_piece() -> None:
    counter = CompletionCounter(TOK)
    text = "hello world " * (COUNT_BATCH_CHARS // 6)
    counter.add(text)
    assert counter.tokens == TOK.count(text)
    assert counter.flush() == TOK.count(text)


# --- count_completion -------------------------------------------------------------------


def test_count_completion_chat_body() -> None:
    body = dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello world", "reasoning_content": "think hard"},
                    "finish_reason": "stop",
                },
                {"index": 1, "message": {"role": "assistant", "content": None, "refusal": "foo"}},
            ],
        }
    )
    assert count_completion(TOK, body) == TOK.count("hello world") + TOK.count("think hard") + TOK.count("foo")
    assert count_completion(TOK, body) == 2 + 2 + 1


def test_count_completion_text_body() -> None:
    body = dumps({"object": "text_completion", "choices": [{"index": 0, "text": "hello world"}, {"text": "foo"}]})
    assert count_completion(TOK, body) == 3


def test_count_completion_no_choices() -> None:
    assert count_completion(TOK, dumps({"choices": []})) == 0
