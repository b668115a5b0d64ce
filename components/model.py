"""The shared model for the UI: one load per allow-listed key for the whole process, the sidebar card, the page guard.

The load itself runs once per process in a background thread (:data:`engine.loader.LOADS`); every session that
arrives while it runs draws its own progress from the job's status, so a first start (converting the embedded GGUF)
or a hub download shows its stages to every visitor and then the page, with no restart. A failed load shows why and
how to fix it with a **Try again** button, and is not remembered: the next try, or the next visitor, loads again.
"""

from __future__ import annotations

import gc
import os

import streamlit as st

from components.display import watch_job
from components.frame import end_page
from engine.first_look import FirstLook
from engine.lm import LanguageModel
from engine.loader import LOADS, LoadJob, ModelLoadError
from engine.registry import ALLOWED_MODELS, DEFAULT_KEY, choose_key
from engine.weights import weights_lineage

MODEL_KEY = "model"
#: Session-state key: the attempt (``LoadJob.generation``) this session has already seen fail.
_SEEN_FAILURE = "_model_failed_generation"
#: How often a waiting session redraws its progress.
_POLL_S = 0.25

_frozen = False


def load_model(key: str) -> LanguageModel:
    """The shared, read-only model for an allow-listed ``key``, loading it once per process if needed.

    Cached computations call this with the key the page passed them; pages call :func:`require_lm` first, so here the
    model is normally ready and this returns at once.

    Raises:
        ModelLoadError: If the model cannot be loaded.
    """
    return LOADS.start(key).model()


def selected_key() -> str:
    """The session's model key, always a member of the allow-list."""
    return choose_key(st.session_state.get(MODEL_KEY))


def _session_job(key: str) -> LoadJob:
    """This session's view of the load: a failure this session has not seen yet is retried (a new visitor, or the
    first look after the cause was fixed elsewhere) — one it has seen waits for **Try again**."""
    job = LOADS.peek(key)
    if job is not None and job.done and job.error is not None and st.session_state.get(_SEEN_FAILURE) != job.generation:
        job = LOADS.retry(key)
    return LOADS.start(key) if job is None else job


def _ready(job: LoadJob) -> LanguageModel:
    global _frozen
    if not _frozen:
        # Everything alive now (torch, transformers, plotly, the model's modules) lives as long as the server: move it
        # out of the garbage collector's generations so later full collections do not walk it again (they run while
        # holding the GIL, which every session shares).
        gc.freeze()
        _frozen = True
    # The 4-bit decoder for free-running generation, packed in the background once per model instead
    # of on a learner's first Generate click; returns at once when it is built or being built.
    job.result.prepare_fast_decoder()
    return job.result


def _show_progress(job: LoadJob) -> None:
    """Draw the running load's stages in this session until it ends (the work itself is shared)."""
    with st.status("Preparing the language model…", expanded=True) as status:
        watch_job(job, lambda j: f"{j.message} ({j.elapsed:.0f} s)", poll_s=_POLL_S)
        st.caption(f"Took {job.elapsed:.0f} s. Every visitor shares this one load; later starts take seconds.")
        if job.error is None:
            status.update(label="Model ready", state="complete", expanded=False)
        else:
            status.update(label="The model could not be loaded", state="error", expanded=False)


#: Session state: this run's sidebar card said "The language model is loading…" (``require_lm`` then redraws).
_CARD_SAID_LOADING = "_card_said_loading"


def get_lm(show_progress: bool = False) -> LanguageModel | None:
    """The session's model, or ``None`` while it loads or after a failed load (reason in session state).

    Args:
        show_progress: Draw the load's progress here and wait for it (pages); otherwise return at once (sidebar).
    """
    key = selected_key()
    job = _session_job(key)
    if not job.done and show_progress:
        _show_progress(job)
    if not job.done:
        return None
    if job.error is not None:
        st.session_state[_SEEN_FAILURE] = job.generation
        st.session_state["_model_error"] = job.load_error
        return None
    st.session_state.pop("_model_error", None)
    return _ready(job)


