"""gateway.routing.table: requested model name to (provider, upstream model, rewrite)."""

from __future__ import annotations

from typing import cast

import pytest

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.providers.registry import DIALECTS
from gateway.routing.providers import Provider
from gateway.routing.table import ModelTable


class FakeProvider:
    """ModelTable only stores providers; a name, a dialect and endpoints are all it needs."""

    def __init__(self, name: str, dialect: str = "openai") -> None:
        self.name = name
        self.dialect = dialect
        self.wire = DIALECTS[dialect]
        self.endpoints = frozenset({"chat", "text"})


OPENAI = cast(Provider, FakeProvider("openai"))
LOCAL = cast(Provider, FakeProvider("local"))


def table(*, default: str | None = "local", aliases: dict[str, str] | None = None) -> ModelTable:
    return ModelTable({"openai": OPENAI, "local": LOCAL}, default=default, aliases=aliases or {})


def test_resolve_provider_slash_model() -> None:
    target = table().resolve("openai/gpt-4o")
    assert target.provider is OPENAI
    assert target.model == "gpt-4o"
    assert target.rewrite is True


def test_resolve_provider_slash_model_without_default() -> None:
    target = table(default=None).resolve("local/llama")
    assert target.provider is LOCAL
    assert target.model == "llama"
    assert target.rewrite is True


def test_resolve_keeps_later_slashes_in_model() -> None:
    target = table().resolve("local/meta-llama/Llama-3.1-8B")
    assert target.provider is LOCAL
    assert target.model == "meta-llama/Llama-3.1-8B"
    assert target.rewrite is True


def test_resolve_bare_model_goes_to_default() -> None:
    target = table(default="openai").resolve("gpt-4o-mini")
    assert target.provider is OPENAI
    assert target.model == "gpt-4o-mini"
    assert target.rewrite is False


def test_resolve_org_slash_model_not_a_provider_goes_to_default() -> None:
    target = table(default="local").resolve("meta-llama/Llama-3.1-8B")
    assert target.provider is LOCAL
    assert target.model == "meta-llama/Llama-3.1-8B"
    assert target.rewrite is False


def test_resolve_alias_to_target() -> None:
    target = table(default="local", aliases={"fast": "openai/gpt-4o-mini"}).resolve("fast")
    assert target.provider is OPENAI
    assert target.model == "gpt-4o-mini"
    assert target.rewrite is True


def test_resolve_alias_without_default() -> None:
    target = table(default=None, aliases={"smart": "local/qwen"}).resolve("smart")
    assert target.provider is LOCAL
    assert target.model == "qwen"
    assert target.rewrite is True


def test_resolve_alias_only_matches_exact_name() -> None:
    target = table(default="local", aliases={"fast": "openai/gpt-4o-mini"}).resolve("fast2")
    assert target.provider is LOCAL
    assert target.model == "fast2"
    assert target.rewrite is False


def test_resolve_unknown_provider_without_default() -> None:
    with pytest.raises(ModelNotFound) as exc:
        table(default=None).resolve("nope/model", param="fallbacks[1]")
    err = exc.value
    assert err.code == "model_not_found"
    assert err.param == "fallbacks[1]"
    assert err.status == 404
    assert "nope" in err.message
    # The configured providers are listed to help the client.
    assert "local" in err.message
    assert "openai" in err.message


def test_resolve_unknown_provider_default_param_is_model() -> None:
    with pytest.raises(ModelNotFound) as exc:
        table(default=None).resolve("nope/model")
    assert exc.value.param == "model"


def test_resolve_bare_model_without_default() -> None:
    with pytest.raises(ModelNotFound) as exc:
        table(default=None).resolve("gpt-4o", param="model")
    assert exc.value.code == "model_not_found"
    assert exc.value.param == "model"
    assert "gpt-4o" in exc.value.message


def test_resolve_no_providers_at_all() -> None:
    empty = ModelTable({}, default=None, aliases={})
    with pytest.raises(ModelNotFound) as exc:
        empty.resolve("x/y")
    assert exc.value.code == "model_not_found"


def test_table_exposes_providers() -> None:
    t = table()
    assert t.providers == {"openai": OPENAI, "local": LOCAL}


@pytest.mark.parametrize("default", [None, "local"])
def test_resolve_provider_without_model_is_rejected(default: str | None) -> None:
    with pytest.raises(InvalidRequest, match="names provider 'openai' but no model"):
        table(default=default).resolve("openai/")


CLAUDE = cast(Provider, FakeProvider("claude", "anthropic"))
ANTHROPIC = cast(Provider, FakeProvider("anthropic", "anthropic"))


def native_table(*providers: Provider) -> ModelTable:
    return ModelTable({p.name: p for p in providers}, default="local", aliases={"fast": "openai/gpt-4o-mini"})


def test_resolve_native_bare_model_goes_to_the_dialects_own_provider() -> None:
    t = native_table(OPENAI, LOCAL, CLAUDE)
    target = t.resolve_native("claude-sonnet-4-5", "anthropic")
    assert (target.provider, target.model) == (CLAUDE, "claude-sonnet-4-5")
    # A slash in a bare model name is not a provider prefix unless it names one.
    assert t.resolve_native("org/claude", "anthropic").provider is CLAUDE


def test_resolve_native_prefers_the_provider_named_like_the_dialect() -> None:
    t = native_table(OPENAI, LOCAL, CLAUDE, ANTHROPIC)
    assert t.resolve_native("claude-x", "anthropic").provider is ANTHROPIC


def test_resolve_native_provider_prefix_and_aliases_route_as_anywhere() -> None:
    t = native_table(OPENAI, LOCAL, CLAUDE)
    target = t.resolve_native("openai/gpt-4o", "anthropic")
    assert (target.provider, target.model) == (OPENAI, "gpt-4o")
    assert t.resolve_native("fast", "anthropic").provider is OPENAI


def test_resolve_native_without_a_provider_of_the_dialect_uses_the_default() -> None:
    t = native_table(OPENAI, LOCAL, CLAUDE)
    target = t.resolve_native("gemini-2.5-flash", "gemini")
    assert (target.provider, target.model) == (LOCAL, "gemini-2.5-flash")
