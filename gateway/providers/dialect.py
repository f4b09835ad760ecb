"""A wire dialect as one object: what a provider speaking it serves, how it is reached,
how its requests and answers are translated, and the SDK routes the gateway serves in it.

Each part a dialect lacks is ``None``, not a stub: the mock is reached in-process (no
``upstream``), OpenAI's bodies pass as bytes (no ``translator``) and its SDK routes are the
gateway's own (no ``inbound``). The flags the relay reads per request (``translated``,
``url_names_model``, ``direct_key``) are derived once here, so a provider holds them as
plain attributes chosen at start-up.

The dialects themselves live in ``providers.openai``, ``providers.anthropic``,
``providers.gemini`` and ``providers.mock``, each with its ``DIALECT``; the registry of
them all is ``providers.registry.DIALECTS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import msgspec
from msgspec import UnsetType

from gateway.errors import UpstreamProtocolError
from gateway.providers import Endpoint
from gateway.schemas.response import UpstreamModelList

_model_list = msgspec.json.Decoder(UpstreamModelList).decode


class FrameTranslator(Protocol):
    """Fed whole SSE frames of one dialect, returns those of another."""

    def feed(self, frames: bytes) -> bytes: ...


class ChatStream(FrameTranslator, Protocol):
    """An upstream's event frames into OpenAI chunk frames; what it holds comes out at
    ``close`` (a dialect without a closing event)."""

    def close(self) -> bytes: ...


class Upstream:
    """How a provider of the dialect is reached over HTTP: its endpoint paths under the
    configured base URL, its request headers and its model list. This base class is the
    OpenAI dialect's; the others override what differs."""

    __slots__ = ("models_path", "paths", "url_names_model")

    def __init__(self, *, paths: dict[Endpoint, str], models_path: str, url_names_model: bool = False) -> None:
        self.paths = paths
        self.models_path = models_path
        # The URL holds the model (Gemini: /v1beta/models/{model}:action): built per
        # request by ``url``, and the model must be one plain path segment.
        self.url_names_model = url_names_model

    def urls(self, base_url: str) -> dict[Endpoint, str]:
        """Each endpoint's URL, built once (dialects whose URL does not name the model)."""
        return {e: base_url + p for e, p in self.paths.items()}

    def url(self, base_url: str, endpoint: Endpoint, *, model: str, stream: bool) -> str:
        """One request's URL: only dialects whose URL names the model need it."""
        return self.urls(base_url)[endpoint]

    def request_headers(self, *, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
        """Per-key upstream headers; the session adds User-Agent. Each header costs
        aiohttp's client a few µs per request, so only what the upstream needs."""
        headers = {"Content-Type": "application/json"}
        headers.update(extra)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def model_list(self, data: bytes) -> list[str]:
        """The model ids in a ``GET {models_path}`` answer (msgspec errors when unreadable)."""
        return [m.id for m in _model_list(data).data]

    def model_path(self, rest: str) -> tuple[str, Action] | None:
        """The inverse of ``url`` after ``models_path + "/"``: (model, action), None when
        ``rest`` is not one of the dialect's actions (dialects whose URL names the model)."""
        return None


class Translator(Protocol):
    """An OpenAI chat request, answer, error and stream to and from the dialect, for a
    provider that speaks it (the upstream side)."""

    # An error event the upstream itself sent mid-stream.
    stream_error: type[UpstreamProtocolError]

    def chat_request(self, body: bytes, *, model: str) -> bytes: ...

    def chat_response(self, data: bytes, *, model: str, created: int) -> bytes: ...

    def error_body(self, status: int, data: bytes) -> bytes: ...

    def chat_stream(self, *, model: str, created: int) -> ChatStream: ...


class Embedder(Protocol):
    """Embeddings to and from a dialect whose wire differs from OpenAI's: the upstream
    side (an OpenAI request into it, its answer back) and the SDK side (its client's
    request into OpenAI's form, or into its own for a target of the dialect; the answer
    back). ``single``: the client asked for one embedding, not a batch."""

    def request(self, body: bytes, *, model: str) -> bytes: ...

    def response(self, data: bytes, *, model: str, base64: bool) -> bytes: ...

    def client_request(self, body: bytes, *, model: str, single: bool) -> bytes: ...

    def native_request(self, body: bytes, *, model: str, single: bool) -> bytes: ...

    def client_answer(self, data: bytes, *, single: bool) -> bytes: ...

    def native_answer(self, data: bytes, *, single: bool) -> bytes: ...


class InboundHead(NamedTuple):
    """What the gateway reads of an SDK's request body to route it; the rest stays bytes.
    ``model`` / ``stream``: None when the dialect names them in the URL instead."""

    model: str | None
    stream: bool | None
    max_out: int  # the completion bound it asks for (0: none), for admission estimates
    fallbacks: list[str] | UnsetType
    # A stored conversation the request continues (the Responses API's
    # previous_response_id), and whether its answer is to be kept for later ones.
    previous: str | None = None
    keep: bool = False


class Action(NamedTuple):
    """A call a dialect names in its URL after the model (Gemini's ``:countTokens``)."""

    kind: str  # the drop-in's kind of call: "chat", "count_tokens"
    stream: bool


class ListedModel(NamedTuple):
    """One entry of a model list, as ``GET /v1/models`` lists it (``provider/model``)."""

    id: str
    provider: str
    endpoints: frozenset[Endpoint]  # what its provider serves


class Inbound(Protocol):
    """The dialect's SDK as a client of the gateway: its request into OpenAI's form, the
    OpenAI answer, stream and error back into its own; its token counts, model lists
    and pending async jobs in its own shapes."""

    # Request headers of the SDK forwarded to every target (unless forwarded explicitly).
    forwarded_headers: tuple[str, ...]
    # The calls named in the URL after ``{model}:``, by name (empty: the body names them).
    actions: Mapping[str, Action]

    def head(self, body: bytes, *, strict: bool) -> InboundHead:
        """The routed fields (a 400 naming the problem when unreadable); ``strict``: a
        repeated key the gateway reads is refused (``codec.decode_request``)."""
        ...

    def count_request(self, body: bytes, *, model: str) -> bytes:
        """A token-count request as the OpenAI chat request whose prompt it counts."""
        ...

    def count_answer(self, tokens: int) -> bytes: ...

    def model_list(self, models: Sequence[ListedModel]) -> bytes: ...

    def model(self, entry: ListedModel) -> bytes: ...

    def pending(self, *, job_id: str, model: str, job: bytes, created: int) -> bytes:
        """An unfinished async job as an answer the SDK parses; ``job``: the job object
        (JSON), carried in ``extra_fields.async_job``; ``created``: when it was submitted
        (Unix seconds), for a shape that says so."""
        ...

    def to_openai(self, body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
        """``model`` and ``stream``: from the URL, for a dialect whose URL names them;
        ``prior``: the stored conversation the request continues (``InboundHead.previous``),
        given only to a dialect whose head names one."""
        ...

    def answer(self, data: bytes, *, request: bytes) -> bytes:
        """``data``: the OpenAI answer, with ``usage`` (and its ``cost``) and
        ``extra_fields``; ``request``: the client's own request body (what an answer
        may echo)."""
        ...

    def stream(self, *, request: bytes) -> FrameTranslator:
        """Fed whole OpenAI frames (``data: [DONE]`` included; the last chunk with
        ``usage`` and ``extra_fields``), it returns the client's; ``request`` as for
        ``answer``."""
        ...

    def error(self, status: int, openai_body: bytes) -> bytes:
        """An OpenAI error body as the dialect's."""
        ...

    def error_fields(
        self, status: int, *, message: str, kind: str, param: str | None, code: str | None
    ) -> dict[str, object]:
        """A gateway error in the dialect's shape, with the OpenAI fields a gateway client
        looks for."""
        ...


class Route(NamedTuple):
    """One SDK call the gateway serves: ``path`` under an integration's version root
    (``{model}``: a variable part, served by prefix), handled by the server's ``handler``
    (the kind of call: "chat", "count_tokens", "models", ...; for a dialect with an
    ``inbound``, its drop-in's handler of that kind)."""

    method: str
    path: str
    handler: str


class Integration(NamedTuple):
    """Where an SDK's base URL may point: a prefix and the version roots under it."""

    prefix: str
    versions: tuple[str, ...]


class Dialect:
    """One wire dialect; one instance each, chosen once per provider at start-up."""

    __slots__ = (
        "client_headers",
        "direct_key",
        "embedder",
        "endpoints",
        "inbound",
        "integrations",
        "name",
        "request_types",
        "routes",
        "translated",
        "translator",
        "upstream",
        "url_names_model",
    )

    def __init__(
        self,
        name: str,
        *,
        endpoints: frozenset[Endpoint],
        upstream: Upstream | None = None,
        translator: Translator | None = None,
        inbound: Inbound | None = None,
        routes: tuple[Route, ...] = (),
        integrations: tuple[Integration, ...] = (),
        embedder: Embedder | None = None,
        client_headers: tuple[str, ...] = (),
        request_types: Mapping[tuple[str, bool], str] | None = None,
    ) -> None:
        self.name = name
        self.endpoints = endpoints
        self.upstream = upstream  # None: reached in-process
        self.translator = translator  # None: OpenAI bodies pass as bytes
        self.inbound = inbound  # None: its SDK is an OpenAI client
        self.routes = routes
        self.integrations = integrations
        self.embedder = embedder  # None: embeddings pass as OpenAI bytes (or are not served)
        # Request headers only this dialect's SDK sends: at a path several dialects
        # share (GET /langchain/v1/models), one of them present picks its answer's shape.
        self.client_headers = client_headers
        # What its SDK's calls are named in extra_fields.request_type and the access log,
        # by (kind of call, stream), where they are not the OpenAI calls' names
        # (chat_completion, ...): the Responses API's "responses".
        self.request_types: Mapping[tuple[str, bool], str] = request_types or {}
        self.translated = translator is not None
        self.url_names_model = upstream is not None and upstream.url_names_model
        # A client's own key (x-bf-direct-key) goes to providers reached over HTTP.
        self.direct_key = upstream is not None

    def served(self) -> list[Route]:
        """Its SDK routes under every integration prefix and version root, as full paths."""
        return [
            Route(r.method, i.prefix + v + r.path, r.handler)
            for i in self.integrations
            for v in i.versions
            for r in self.routes
        ]

    def __repr__(self) -> str:
        return f"Dialect({self.name!r})"
