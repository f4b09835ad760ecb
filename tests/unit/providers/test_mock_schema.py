"""gateway.providers.mock_schema: a value valid against a JSON Schema (structured output
and tool arguments), and the fake's structured answers built with it.

Pydantic models' schemas are checked by pydantic itself (``model_validate_json`` on the
built document), both as pydantic emits them and as the openai SDK sends them (strict);
hand-written schemas, for the keywords pydantic does not emit, by their exact value."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import uuid
from typing import Annotated, Any, Literal

import msgspec
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import AnyUrl, BaseModel, Field, conint, conlist, constr

from gateway.config import MockConfig
from gateway.errors import InvalidRequest
from gateway.providers import anthropic, gemini, mock, mock_schema

SCHEMA_PARAM = "response_format.json_schema.schema"


def build(schema: Any, *, fill_all: bool = False) -> Any:
    raw = json.dumps(schema).encode()
    return mock_schema.example(mock_schema.decode(raw, param="p"), fill_all=fill_all, lenient=False)


def json_schema_format(schema: Any, *, strict: bool = True) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": strict}}


def content_for(response_format: Any, *, text: str = "the gateway") -> str | None:
    return mock_schema.structured_content(msgspec.Raw(json.dumps(response_format).encode()), text=text)


# --- pydantic models ------------------------------------------------------------------


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Priority(enum.IntEnum):
    low = 1
    high = 2


class Address(BaseModel):
    street: str
    postcode: Annotated[str, Field(min_length=5, max_length=5)]
    country: str = "FR"


class Person(BaseModel):
    id: uuid.UUID
    name: constr(min_length=10, max_length=12)  # type: ignore[valid-type]
    born: datetime.date
    seen_at: datetime.datetime
    age: conint(ge=18, lt=130)  # type: ignore[valid-type]
    score: float = Field(gt=0, le=1)
    color: Color
    priority: Priority
    kind: Literal["admin", "user"]
    home: Address
    work: Address | None
    tags: list[str]
    scores: conlist(int, min_length=3)  # type: ignore[valid-type]
    pair: tuple[int, str]
    nickname: str | None = None
    active: bool = True


class Node(BaseModel):
    name: str
    children: list[Node] = []
    parent: Node | None = None


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Odds(BaseModel):
    pet: Cat | Dog = Field(discriminator="pet_type")
    amount: decimal.Decimal
    url: AnyUrl
    wait: datetime.timedelta
    at: datetime.time
    ids: set[int]
    counts: dict[str, int]
    sevens: Annotated[int, Field(multiple_of=7, gt=10)]
    below: Annotated[float, Field(lt=-2)]
    fraction: Annotated[float, Field(ge=0.25, le=0.3)]
    few: Annotated[list[int], Field(max_length=0)]


class Event(BaseModel):
    title: str
    attendees: list[Person]
    tree: Node
    odds: Odds | None = None


MODELS = [Address, Person, Node, Odds, Event]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_example_valid_for_pydantic_schema(model: type[BaseModel]) -> None:
    doc = json.dumps(build(model.model_json_schema()))
    model.model_validate_json(doc)


@pytest.mark.parametrize("model", [Address, Person, Node, Event], ids=lambda m: m.__name__)
def test_example_valid_for_sdk_strict_schema(model: type[BaseModel]) -> None:
    """What ``client.chat.completions.parse(response_format=Model)`` sends, every property
    required, as ``structured_content`` answers it."""
    doc = content_for(json_schema_format(to_strict_json_schema(model)))
    assert doc is not None
    model.model_validate_json(doc)


def test_example_fills_a_pydantic_model_plausibly() -> None:
    got = build(to_strict_json_schema(Person), fill_all=True)
    assert got["id"] == "00000000-0000-4000-8000-000000000000"
    assert got["name"] == "mockmockmo"  # minLength 10
    assert got["born"] == "2024-01-01"
    assert got["seen_at"] == "2024-01-01T00:00:00Z"
    assert (got["age"], got["score"]) == (18, 0.5)
    assert (got["color"], got["priority"], got["kind"]) == ("red", 1, "admin")
    assert got["home"] == got["work"] == {"street": "mock", "postcode": "mockm", "country": "FR"}
    assert got["tags"] == ["mock"]
    assert got["scores"] == [1, 1, 1]
    assert got["pair"] == [1, "mock"]
    # Strict: the optional fields are there too (as required by the SDK's schema).
    assert set(got) == set(Person.model_fields)


def test_example_pydantic_non_strict_keeps_only_required_and_defaults() -> None:
    got = build(Address.model_json_schema())
    assert got == {"street": "mock", "postcode": "mockm"}
    assert build(Address.model_json_schema(), fill_all=True)["country"] == "FR"  # its default


def test_example_recursive_model_stops_at_smallest_value() -> None:
    got = build(to_strict_json_schema(Node), fill_all=True)
    # The root, the recursive reference expanded twice, then its smallest value.
    assert got["children"] == []  # the default
    assert got["parent"]["parent"]["name"] == "mock"
    assert got["parent"]["parent"]["parent"] == {"name": "mock", "children": [], "parent": None}


def test_example_odds_and_ends() -> None:
    got = build(Odds.model_json_schema())
    assert got["pet"] == {"pet_type": "cat", "meows": 1}  # oneOf: the first branch
    assert got["sevens"] == 14
    assert got["below"] == -3
    assert got["fraction"] == 0.275
    assert got["few"] == []
    assert got["wait"] == "PT1S" and got["at"] == "12:00:00"


# --- hand-written schemas ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "mock"),
        ({"type": "string", "maxLength": 2}, "mo"),
        ({"type": "string", "minLength": 6, "maxLength": 6}, "mockmo"),
        ({"type": "string", "format": "email"}, "mock@example.com"),
        ({"type": "string", "format": "uri"}, "https://example.com/mock"),
        ({"type": "string", "format": "ipv4"}, "192.0.2.1"),
        ({"type": "string", "format": "no-such-format"}, "mock"),
        ({"type": "integer", "minimum": 5, "maximum": 9}, 5),
        ({"type": "integer", "exclusiveMaximum": 0}, -1),
        ({"type": "integer", "minimum": 3, "exclusiveMinimum": True}, 4),  # draft 4
        ({"type": "integer", "multipleOf": 5}, 5),
        ({"type": "number", "exclusiveMinimum": 1.5}, 2.5),
        ({"type": "number", "minimum": 2, "maximum": 2}, 2),
        ({"type": "number", "maximum": 1, "exclusiveMaximum": 1.2}, 1),
        ({"type": "boolean"}, True),
        ({"type": "null"}, None),
        ({"type": ["null", "integer"]}, 1),
        ({"type": "string", "nullable": True}, "mock"),
        ({"const": {"k": [1]}}, {"k": [1]}),
        ({"const": None, "type": "null"}, None),
        ({"enum": [None, "x"]}, None),
        ({"type": "string", "default": "fallback"}, "fallback"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, 1),
        ({"oneOf": [{"type": "string", "enum": ["b"]}, {"type": "integer"}]}, "b"),
        (
            {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
            {"a": 1, "b": None},
        ),
        ({"type": "array", "items": {"type": "integer"}}, [1]),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 4}, [1, 1, 1]),
        ({"type": "array", "maxItems": 0}, []),
        ({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "items": False}, [1, "x"]),
        (
            {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}, "minItems": 3},
            [1, "mock", "mock"],
        ),
        ({"type": "array", "items": [{"type": "boolean"}, {"type": "null"}]}, [True, None]),  # draft 4 tuples
        ({"properties": {"x": {"type": "integer"}}}, {"x": 1}),  # untyped with properties: an object
        ({}, None),
        (True, None),
    ],
)
def test_example_hand_written(schema: Any, expected: Any) -> None:
    assert build(schema) == expected


def test_example_object_required_versus_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["b"],
    }
    assert build(schema) == {"b": 1}
    assert build(schema, fill_all=True) == {"a": "mock", "b": 1}
    assert build({**schema, "additionalProperties": False}) == {"a": "mock", "b": 1}
    assert build({**schema, "required": None}) == {"a": "mock", "b": 1}


def test_example_refs_into_defs_definitions_and_root() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"$ref": "#/definitions/B"},
            "slash": {"$ref": "#/$defs/x~1y"},
            "again": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
        },
        "required": ["a", "b", "slash", "again"],
        "$defs": {"A": {"type": "integer", "minimum": 7}, "x/y": {"const": "slashed"}},
        "definitions": {"B": {"$ref": "#/$defs/A"}},
    }
    got = build(schema)
    assert (got["a"], got["b"], got["slash"]) == (7, 7, "slashed")
    # The root reference is recursion: expanded twice, then the smallest value (null).
    assert got["again"]["again"]["a"] == 7
    assert got["again"]["again"]["again"]["again"] is None


def test_example_recursion_through_required_array_ends_with_empty_array() -> None:
    schema = {
        "$defs": {
            "Tree": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
                "required": ["kids"],
            }
        },
        "$ref": "#/$defs/Tree",
    }
    assert build(schema) == {"kids": [{"kids": [{"kids": []}]}]}


def test_example_recursion_picks_a_branch_without_reference() -> None:
    schema = {
        "$defs": {
            "Expr": {
                "anyOf": [
                    {"type": "object", "properties": {"sum": {"$ref": "#/$defs/Expr"}}, "required": ["sum"]},
                    {"type": "integer"},
                ]
            }
        },
        "$ref": "#/$defs/Expr",
    }
    assert build(schema) == {"sum": {"sum": 1}}


def test_example_wide_non_recursive_references_are_expanded_in_full() -> None:
    # The same definition used many times on different paths is not recursion.
    leaf = {"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"$ref": "#/$defs/Leaf"} for i in range(20)},
        "$defs": {"Leaf": leaf},
    }
    assert build(schema) == {f"p{i}": {"v": 1} for i in range(20)}


# --- errors ---------------------------------------------------------------------------

DEEP = {"type": "object", "properties": {"x": {}}, "required": ["x"]}
for _ in range(80):
    DEEP = {"type": "object", "properties": {"x": DEEP}, "required": ["x"]}
# 4**8 values from a small schema: each level refers to the next four times.
FAN: dict[str, Any] = {
    "$defs": {
        f"L{n}": {"type": "object", "properties": {f"p{i}": {"$ref": f"#/$defs/L{n + 1}"} for i in range(4)}}
        for n in range(8)
    }
    | {"L8": {"type": "integer"}},
    "$ref": "#/$defs/L0",
}


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "whatever"}, "unknown type 'whatever'"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "at #/properties/a"),
        ({"$ref": "#/$defs/Missing"}, "'#/$defs/Missing' is not in $defs"),
        ({"$ref": "https://example.com/schema.json"}, "is not in $defs"),
        ({"type": "array", "items": False, "minItems": 1}, "minItems"),
        ({"type": "string", "minLength": 3, "maxLength": 2}, "minLength is above maxLength"),
        ({"type": "string", "minLength": 10**9}, "minLength above 4096"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer fits"),
        ({"type": "integer", "minimum": 1, "maximum": 4, "multipleOf": 5}, "no integer fits"),
        ({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1}, "no number fits"),
        ({"enum": []}, "empty enum"),
        (False, "false schema"),
        (
            {
                "$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}},
                "$ref": "#/$defs/A",
            },
            "nested deeper than 64",
        ),
        (DEEP, "nested deeper than 64"),
        (FAN, "more than 20000 values"),
    ],
)
def test_structured_content_unbuildable_schema_is_400(schema: Any, words: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        content_for(json_schema_format(schema, strict=False))
    assert exc.value.status == 400
    assert exc.value.param == SCHEMA_PARAM
    assert words in exc.value.message
    assert exc.value.message.startswith(f"mock provider: {SCHEMA_PARAM}: ")


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (json_schema_format({"properties": []}), SCHEMA_PARAM),
        (json_schema_format({"type": 5}), SCHEMA_PARAM),
        (json_schema_format({"minimum": "1"}), SCHEMA_PARAM),
        (json_schema_format({"properties": {"x": "y" * (256 * 1024)}}), SCHEMA_PARAM),
        ({"type": "json_schema"}, "response_format"),
        ({"type": "yaml"}, "response_format.type"),
        ({"json_schema": {}}, "response_format"),
        ("json", "response_format"),
    ],
)
def test_structured_content_bad_shapes_are_400(response_format: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        content_for(response_format)
    assert exc.value.param == param


def test_structured_content_deeply_nested_json_is_400() -> None:
    raw = b'{"type":"json_schema","json_schema":{"schema":' + b'{"items":' * 5000 + b"{}" + b"}" * 5002
    with pytest.raises(InvalidRequest) as exc:
        mock_schema.structured_content(msgspec.Raw(raw), text="")
    assert exc.value.param is not None and exc.value.param.startswith("response_format")


def test_structured_content_text_json_object_and_schemaless() -> None:
    assert content_for({"type": "text"}) is None
    assert content_for(None) is None
    assert content_for({"type": "json_object"}, text='say "hi"') == '{"answer":"say \\"hi\\""}'
    assert content_for({"type": "json_schema", "json_schema": {"name": "x"}}, text="w") == '{"answer":"w"}'


# --- the fake's answers -----------------------------------------------------------------

PERSON_FORMAT = json_schema_format(to_strict_json_schema(Person))


def make_plan(body: dict[str, Any], *, endpoint: Any = "chat", config: MockConfig | None = None) -> mock.Plan:
    req = mock.decode(json.dumps(body).encode())
    return mock.plan(req, endpoint=endpoint, config=config or MockConfig(), rolls=(0.5, 0.5, 0.5), created=7, serial=1)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-chat", "messages": [{"role": "user", "content": "who?"}], **fields}


def payloads(p: mock.Plan) -> list[dict[str, Any]]:
    out = list(mock.frames(p))
    assert out[-1] == b"data: [DONE]\n\n"
    return [msgspec.json.decode(f.removeprefix(b"data: ")) for f in out[:-1]]


def test_plan_structured_content_is_the_whole_document() -> None:
    p = make_plan(chat(response_format=PERSON_FORMAT, max_tokens=2), config=MockConfig(tokens=30))
    assert p.content is not None
    Person.model_validate_json(p.content)
    assert p.finish_reason == "stop"  # whole, whatever the cap
    assert p.tokens == len(p.content) // 4
    body = msgspec.json.decode(mock.completion_body(p))
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": p.content}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == p.tokens


def test_frames_structured_content_in_fragments() -> None:
    p = make_plan(chat(response_format=PERSON_FORMAT, stream=True, stream_options={"include_usage": True}))
    chunks = payloads(p)
    first, *pieces, last, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"]["content"] for c in pieces]
    assert all(0 < len(t) <= 8 for t in texts)
    assert "".join(texts) == p.content
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert usage["usage"]["completion_tokens"] == p.tokens
    assert mock.unary_delay_s(msgspec.structs.replace(p, itl_s=0.01)) == pytest.approx(0.01 * (len(texts) - 1))


def test_plan_json_object_answers_words_in_an_object() -> None:
    p = make_plan(chat(response_format={"type": "json_object"}, seed=1), config=MockConfig(tokens=3))
    assert p.content == '{"answer":"gateway relays every"}'
    assert p.tokens == len(p.content) // 4


def test_plan_tools_take_precedence_then_structured_output() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    p = make_plan(chat(tools=[tool], response_format=PERSON_FORMAT))
    assert p.tool_call is not None and p.content is None
    # After the tool's result, or with tools turned off: the structured answer.
    done = [
        {"role": "user", "content": "who?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "{}"},
    ]
    for body in (
        chat(tools=[tool], response_format=PERSON_FORMAT, messages=done),
        chat(tools=[tool], response_format=PERSON_FORMAT, tool_choice="none"),
    ):
        q = make_plan(body)
        assert q.tool_call is None and q.content is not None
        Person.model_validate_json(q.content)


@pytest.mark.parametrize("response_format", [None, {"type": "text"}])
def test_plan_text_format_answers_words_unchanged(response_format: Any) -> None:
    p = make_plan(chat(response_format=response_format, stream=True), config=MockConfig(tokens=5))
    q = make_plan(chat(stream=True), config=MockConfig(tokens=5))
    assert p.content is None
    assert list(mock.frames(p)) == list(mock.frames(msgspec.structs.replace(q, prompt_tokens=p.prompt_tokens)))


def test_plan_text_endpoint_ignores_response_format() -> None:
    p = make_plan({"model": "m", "prompt": "hi", "response_format": {"type": "nope"}}, endpoint="text")
    assert p.content is None


def test_planner_unbuildable_schema_is_400_not_500() -> None:
    planner = mock.Planner(MockConfig())
    body = json.dumps(chat(response_format=json_schema_format({"$ref": "#/$defs/Nope"}))).encode()
    with pytest.raises(InvalidRequest) as exc:
        planner(body, endpoint="chat")
    assert exc.value.param == SCHEMA_PARAM


def test_gemini_route_response_json_schema_answers_the_document() -> None:
    """``gateway mock``'s Gemini route: responseJsonSchema becomes response_format."""
    schema = Address.model_json_schema()
    req = {
        "contents": [{"role": "user", "parts": [{"text": "where?"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    body = gemini.generate_request(json.dumps(req).encode(), model="gemini-x", stream=False)
    out = msgspec.json.decode(
        gemini.generate_response(mock.completion_body(mock.Planner(MockConfig())(body, endpoint="chat")))
    )
    Address.model_validate_json(out["candidates"][0]["content"]["parts"][0]["text"])


def test_anthropic_route_output_format_answers_the_document() -> None:
    """``gateway mock``'s /v1/messages: output_config.format becomes response_format."""
    turn = {
        "model": "claude",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "where?"}],
        "output_config": {"format": {"type": "json_schema", "schema": to_strict_json_schema(Address)}},
    }
    body, _, _ = anthropic.messages_request(json.dumps(turn).encode())
    out = msgspec.json.decode(
        anthropic.messages_response(mock.completion_body(mock.Planner(MockConfig())(body, endpoint="chat")))
    )
    (block,) = out["content"]
    Address.model_validate_json(block["text"])
    assert out["stop_reason"] == "end_turn"
