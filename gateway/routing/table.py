"""The model table: ``provider/model`` (or an alias, or a bare model) to a target.

Rule: if the text before the first ``/`` names a configured provider, that provider
serves the rest; otherwise the whole string is a bare model for the default provider
(so ``meta-llama/Llama-3.1-8B`` reaches a vLLM default provider unchanged).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.routing.providers import Provider

# Model names come from clients; bounds the cache of resolved targets.
MAX_CACHED_MODELS = 4096
# Real model ids are under 100 characters; every cache keyed by a model name (targets,
# prices, request heads, extra_fields prefixes) holds a bounded number of entries, so
# this bounds them in bytes too (~1 MB each at most).
MAX_MODEL_CHARS = 256
# A model a dialect puts into its upstream URL (``Dialect.url_names_model``; Gemini:
# /v1beta/models/{model}:action) must be one plain path segment: no "/", "?", "#", "%",
# ":" nor "..".
_URL_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Target(NamedTuple):
    provider: Provider
    model: str  # the upstream's model id
    rewrite: bool  # the forwarded body's "model" must be replaced by ``model``
    # The planner's: this target gets a Responses API request as the client sent it, at
    # the provider's /responses (``responses: native``), its answer relayed as is.
    native: bool = False
    # A native target's translated twin (``responses: auto``): the same provider with the
    # request translated, tried in its place when the server has no such route.
    twin: tuple[Target, bytes | GatewayError] | None = None


def check_model(model: str, *, param: str) -> None:
    """A 400 naming ``param`` for a requested model name over the bound (not quoted)."""
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"{param}: a model name has at most {MAX_MODEL_CHARS} characters, got {len(model)}",
            param=param,
            code="invalid_value",
        )


def check_url_model(target: Target, *, param: str) -> Target:
    """``target``, refused with a 400 naming ``param`` when its model goes into the
    upstream's URL and is not a plain path segment."""
    model = target.model
    if target.provider.wire.url_names_model and (_URL_MODEL.fullmatch(model) is None or ".." in model):
        raise InvalidRequest(
            f"{param}: provider '{target.provider.name}' names the model in its URL; a model for it is letters, "
            f"digits, '.', '_' and '-' (no '..'), got {model[:MAX_MODEL_CHARS]!r}",
            param=param,
            code="invalid_value",
        )
    return target


class ModelTable:
    __slots__ = ("_aliases", "_cache", "_default", "_own", "_providers")

    def __init__(self, providers: dict[str, Provider], *, default: str | None, aliases: dict[str, str]) -> None:
        self._providers = providers
        self._default = providers[default] if default is not None else None
        self._aliases = aliases
        # Each dialect's own provider, for bare models at its SDK drop-in route: the one
        # named like the dialect, else the first configured with it.
        self._own: dict[str, Provider] = {}
        for p in providers.values():
            if p.dialect not in self._own or p.name == p.dialect:
                self._own[p.dialect] = p
        # Resolved targets by requested model (errors are not cached: they raise).
        self._cache: dict[str, Target] = {}

    def resolve(self, requested: str, *, param: str = "model") -> Target:
        target = self._cache.get(requested)
        if target is None:  # only valid names are cached: checked here, once
            check_model(requested, param=param)
            target = check_url_model(self._resolve(requested, param=param), param=param)
            if len(self._cache) >= MAX_CACHED_MODELS:
                self._cache.clear()
            self._cache[requested] = target
        return target

    def resolve_native(self, requested: str, dialect: str, *, param: str = "model") -> Target:
        """At a dialect's SDK drop-in route: ``provider/model`` and aliases resolve as
        anywhere; a bare model goes to the dialect's own provider when one is configured
        (else to the default provider, as on the OpenAI routes)."""
        own = self._own.get(dialect)
        if own is not None and requested not in self._aliases:
            prefix, sep, _ = requested.partition("/")
            if not (sep and prefix in self._providers):
                check_model(requested, param=param)
                return check_url_model(Target(own, requested, False), param=param)
        return self.resolve(requested, param=param)

    def _resolve(self, requested: str, *, param: str) -> Target:
        name = self._aliases.get(requested, requested)
        prefix, sep, rest = name.partition("/")
        provider = self._providers.get(prefix) if sep else None
        if provider is not None:
            if not rest:
                raise InvalidRequest(
                    f"model '{requested}' names provider '{prefix}' but no model", param=param, code="invalid_value"
                )
            return Target(provider, rest, True)
        if self._default is not None:
            return Target(self._default, name, name != requested)
        known = ", ".join(sorted(self._providers)) or "none"
        how = (
            "name one as 'provider/model', or add a provider under 'providers' in the config file "
            "(or set OPENAI_BASE_URL / OPENAI_API_KEY) and make it 'default_provider' for bare model names"
        )
        if sep:
            raise ModelNotFound(
                f"model '{requested}': no provider '{prefix}' is configured; configured providers: {known}; {how}",
                param=param,
            )
        raise ModelNotFound(
            f"model '{requested}' names no provider and there is no default provider; "
            f"configured providers: {known}; {how}",
            param=param,
        )

    @property
    def providers(self) -> dict[str, Provider]:
        return self._providers
