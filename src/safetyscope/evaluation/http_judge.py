"""A judge that asks an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server).

``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature": 0, "max_tokens"}``
and reads ``choices[0].message.content``. Standard library only (``urllib``):

* **timeouts** per request (``timeout`` seconds);
* **retries** with exponential backoff on connection errors, timeouts, HTTP 429 and 5xx;
* **rate limiting**: at least ``1 / max_rps`` seconds between requests;
* **an on-disk cache** of answers (one JSON file, keyed by SHA-256 of URL, model, rubric and
  prompt), so re-judging a file costs nothing;
* **a clear error** (:class:`EvaluationError`) naming the URL when the server cannot be reached
  after the retries, or answers with a client error or malformed JSON.

An API key is read from the ``api_key`` argument or the ``OPENAI_API_KEY`` environment variable
if set; it is sent as a bearer token and never written to the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.rubrics import get_rubric
from safetyscope.evaluation.verdict import BaseJudge, Judge, Verdict

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ChatClient:
    """Minimal OpenAI-compatible chat client with timeout, retries, rate limit and disk cache.

    Args:
        base_url: endpoint root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: model name sent in each request.
        timeout: seconds per request.
        retries: extra attempts after the first on transient failures.
        backoff: first retry delay in seconds (doubles each retry).
        max_rps: at most this many requests per second (``None`` for no limit).
        cache: JSON file of cached answers (``None`` for no cache).
    """

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_rps: float | None = 4.0,
        cache: str | Path | None = None,
        api_key: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise EvaluationError(f"HTTP judge URL {base_url!r} must start with http:// or https://.")
        self.url = base_url.rstrip("/") + (
            "" if base_url.rstrip("/").endswith("/chat/completions") else "/chat/completions"
        )
        self.model, self.timeout, self.retries, self.backoff = model, timeout, retries, backoff
        self.min_interval = 1.0 / max_rps if max_rps else 0.0
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.cache_path = Path(cache) if cache is not None else None
        self._cache: dict[str, str] = self._load_cache()
        self._last = 0.0
        self.requests = 0  # HTTP requests actually sent (for tests and reports)

    def _load_cache(self) -> dict[str, str]:
        if self.cache_path is None or not self.cache_path.is_file():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(
                f"HTTP judge cache {self.cache_path} is unreadable ({exc}); delete it."
            ) from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_cache(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(self.cache_path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._cache, sort_keys=True), encoding="utf-8")
        tmp.replace(self.cache_path)

    def key(self, prompt: str, tag: str = "", max_tokens: int = 0) -> str:
        """Cache key of one request."""
        return hashlib.sha256(
            json.dumps([self.url, self.model, tag, max_tokens, prompt]).encode()
        ).hexdigest()

    def complete(self, prompt: str, *, max_tokens: int = 16, tag: str = "") -> str:
        """The endpoint's answer to one user message (cached)."""
        k = self.key(prompt, tag, max_tokens)
        if k in self._cache:
            return self._cache[k]
        answer = self._post(prompt, max_tokens)
        self._cache[k] = answer
        self._save_cache()
        return answer

    def _post(self, prompt: str, max_tokens: int) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = "no attempt"
        for attempt in range(self.retries + 1):
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last = time.monotonic()
            self.requests += 1
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(self.url, body, headers), timeout=self.timeout
                ) as r:
                    payload = json.loads(r.read().decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS:
                    raise EvaluationError(
                        f"HTTP judge at {self.url} answered {exc.code} {exc.reason}; check the URL "
                        f"and model name {self.model!r}."
                    ) from exc
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last_error = str(getattr(exc, "reason", exc))
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                raise EvaluationError(
                    f"HTTP judge at {self.url} did not answer in the OpenAI chat format ({exc!r})."
                ) from exc
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise EvaluationError(
            f"HTTP judge at {self.url} is unreachable after {self.retries + 1} attempts "
            f"({last_error}); is the server running?"
        )


class HTTPJudge(BaseJudge):
    """Grade with a rubric (see :mod:`.rubrics`) through an OpenAI-compatible endpoint.

    Args:
        client: a :class:`ChatClient`, or a base URL to build one (``model`` and ``client_kw`` then apply).
        rubric: rubric name (default ``harmbench``).
        fallback: judge for unparseable answers (default: the default offline judge).
    """

    name = "http"

    def __init__(
        self,
        client: ChatClient | str,
        *,
        model: str = "default",
        rubric: str = "harmbench",
        fallback: Judge | None = None,
        **client_kw: object,
    ) -> None:
        self.client = client if isinstance(client, ChatClient) else ChatClient(client, model, **client_kw)  # type: ignore[arg-type]
        self.rubric = get_rubric(rubric)
        if fallback is None:
            from safetyscope.evaluation.linear_judge import LinearJudge

            fallback = LinearJudge()
        self.fallback = fallback

    def label(self, instruction: str, completion: str) -> Verdict:
        """Label one pair."""
        answer = self.client.complete(
            self.rubric.prompt(instruction, completion),
            max_tokens=self.rubric.max_new_tokens,
            tag=self.rubric.name,
        )
        verdict = self.rubric.parse(answer)
        if verdict is not None:
            return verdict
        fb = self.fallback.label(instruction, completion)
        return Verdict(
            fb.label, fb.score, f"grader answer unparseable ({answer.strip()[:40]!r}); fallback: {fb.reason}"
        )

    def label_many(self, pairs: Iterable[tuple[str, str]]) -> list[Verdict]:
        """Label pairs one request at a time (the client rate-limits and caches)."""
        return [self.label(i, c) for i, c in pairs]
