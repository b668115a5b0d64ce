"""The shared model for the UI: one cached instance per allow-listed key, the sidebar card, and the guard pages call.

Pages call :func:`require_lm` and get a ready :class:`engine.lm.LanguageModel`; if none can be loaded the page shows
one clear message (why, and how to fix it) and stops, with no traceback.
"""

from __future__ import annotations

import gc

import streamlit as st

from engine.lm import LanguageModel
from engine.loader import ModelLoadError, load_pretrained, resolve_source
from engine.registry import ALLOWED_MODELS, DEFAULT_KEY, choose_key

MODEL_KEY = "model"


@st.cache_resource(show_spinner=False, max_entries=2)
def load_model(key: str, _progress=None) -> LanguageModel:
    """Load one allow-listed model once per process and share it with every session.

    Args:
        key: A key from :data:`engine.registry.ALLOWED_MODELS` (anything else falls back to the default).
        _progress: Optional ``(fraction, message)`` callback; excluded from the cache key.

    Returns:
        The shared, read-only language model.
    """
    return load_pretrained(key, progress=_progress)


def selected_key() -> str:
    """The session's model key, always a member of the allow-list."""
    return choose_key(st.session_state.get(MODEL_KEY))


#: Keys whose model this process has loaded: later reruns skip the source lookup (file-system checks) entirely.
_LOADED: set[str] = set()


def _load_with_progress(key: str) -> LanguageModel:
    if key in _LOADED:
        return load_model(key)
    lm = _load_with_first_progress(key)
    _LOADED.add(key)
    # Everything alive now (torch, transformers, plotly, the model's modules) lives as long as the server: move it
    # out of the garbage collector's generations so later full collections do not walk it again (they run while
    # holding the GIL, which every session shares).
    gc.freeze()
    return lm


def _load_with_first_progress(key: str) -> LanguageModel:
    _spec, source = resolve_source(key)
    if source.kind == "cache":
        return load_model(key)
    # First start (GGUF conversion) or a hub download: show progress while it happens.
    label = "Converting the embedded model (first start only)…" if source.kind == "gguf" else "Loading the model…"
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0)

        def report(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        lm = load_model(key, _progress=report)
        status.update(label="Model ready", state="complete", expanded=False)
    return lm


def get_lm() -> LanguageModel | None:
    """The session's model, or ``None`` with the reason stored in session state."""
    key = selected_key()
    try:
        lm = _load_with_progress(key)
    except ModelLoadError as err:
        st.session_state["_model_error"] = err
        return None
    except Exception as err:  # noqa: BLE001 - never show a traceback for a failed load
        st.session_state["_model_error"] = ModelLoadError(f"Unexpected error while loading: {err}", "Restart the app.")
        return None
    st.session_state.pop("_model_error", None)
    return lm


def require_lm() -> LanguageModel:
    """Return the model or show one clear error and stop the page."""
    lm = get_lm()
    if lm is None:
        err = st.session_state.get("_model_error")
        st.error(
            f"**No language model could be loaded.** {getattr(err, 'reason', err)}\n\n**How to fix it:** "
            f"{getattr(err, 'fix', 'Restart the app.')}",
            icon=":material/error:",
        )
        if selected_key() != DEFAULT_KEY:
            st.info("You can pick the default embedded model in the sidebar.", icon=":material/info:")
        st.stop()
    return lm


def sidebar_model_card() -> None:
    """Model chooser (allow-list only, shareable in the URL) and the loaded model's facts."""
    with st.sidebar:
        labels = [spec.label for spec in ALLOWED_MODELS.values()]
        st.selectbox(
            "Model",
            options=labels,
            key=MODEL_KEY,
            index=labels.index(ALLOWED_MODELS[choose_key(None)].label),
            bind="query-params",
            help="Only models on a fixed allow-list can be chosen. The default runs offline from the embedded file; "
            "the others are downloaded from the Hugging Face hub when the server has network access.",
        )
        lm = get_lm()
        with st.expander("Model card", expanded=False, icon=":material/memory:"):
            if lm is None:
                err = st.session_state.get("_model_error")
                st.error(f"Not loaded: {getattr(err, 'reason', err)}")
                return
            info = lm.info
            st.markdown(
                "\n".join(
                    [
                        f"**{info.name}** ({info.architecture}, {info.license})",
                        f"- Parameters: {info.parameters:,}",
                        f"- Layers: {info.layers}",
                        f"- Attention heads: {info.heads} query, {info.kv_heads} key/value",
                        f"- Hidden size: {info.hidden_size} (head size {info.head_dim})",
                        f"- Vocabulary: {info.vocab_size:,} tokens",
                        f"- Context window: {info.context_length:,} tokens",
                        f"- Weights: {info.dtype} on CPU",
                        f"- Source: {info.source}",
                        f"- Loaded in {info.load_seconds:.1f} s",
                    ]
                )
            )
        st.caption(f":material/check_circle: {lm.info.name} ready")
