"""Token counting with the offline BPE (only for upstreams that report no usage)."""

from __future__ import annotations

from bench.micro import Cases, main_for
from bench.micro.fixtures import REQUEST
from gateway.accounting.tokens import CHAR_ESTIMATE, CompletionCounter, Tokenizers, count_chat_prompt

TOK = Tokenizers().get("o200k_base")  # loaded once (~80 ms, ~66 MB), outside the timings
TEXT_1KB = "Explain the difference between TCP and UDP in detail please. " * 16
PIECES = [" The", " quick", " brown", " fox", " jumps"] * 40


def count_pieces() -> int:
    c = CompletionCounter(TOK)
    add = c.add
    for p in PIECES:
        add(p)
    return c.flush()


CASES: Cases = {
    "count 1 KB of prose": lambda: TOK.count(TEXT_1KB),
    "chat prompt tokens (1 KB request)": lambda: count_chat_prompt(TOK, REQUEST),
    "chat prompt estimate, no BPE (1 KB request)": lambda: count_chat_prompt(CHAR_ESTIMATE, REQUEST),
    "200 streamed pieces counted (per call)": count_pieces,
}

if __name__ == "__main__":
    main_for("tokens: offline BPE counting", CASES, number=2_000)
