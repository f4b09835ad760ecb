"""An OpenAI ``file`` content part (a document sent inline) read the same way by every
dialect that translates it, and the names a translated document gets on the way back.

``{"type": "file", "file": {"file_data": "data:application/pdf;base64,<b64>",
"filename": "report.pdf"}}`` is what OpenAI documents; some clients send plain base64 in
``file_data`` and leave the type to the filename's extension. A ``file_id`` names a file
in OpenAI's Files API, which no other provider can read.
"""

from __future__ import annotations

from msgspec import Struct

from gateway.errors import InvalidRequest

# A filename's extension -> media type, for ``file_data`` sent as plain base64. Only
# the document types every translating dialect takes; anything else must say its type
# in a data URL.
TYPES_BY_EXTENSION: dict[str, str] = {
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
}
# Media type -> the extension of the filename a document without a title gets (OpenAI
# reads the file's name along with its data).
_EXTENSIONS: dict[str, str] = {
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "text/html": ".html",
    "application/json": ".json",
}
DEFAULT_NAME = "document"


class InlineFile(Struct, kw_only=True, frozen=True):
    """A file part's payload: its media type (lower case) and base64 data."""

    media_type: str
    data: str


def file_id_refused(param: str, *, dialect: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}': file ids are only usable with OpenAI-dialect providers, not the {dialect} provider "
        "dialect; send the file inline as file_data (a base64 data URL)",
        param=param,
        code="unsupported_parameter",
    )


def inline_file(file_data: str, *, filename: str | None, param: str) -> InlineFile:
    """``file_data`` as a media type and base64 data: a ``data:<type>;base64,`` URL, or
    plain base64 whose type the filename's extension gives. ``param`` names
    ``file_data`` in the InvalidRequest for anything else."""
    if file_data.startswith("data:"):
        head, sep, data = file_data[5:].partition(",")
        media_type, *params = head.split(";")
        if not sep or not params or params[-1] != "base64":
            raise InvalidRequest(
                f"'{param}' must be a base64 data URL (data:<media type>;base64,<data>)",
                param=param,
                code="invalid_value",
            )
        media_type = media_type.strip().lower() or _by_extension(filename) or ""
        if not media_type:
            raise InvalidRequest(f"'{param}' names no media type", param=param, code="invalid_value")
        return InlineFile(media_type=media_type, data=data)
    guessed = _by_extension(filename)
    if guessed is None:
        known = ", ".join(TYPES_BY_EXTENSION)
        raise InvalidRequest(
            f"'{param}' is not a data URL (data:<media type>;base64,<data>), and the file's media type cannot "
            f"be told from its filename ({filename!r}); a filename ending in {known} would do",
            param=param,
            code="invalid_value",
        )
    return InlineFile(media_type=guessed, data=file_data)


def _by_extension(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return TYPES_BY_EXTENSION.get(filename[filename.rfind(".") :].lower())


def file_name(media_type: str, title: str | None = None) -> str:
    """The ``filename`` of a translated OpenAI file part: the document's own title, else
    ``document`` with the media type's extension."""
    return title or DEFAULT_NAME + _EXTENSIONS.get(media_type.lower(), "")


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"