def require_lm() -> LanguageModel:
    """Return the model, showing the load's progress first if it is still loading; on failure show one clear error
    with **Try again** and stop the page."""
    job = LOADS.peek(selected_key())
    # The sidebar card (drawn before the page) may have said "loading" even when the load has ended by now: a load
    # that fails at once can end between the two (CI saw it), so its own record counts too.
    was_loading = job is None or not job.done or st.session_state.get(_CARD_SAID_LOADING, False)
    lm = get_lm(show_progress=True)  # waits until the load has ended, with the model or with its failure
    if was_loading:
        # The sidebar card was drawn while loading: draw the whole frame again, now with the model or with the reason
        # it failed (not "loading" next to the error). No loop: this session has now seen this attempt end.
        st.rerun()
    if lm is not None:
        return lm
    err = st.session_state.get("_model_error") or ModelLoadError("The model is not loaded.", "Press **Try again**.")
    st.error(
        f"**No language model could be loaded.** {err.reason}\n\n**How to fix it:** {err.fix}",
        icon=":material/error:",
    )
    if st.button("Try again", key="model_retry", icon=":material/refresh:", type="primary"):
        LOADS.retry(selected_key())
        st.rerun()
    if selected_key() != DEFAULT_KEY:
        st.info("You can pick the default embedded model in the sidebar.", icon=":material/info:")
    end_page()


def first_look_or_lm() -> LanguageModel | FirstLook:
    """The model for a page's first prediction. While a warm load is still importing transformers, that is the load's
    :class:`engine.first_look.FirstLook`: the same float32 weights and tokenizer, read without the library, seconds
    earlier. Otherwise (loaded, loading from an empty cache or the hub, failed) it is :func:`require_lm`.

    A page that gets a first look predicts with it (``caches.text_distribution(..., first_look=True)``) and ends with
    :func:`finish_first_look`, which waits for the full model and draws the page again with it.
    """
    job = LOADS.peek(selected_key())  # started by the sidebar card; require_lm below retries a failed one
    if job is None or job.done:
        return require_lm()
    if job.first_look is None:  # it comes within a second or so of a warm load's start
        slot = st.empty()
        with slot.container(), st.status("Preparing the language model…", expanded=True):
            watch_job(job, lambda j: f"{j.message} ({j.elapsed:.0f} s)", poll_s=_POLL_S,
                      until=lambda j: j.first_look is not None)
        if job.first_look is not None:
            slot.empty()
    look = job.first_look
    if look is not None and not job.done:
        return look
    return require_lm()


def is_first_look(lm) -> bool:
    """Whether :func:`first_look_or_lm` gave the load's first look rather than the model."""
    return isinstance(lm, FirstLook)


def finish_first_look(lm) -> None:
    """At the end of a page that predicted with a first look: the load's progress until the model is ready, then the
    page again with the model (:func:`require_lm` redraws it). Does nothing when ``lm`` is the model."""
    if is_first_look(lm):
        require_lm()


def _original_weights_note(lm: LanguageModel) -> None:
    """How far the 4-bit weights are from the original ones: measured when the original weights are on this computer,
    otherwise why it cannot be measured here."""
    from components import caches  # caches imports this module: import on use

    if getattr(lm.source, "kind", None) not in ("cache", "gguf"):
        st.caption("These are the original weights: there is no 4-bit step to measure.")
        return
    if caches.original_weights_path(lm.key) is None:
        st.caption(
            "**Difference from the original weights: not measured here.** Measuring it needs the original weights, "
            f"which are not in this computer's Hugging Face cache, and the app never downloads at run time. Every "
            f"number on these pages is exact for the 4-bit model, close to (not equal to) the original {lm.info.name}."
        )
        return
    if st.button("Measure against the original weights", key="card_measure", icon=":material/compare_arrows:"):
        cmp = caches.original_weights_difference(lm.key)
        if cmp is not None:
            st.caption(
                f"On {len(cmp.prompts)} prompts: the most likely next token agrees on {cmp.top1_agreement:.0%}; mean "
                f"KL divergence {cmp.mean_kl:.4f} nats, mean total variation {cmp.mean_total_variation:.3f}."
            )


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
        replica = os.environ.get("LLMX_REPLICA")  # set by scripts/serve_replicas.py: which replica runs this session
        if replica:
            st.caption(f":material/dns: Served by replica **{replica}**")
        lm = get_lm()
        err = st.session_state.get("_model_error") if lm is None else None
        st.session_state[_CARD_SAID_LOADING] = lm is None and err is None
        if lm is None:
            if err is None:
                st.caption(":material/hourglass_top: The language model is loading…")
            else:
                st.caption(f":material/error: Model not loaded: {err.reason}")
            return
        with st.expander("Model card", expanded=False, icon=":material/memory:"):
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
                        f"- Source: {info.source}",
                        f"- Loaded in {info.load_seconds:.1f} s",
                        "",
                        "**Which weights these are**",
                        *(f"{n}. {line}" for n, line in enumerate(weights_lineage(
                            getattr(lm.source, "kind", None), lm.spec.hub_id, lm.spec.gguf_file,
                            lm.spec.gguf_package, info.dtype), start=1)),
                    ]
                )
            )
            _original_weights_note(lm)
        st.caption(f":material/check_circle: {lm.info.name} ready (loaded in {lm.info.load_seconds:.1f} s)")
