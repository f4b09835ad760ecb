"""A provider's API keys: weighted choice, per-key model allow-lists, cool-down, pinning.

Keys are indexed 0..n-1 in config order; the transport keeps its per-key headers and
request heads in the same order. The common case (one key, no allow-list, nothing
cooling) costs one length check.

Cool-down: a key the upstream refused (401/403), rate-limited (429) or that failed
``COOLDOWN_AFTER_FAILURES`` times in a row (5xx, network) is skipped for a while. When
every key allowed for a model is cooling, the one whose cool-down ends first is used
rather than refusing service: the upstream may have recovered, and the client gets the
upstream's own answer either way.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Sequence

from gateway.config import KeyConfig
from gateway.errors import Failure

# Consecutive failures (5xx, network) before a key cools down: one failure is noise.
COOLDOWN_AFTER_FAILURES = 3


class KeyRing:
    __slots__ = (
        "_cool_until",
        "_cum",
        "_failures",
        "_models",
        "cooldown_s",
        "last_failure",
        "last_failure_status",
        "last_success",
        "names",
    )

    def __init__(self, keys: Sequence[KeyConfig], *, cooldown_s: float) -> None:
        self.names = [k.name for k in keys] or ["default"]
        self._cum = list(itertools.accumulate(k.weight for k in keys)) or [1.0]
        # None: the key serves every model.
        self._models: list[frozenset[str] | None] = [frozenset(k.models) if k.models else None for k in keys] or [None]
        n = len(self.names)
        self._cool_until = [0.0] * n
        self._failures = [0] * n
        self.cooldown_s = cooldown_s
        # For /health?providers=1: wall-clock times of the last answer and the last failure
        # (0: none since start-up or the last config reload), the failure's HTTP status
        # (None: a network failure or timeout).
        self.last_success = 0.0
        self.last_failure = 0.0
        self.last_failure_status: int | None = None

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None

    def choose(self, model: str, *, exclude: frozenset[int] | set[int] = frozenset()) -> int | None:
        """A key for ``model``, weighted, skipping ``exclude`` and cooling keys; None when
        no key not excluded serves the model."""
        if len(self._cum) == 1 and not exclude:
            m = self._models[0]
            return 0 if m is None or model in m else None
        now = time.monotonic()
        candidates = [i for i, m in enumerate(self._models) if i not in exclude and (m is None or model in m)]
        if not candidates:
            return None
        warm = [i for i in candidates if self._cool_until[i] <= now]
        if not warm:
            return min(candidates, key=self._cool_until.__getitem__)
        if len(warm) == len(self._cum):
            cum = self._cum  # every key: cumulative weights and a bisect
            return bisect.bisect(cum, random.random() * cum[-1])
        weights = [self._cum[i] - (self._cum[i - 1] if i else 0.0) for i in warm]
        return random.choices(warm, weights=weights)[0]

    def cooling(self) -> list[float]:
        """Seconds until each key's cool-down ends (0: usable now), in key order."""
        now = time.monotonic()
        return [max(0.0, until - now) for until in self._cool_until]

    def succeeded(self, i: int) -> None:
        self.last_success = time.time()
        if self._failures[i]:
            self._failures[i] = 0

    def failed(self, i: int, failure: Failure, *, status: int | None) -> None:
        """Key ``i`` failed as ``failure`` says (``gateway.errors.classify``): cooled for its
        ``cooldown_s`` now, or a strike (``COOLDOWN_AFTER_FAILURES`` in a row cool it for
        ``cooldown_s``). ``status``: the upstream's HTTP status, None for a network
        failure or timeout (kept for /health)."""
        now = time.monotonic()
        self.last_failure, self.last_failure_status = time.time(), status
        if failure.cooldown_s is not None:
            self._cool_until[i] = now + failure.cooldown_s
        elif failure.strike:
            self._failures[i] += 1
            if self._failures[i] >= COOLDOWN_AFTER_FAILURES:
                self._failures[i] = 0
                self._cool_until[i] = now + self.cooldown_s
