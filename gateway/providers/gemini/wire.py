"""Gemini generateContent wire shapes (v1beta REST, lowerCamelCase as the API sends them).

One set of Structs serves both directions: decoded from an upstream answer or a
google-genai client's request, encoded into an upstream request or a client's answer.
Free-form JSON (function ``args``, ``response``, JSON schemas) is ``Any``: it is
decoded once and either re-encoded into an OpenAI string or passed along as is.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

DIALECT = "gemini"


class Blob(Struct, kw_only=True):
    mimeType: str = ""
    data: str = ""  # base64


class FileData(Struct, kw_only=True):
    fileUri: str
    mimeType: str | UnsetType = UNSET


class FunctionCall(Struct, kw_only=True):
    name: str
    args: dict[str, Any] | UnsetType | None = UNSET
    id: str | UnsetType = UNSET


class FunctionResponse(Struct, kw_only=True):
    name: str
    response: dict[str, Any] | UnsetType | None = UNSET
    id: str | UnsetType = UNSET


class Part(Struct, kw_only=True):
    text: str | UnsetType = UNSET
    thought: bool | UnsetType = UNSET
    inlineData: Blob | UnsetType = UNSET
    fileData: FileData | UnsetType = UNSET
    functionCall: FunctionCall | UnsetType = UNSET
    functionResponse: FunctionResponse | UnsetType = UNSET
    # Opaque base64; must go back with the part it came on (see ids.py).
    thoughtSignature: str | UnsetType = UNSET
    # Read only to refuse them clearly: they have no OpenAI equivalent.
    executableCode: Any = UNSET
    codeExecutionResult: Any = UNSET


class Content(Struct, kw_only=True):
    parts: list[Part] = []
    role: str | UnsetType = UNSET


class FunctionDeclaration(Struct, kw_only=True):
    name: str
    description: str | UnsetType = UNSET
    # JSON Schema, taken as is by the API (preferred: no OpenAPI-subset conversion).
    parametersJsonSchema: Any = UNSET
    # The older OpenAPI-subset Schema ("type": "OBJECT", ...); read, never written.
    parameters: Any = UNSET


class Tool(Struct, kw_only=True):
    functionDeclarations: list[FunctionDeclaration] | UnsetType = UNSET


class FunctionCallingConfig(Struct, kw_only=True):
    mode: str | UnsetType = UNSET
    allowedFunctionNames: list[str] | UnsetType = UNSET


class ToolConfig(Struct, kw_only=True):
    functionCallingConfig: FunctionCallingConfig | UnsetType = UNSET


class ThinkingConfig(Struct, kw_only=True):
    includeThoughts: bool | UnsetType = UNSET
    thinkingBudget: int | UnsetType = UNSET
    thinkingLevel: str | UnsetType = UNSET


class GenerationConfig(Struct, kw_only=True):
    temperature: float | UnsetType = UNSET
    topP: float | UnsetType = UNSET
    topK: float | UnsetType = UNSET
    candidateCount: int | UnsetType = UNSET
    maxOutputTokens: int | UnsetType = UNSET
    stopSequences: list[str] | UnsetType = UNSET
    presencePenalty: float | UnsetType = UNSET
    frequencyPenalty: float | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    responseMimeType: str | UnsetType = UNSET
    responseJsonSchema: Any = UNSET
    responseSchema: Any = UNSET
    responseLogprobs: bool | UnsetType = UNSET
    logprobs: int | UnsetType = UNSET
    thinkingConfig: ThinkingConfig | UnsetType = UNSET
    responseModalities: list[str] | UnsetType = UNSET
    speechConfig: Any = UNSET


class GenerateContentRequest(Struct, kw_only=True):
    contents: list[Content] = []
    systemInstruction: Content | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    toolConfig: ToolConfig | UnsetType = UNSET
    generationConfig: GenerationConfig | UnsetType = UNSET
    # Read only to refuse it: a server-side cache only Gemini holds.
    cachedContent: str | UnsetType = UNSET


class LogprobsCandidate(Struct, kw_only=True):
    token: str = ""
    logProbability: float = 0.0
    tokenId: int | UnsetType = UNSET


class TopCandidates(Struct, kw_only=True):
    candidates: list[LogprobsCandidate] = []


class LogprobsResult(Struct, kw_only=True):
    topCandidates: list[TopCandidates] = []
    chosenCandidates: list[LogprobsCandidate] = []


class Candidate(Struct, kw_only=True):
    content: Content | UnsetType = UNSET
    finishReason: str | UnsetType = UNSET
    index: int | UnsetType = UNSET
    logprobsResult: LogprobsResult | UnsetType = UNSET


class UsageMetadata(Struct, kw_only=True, omit_defaults=True):
    """Zero counts are left out, as the API does."""

    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    totalTokenCount: int = 0
    cachedContentTokenCount: int = 0
    thoughtsTokenCount: int = 0
    toolUsePromptTokenCount: int = 0


class PromptFeedback(Struct, kw_only=True):
    blockReason: str | UnsetType = UNSET


class GenerateContentResponse(Struct, kw_only=True):
    candidates: list[Candidate] | UnsetType = UNSET
    promptFeedback: PromptFeedback | UnsetType = UNSET
    usageMetadata: UsageMetadata | UnsetType = UNSET
    modelVersion: str | UnsetType = UNSET
    responseId: str | UnsetType = UNSET


class Status(Struct, kw_only=True):
    """google.rpc.Status as the API renders errors."""

    code: int | UnsetType = UNSET
    message: str = ""
    status: str | UnsetType = UNSET


class ErrorBody(Struct, kw_only=True):
    error: Status


class StreamFrame(Struct, kw_only=True):
    """One ``data:`` payload of ``streamGenerateContent?alt=sse``: a response, or an
    error the API sends in band."""

    candidates: list[Candidate] | UnsetType = UNSET
    promptFeedback: PromptFeedback | UnsetType = UNSET
    usageMetadata: UsageMetadata | UnsetType = UNSET
    modelVersion: str | UnsetType = UNSET
    responseId: str | UnsetType = UNSET
    error: Status | UnsetType = UNSET


encode = msgspec.json.Encoder().encode
decode_response = msgspec.json.Decoder(GenerateContentResponse).decode
decode_frame = msgspec.json.Decoder(StreamFrame).decode
decode_error = msgspec.json.Decoder(ErrorBody | list[ErrorBody]).decode
