"""The same 200-event answer in the other dialects, as their APIs send it, for the
translated stream cases of ``bench.micro.stream``.

Anthropic: compact JSON (the Messages API's own spelling; its documentation pretty-prints
with spaces), one ``event:`` + ``data:`` frame per event, a ``ping`` after the first block
starts. Gemini (``streamGenerateContent?alt=sse``): ``": "`` spacing, CRLF line ends, a
whole GenerateContentResponse per frame with the cumulative ``usageMetadata``.
"""

from __future__ import annotations

import msgspec

N_EVENTS = 200
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")


def _word(i: int) -> bytes:
    return msgspec.json.encode(WORDS[i % len(WORDS)])


def anthropic_stream() -> list[bytes]:
    head = [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL",'
        b'"type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":19,"cache_creation_input_tokens":0,'
        b'"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}\n\n',
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        b'event: ping\ndata: {"type": "ping"}\n\n',
    ]
    tail = [
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        b'"stop_sequence":null},"usage":{"output_tokens":194}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    deltas = [
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":%s}}\n\n' % _word(i)
        for i in range(N_EVENTS - len(head) - len(tail))
    ]
    return head + deltas + tail


def gemini_stream() -> list[bytes]:
    frames = []
    for i in range(N_EVENTS):
        last = i == N_EVENTS - 1
        text = b'""' if last else _word(i)
        finish = b',"finishReason": "STOP"' if last else b""
        frames.append(
            b'data: {"candidates": [{"content": {"parts": [{"text": %s}],"role": "model"}%s,"index": 0}],'
            b'"usageMetadata": {"promptTokenCount": 19,"candidatesTokenCount": %d,"totalTokenCount": %d,'
            b'"promptTokensDetails": [{"modality": "TEXT","tokenCount": 19}]},'
            b'"modelVersion": "gemini-2.5-flash","responseId": "3YBdaOGtM4SCnsEP5P_OqAs"}\r\n\r\n'
            % (text, finish, i + 1, i + 20)
        )
    return frames
