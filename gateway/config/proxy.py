"""Forward proxy settings: a proxy URL parsed (``Proxy``) and which proxy an origin goes
through under ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``, read with
the standard library's rules. Decided once per provider when the config is resolved;
both upstream clients then use the same ``Proxy`` (the CONNECT tunnel is
``gateway.upstream.proxy``). A proxy's credentials are secrets: ``name``
(``http://host:port``) is what logs and errors show, never the URL it was given.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit


class Proxy:
    """An ``http://[user:password@]host[:port]`` forward proxy (TLS to the proxy itself,
    ``https://`` or SOCKS proxies, is not supported)."""

    __slots__ = ("authorization", "host", "name", "password", "port", "user")

    def __init__(self, url: str) -> None:
        # "proxy:3128" as curl and urllib take it: http://.
        parts = urlsplit(url if "://" in url else "http://" + url)
        try:
            port = parts.port
        except ValueError:
            port = None
            bad_port = True
        else:
            bad_port = False
        host = parts.hostname
        shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")  # never the userinfo
        if parts.scheme != "http" or not host or bad_port:
            raise ValueError(f"expected an http://host:port proxy URL, got {shown!r}")
        self.host = host
        # 80 when none is given, as urllib, requests and aiohttp take it (curl takes 1080).
        self.port = port or 80
        self.name = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.user = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else ""
        self.authorization: str | None = None
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            self.authorization = f"Basic {token}"

    def __repr__(self) -> str:
        return f"Proxy({self.name})"


def environment_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """``urllib.request.getproxies_environment`` over ``env`` rather than ``os.environ``:
    ``<scheme>_proxy`` in any case, the all-lower-case spelling winning over the others
    (an empty lower-case one unsets it), and under CGI (``REQUEST_METHOD`` set) an
    upper-case ``HTTP_PROXY`` ignored (a client's ``Proxy:`` header, CVE-2016-1000110).
    Keys: ``http``, ``https``, ``all``, ``no``, ... (a test pins it to the stdlib's)."""
    proxies: dict[str, str] = {}
    for name, value in env.items():
        low = name.lower()
        if value and low[-6:] == "_proxy":
            proxies[low[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name[-6:] == "_proxy":
            low = name.lower()
            if value:
                proxies[low[:-6]] = value
            else:
                proxies.pop(low[:-6], None)
    return proxies


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy URL ``url`` goes through, or None (direct): ``https`` for an https
    origin, ``http`` for an http one, else ``all``; none when ``no`` (NO_PROXY) matches
    the origin's host or host:port (``urllib.request.proxy_bypass_environment``: a comma
    list of names or domain suffixes, leading dots ignored, ``*`` for every host; an IP
    address matches only as written, no CIDR ranges). 127.0.0.1 and localhost are not
    special: they go direct only when NO_PROXY names them, as with curl."""
    parts = urlsplit(url)
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    # Here, not at the top: urllib.request costs ~10 ms to import, and only for a proxy.
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed

    if proxy_bypass_environment(parts.netloc.rpartition("@")[2], proxies):
        return None
    return chosen
