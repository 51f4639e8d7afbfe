"""HTTP client of the geokd REST API (``/api/v1``, docs/DESIGN.md) used by the dashboard.

No streamlit here: pages build one ``ApiClient`` per browser session and call it. Errors come back
as ``ApiError`` carrying the HTTP status and the API's ``detail`` so pages can show them.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

API_PREFIX = "/api/v1"


class ApiError(Exception):
    """A non-2xx answer (or no answer) from the API."""

    def __init__(self, status_code: int, detail: Any, url: str = "") -> None:
        self.status_code = status_code
        self.detail = detail
        self.url = url
        super().__init__(f"{status_code}: {detail_text(detail)}")


def detail_text(detail: Any) -> str:
    """A one-line human reading of an API ``detail`` (string, or FastAPI's list of loc/msg)."""
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return str(detail)


def default_api_url() -> str:
    """``GEOKD_API_URL`` or the local default of ``geokd_core.settings``."""
    from geokd_core.settings import Settings

    return os.environ.get("GEOKD_API_URL") or Settings().api_url


class ApiClient:
    """Thin typed wrapper over the REST routes; one instance per browser session.

    Args:
        base_url: server root (``http://host:port``), with or without the ``/api/v1`` prefix.
        api_key: sent as ``Authorization: Bearer``.
        timeout: seconds per request.
        transport: optional httpx transport (tests may pass one; the dashboard never does).
    """

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        root = base_url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        self.root = root
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=root + API_PREFIX, headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    # ---- plumbing -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"API unreachable at {self.root} ({exc.__class__.__name__}: {exc})") from exc
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiError(r.status_code, detail, str(r.request.url))
        return r

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    @staticmethod
    def _params(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None and v != ""}

    # ---- health -------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """True when ``/healthz`` answers 2xx."""
        try:
            self._request("GET", "/healthz")
        except ApiError:
            return False
        return True

    # ---- jobs ---------------------------------------------------------------------------------
    def list_jobs(self, status: str | None = None, owner: str | None = None, name: str | None = None,
                  limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """``{"items": [JobPublic], "total": N}``."""
        return self._json("GET", "/jobs", params=self._params(status=status, owner=owner, name=name,
                                                              limit=limit, offset=offset))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Create a job; the same ``idempotency_key`` returns the same job (safe double clicks)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/jobs", json=spec, headers=headers)

    def validate(self, spec: dict[str, Any], preflight: bool = False) -> list[dict[str, Any]]:
        """Problems with ``spec`` as ``[{"loc": [...], "msg": ...}]``; empty when it is valid."""
        try:
            body = self._json("POST", "/jobs/validate", json=spec,
                              params={"preflight": str(preflight).lower()})
        except ApiError as exc:
            if exc.status_code == 422 and isinstance(exc.detail, list):
                return [d if isinstance(d, dict) else {"loc": [], "msg": str(d)} for d in exc.detail]
            raise
        return list(body.get("problems") or [])

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    def retry(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/retry")

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    # ---- job data -----------------------------------------------------------------------------
    def metrics(self, job_id: str, since: int | None = None, series: list[str] | None = None
                ) -> dict[str, Any]:
        """Series with steps > ``since`` (exclusive): ``{"series": {...}, "last_step": N}``."""
        params = self._params(since=since, series=",".join(series) if series else None)
        return self._json("GET", f"/jobs/{job_id}/metrics", params=params)

    def gram(self, job_id: str, layer: str | None = None, step: int | None = None) -> dict[str, Any] | None:
        """A Gram snapshot (latest step when ``step`` is None); None when the job has none yet."""
        try:
            return self._json("GET", f"/jobs/{job_id}/gram", params=self._params(layer=layer, step=step))
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise

    def layer_similarity(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._json("GET", f"/jobs/{job_id}/layer-similarity")
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise

    def evals(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/jobs/{job_id}/evals").get("items") or [])

    def logs(self, job_id: str, tail: int = 200) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/jobs/{job_id}/logs", params={"tail": tail}).get("lines") or [])

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/jobs/{job_id}/artifacts").get("items") or [])

    def download_artifact(self, job_id: str, name: str) -> bytes:
        return self._request("GET", f"/jobs/{job_id}/artifacts/{name}", timeout=120.0).content
