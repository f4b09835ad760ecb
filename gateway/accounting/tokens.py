"""Offline BPE token counting for upstreams that report no usage.

The tokenizer is ``bpe-openai``'s Rust core, which ships OpenAI's cl100k_base and
o200k_base ranks. Its Python package parses those ranks again in Python at import
(~0.8 s); the Rust binding alone loads in ~80 ms, so it is loaded directly, once, on
first use. Encoding by model family; any other family (Llama, Mistral, Qwen, ...) is
*estimated* with o200k_base, whose ~200k vocabulary is close to theirs for English.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Protocol

import msgspec
from msgspec import Struct

# OpenAI's chat format costs 3 tokens per message (+1 with a name) and 3 to prime the
# reply (the formula of OpenAI's own token-counting guide).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
# Completion text is counted in batches: bounded memory per stream, and at most one
# token of error per batch where a BPE merge would have crossed the cut.
COUNT_BATCH_CHARS = 4096

_CL100K_PREFIXES = ("gpt-4-", "gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt", "gpt-oss")


class Counter(Protocol):
    def count(self, text: str) -> int: ...


def encoding_for(model: str) -> tuple[str, bool]:
    """(encoding name, exact?) for a model id; org prefixes like ``openai/`` ignored."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base", True
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base", True
    return "o200k_base", False


def _load_bindings() -> Any:
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bpe-openai is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    try:
        lib = next(folder.glob("_bindings*.so"))
        binding_spec = importlib.util.spec_from_file_location("bpe_openai._bindings", lib)
        assert binding_spec is not None and binding_spec.loader is not None
        module = importlib.util.module_from_spec(binding_spec)
        binding_spec.loader.exec_module(module)
        return module
    except (StopIteration, ImportError, AssertionError):
        from bpe_openai import _bindings  # the slow but supported way

        return _bindings


class CharEstimate:
    """About 4 characters per token, OpenAI's rule of thumb for English (CJK runs 1-1.5
    characters per token). Only for estimates that should not load the BPE tables: the
    prompt of a stream cut short on a provider that reports its own usage."""

    def count(self, text: str) -> int:
        return (len(text) + 3) // 4


CHAR_ESTIMATE = CharEstimate()


class Tokenizers:
    """The encodings, loaded on first use and shared by every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bindings: Any = None
        self._by_name: dict[str, Counter] = {}

    def get(self, encoding: str) -> Counter:
        tok = self._by_name.get(encoding)
        if tok is None:
            with self._lock:
                if self._bindings is None:
                    self._bindings = _load_bindings()
                tok = self._by_name[encoding] = self._bindings.tokenizer_for_encoding(encoding)
        return tok

    def for_model(self, model: str) -> Counter:
        return self.get(encoding_for(model)[0])


class _Part(Struct):
    type: str = ""
    text: str | None = None


class _Message(Struct):
    content: str | list[_Part] | None = None
    name: str | None = None


class _ChatPrompt(Struct):
    messages: list[_Message] = []


class _TextPrompt(Struct):
    prompt: str | list[str | int | list[int]] = ""


class _EmbeddingsInput(Struct):
    input: str | list[str | int | list[int]] = ""


_chat_prompt = msgspec.json.Decoder(_ChatPrompt).decode
_text_prompt = msgspec.json.Decoder(_TextPrompt).decode
_embeddings_input = msgspec.json.Decoder(_EmbeddingsInput).decode


def _text(content: str | list[_Part] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if p.text)


def count_chat_prompt(tok: Counter, body: bytes) -> int:
    """Prompt tokens of a chat request body (text parts; images and tools not counted)."""
    total = TOKENS_REPLY_PRIMING
    for m in _chat_prompt(body).messages:
        total += TOKENS_PER_MESSAGE + tok.count(_text(m.content))
        if m.name:
            total += TOKENS_PER_NAME + tok.count(m.name)
    return total


def count_text_prompt(tok: Counter, body: bytes) -> int:
    return _count_prompt(tok, _text_prompt(body).prompt)


def count_embeddings_input(tok: Counter, body: bytes) -> int:
    """Input tokens of an embeddings request: its texts counted, token ids as given."""
    return _count_prompt(tok, _embeddings_input(body).input)


def _count_prompt(tok: Counter, prompt: str | list[str | int | list[int]]) -> int:
    if isinstance(prompt, str):
        return tok.count(prompt)
    total = 0
    for p in prompt:
        if isinstance(p, str):
            total += tok.count(p)
        elif isinstance(p, int):
            total += 1
        else:
            total += len(p)
    return total


class CompletionCounter:
    """Counts generated text as it streams, in batches of COUNT_BATCH_CHARS."""

    __slots__ = ("_chars", "_pieces", "_tok", "tokens")

    def __init__(self, tok: Counter) -> None:
        self._tok = tok
        self._pieces: list[str] = []
        self._chars = 0
        self.tokens = 0

    def add(self, piece: str) -> None:
        self._pieces.append(piece)
        self._chars += len(piece)
        if self._chars >= COUNT_BATCH_CHARS:
            self.flush()

    def flush(self) -> int:
        if self._pieces:
            self.tokens += self._tok.count("".join(self._pieces))
            self._pieces.clear()
            self._chars = 0
        return self.tokens


class _Message2(Struct):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None


class _UnaryChoice(Struct):
    message: _Message2 | None = None
    text: str | None = None


class _UnaryContent(Struct):
    choices: list[_UnaryChoice] = []


_unary_content = msgspec.json.Decoder(_UnaryContent).decode


def count_completion(tok: Counter, body: bytes) -> int:
    """Completion tokens of a non-streaming answer that carried no usage."""
    total = 0
    for c in _unary_content(body).choices:
        if c.text:
            total += tok.count(c.text)
        m = c.message
        if m is not None:
            for piece in (m.content, m.reasoning, m.reasoning_content, m.refusal):
                if piece:
                    total += tok.count(piece)
    return total
