"""LLM Explainer: the entry point and shared frame (navigation, page config, sidebar, guided path)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# components.frame imports only Streamlit and the standard library: the rest comes after st.navigation (see there).
from components.frame import (
    PRESENT_KEY,
    RunTimer,
    apply_presentation_css,
    build_navigation,
    guided_path_footer,
    mark_frame_ran,
    notice_rejected_link_params,
    remember_link_params,
    run_page,
    share_link_box,
)

timer = RunTimer()  # CPU per run, frame and page apart: printed with LLMX_PROFILE_RUNS=1 (scripts/bench.py reads it)

# A presentation link opens with the sidebar folded away: less chrome on a projector.
_presenting = st.session_state.get(PRESENT_KEY, str(st.query_params.get(PRESENT_KEY, "")).lower() == "true")
st.set_page_config(
    page_title="LLM Explainer",
    page_icon=str(Path(__file__).parent / "static" / "favicon.png"),
    layout="wide",
    initial_sidebar_state="collapsed" if _presenting else "auto",
)

remember_link_params()
sections, by_stem = build_navigation()
page = st.navigation(sections, position="sidebar")

# The rest imports torch and the engine: seconds in a new process. Only now, so that a first visitor's sidebar shows
# the app's navigation at once. Until a process's first run reaches st.navigation, Streamlit shows its automatic
# list of the pages/ folder ("streamlit app", "attention", ...) instead.
from components.challenges import challenge_box  # noqa: E402
from components.model import sidebar_model_card  # noqa: E402
from engine.memory import tune_malloc  # noqa: E402
from engine.threads import SCRIPT_THREADS, set_thread_intra_op  # noqa: E402

set_thread_intra_op(SCRIPT_THREADS)  # one intra-op thread per script run: see engine.threads.SCRIPT_THREADS
tune_malloc()  # once per process: glibc heaps shared by the script threads (engine/memory.py)

with st.sidebar:
    st.toggle(
        "Presentation mode",
        key=PRESENT_KEY,
        bind="query-params",
        help="Large text and charts for projecting in a classroom. Shareable: adds ?present=true to the link.",
    )
apply_presentation_css()
sidebar_model_card()

mark_frame_ran(page.url_path)
timer.page(lambda: run_page(page))
challenge_box(page.url_path or "home")  # the page's "Try it" tasks, checked on its inputs
guided_path_footer(page.url_path or "home", by_stem)
share_link_box()
notice_rejected_link_params()
timer.report(page.url_path or "home")
