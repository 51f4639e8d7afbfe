"""Per-browser-session state: the API key (entered once in the sidebar) and the API client."""

from __future__ import annotations

import streamlit as st

from dashboard.client import ApiClient, ApiError, default_api_url

_KEY = "api_key"  # survives page switches: app.py renders the sidebar on every page


def _remember_key() -> None:
    st.session_state[_KEY] = st.session_state.get("api_key_input", "").strip()
    st.session_state.pop("_client", None)
    st.session_state.pop("_key_check", None)


def sidebar() -> None:
    """API URL, key input and a connection check, in the sidebar of every page."""
    if "api_key_input" not in st.session_state:
        st.session_state["api_key_input"] = st.session_state.get(_KEY, "")
    with st.sidebar:
        st.text_input("API key", type="password", key="api_key_input", on_change=_remember_key,
                      help="Sent as `Authorization: Bearer …`; kept for this browser session only.")
        c = client()
        if c is None:
            st.caption(f"API: `{api_url()}` — enter your key to start.")
            return
        if not st.session_state.get(_KEY):
            st.caption(f"API: `{api_url()}` · auth is off (local service): no key needed.")
            return
        ok, message = _check(c)
        (st.success if ok else st.error)(message, icon=":material/check_circle:" if ok else ":material/error:")
        st.caption(f"API: `{api_url()}`")


def api_url() -> str:
    return st.session_state.get("api_url") or default_api_url()


def _auth_off() -> bool:
    """Whether the API answers without a key (``geokd up`` runs with auth off), probed once."""
    if "_auth_off" not in st.session_state:
        probe = ApiClient(api_url(), None, timeout=3.0)
        try:
            probe.list_jobs(limit=1)
            st.session_state["_auth_off"] = True
        except ApiError as exc:
            if exc.status_code == 0:
                return False  # API down: ask again on the next run rather than remember a guess
            st.session_state["_auth_off"] = False
        finally:
            probe.close()
    return st.session_state["_auth_off"]


def client() -> ApiClient | None:
    """This session's client, or None until a key has been entered (unless auth is off)."""
    key = st.session_state.get(_KEY) or None
    if not key and not _auth_off():
        return None
    cached = st.session_state.get("_client")
    if cached is None or cached[0] != (api_url(), key):
        cached = ((api_url(), key), ApiClient(api_url(), key))
        st.session_state["_client"] = cached
    return cached[1]


def require_client() -> ApiClient:
    """The client, or an explanation and a stop of this page's script."""
    c = client()
    if c is None:
        st.info("Enter your API key in the sidebar to use the dashboard.", icon=":material/key:")
        st.stop()
    return c


def _check(c: ApiClient) -> tuple[bool, str]:
    """Whether the key works, checked once per key (not on every rerun)."""
    cached = st.session_state.get("_key_check")
    if cached is None:
        try:
            c.list_jobs(limit=1)
            cached = (True, "Connected")
        except ApiError as exc:
            cached = (False, "Key rejected" if exc.status_code in (401, 403) else str(exc))
        st.session_state["_key_check"] = cached
    return cached


def show_api_error(exc: ApiError) -> None:
    """One consistent way to show a failed call."""
    if exc.status_code in (401, 403):
        st.error("The API rejected the key. Check it in the sidebar.", icon=":material/key_off:")
    elif exc.status_code == 0:
        st.error(str(exc.detail), icon=":material/cloud_off:")
    else:
        st.error(f"API error {exc}", icon=":material/error:")
