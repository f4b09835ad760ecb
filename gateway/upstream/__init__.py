"""Below the relay: how the gateway reaches upstreams. Its own HTTP/1.1 pool and the
aiohttp session (``pool``, ``origin``, ``poolreply``, ``client``), forward proxies (``proxy``),
which upstream headers are relayed (``relayed``), one provider's transport
(``http``) and the in-process mock (``mock``). Nothing here imports the relay or
routing."""
