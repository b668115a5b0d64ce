"""The frame around every page: the page registry and navigation, the frame guard, presentation mode, the share
link, notices about a shared link's parameters, and the prompt carried from page to page.

URL paths equal the file names (``pages/next_token.py`` is served at ``/next_token``): with a ``pages/`` folder next
to an entry that calls ``st.navigation``, Streamlit 1.67 shows a "Page not found" modal on the first deep link after
a server start whenever the two differ.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

# --- the page registry and navigation ---
ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "pages"


@dataclass(frozen=True)
class PageDef:
    """One page of the app.

    Attributes:
        stem: File name in ``pages/`` without ``.py``; also the URL path.
        title: Human label in the navigation.
        icon: A ``:material/…:`` icon.
        section: Navigation section heading.
        blurb: One line for the home page's table of contents.
    """

    stem: str
    title: str
    icon: str
    section: str
    blurb: str

    @property
    def path(self) -> Path:
        return PAGES_DIR / f"{self.stem}.py"


PAGES: tuple[PageDef, ...] = (
    PageDef("home", "Home", ":material/home:", "Start", "What this app teaches and a first live prediction."),
    PageDef("ml_to_llm", "From ML to LLMs", ":material/school:", "Start",
            "Regression, classification, p(y|x) and p(x): what you already know, on the real model."),
    PageDef("next_token", "Next-token prediction", ":material/arrow_forward:", "How an LLM works",
            "The one task an LLM is trained on, step by step."),
    PageDef("attention", "Attention & Transformers", ":material/hub:", "How an LLM works",
            "Self-attention in the real model, head by head, and the logit lens."),
    PageDef("encoders", "Encoders, decoders, encoder-decoders", ":material/swap_horiz:", "How an LLM works",
            "GPT, BERT and T5 wiring live: a real encoder, sentence search, and an encoder-decoder trained here."),
    PageDef("pretraining", "Pretraining", ":material/menu_book:", "Training",
            "The next-token loss on any text, and one gradient step."),
    PageDef("fine_tuning", "Fine-tuning", ":material/tune:", "Training",
            "Fine-tune the real model on your own dataset, live on this CPU; instruction tuning."),
    PageDef("rlhf", "RLHF & preferences", ":material/thumbs_up_down:", "Training",
            "Rank answers, train a reward model on the votes, and preference-tune the live model (DPO)."),
    PageDef("using_llms", "Using an LLM: APIs & serving", ":material/api:", "Using an LLM",
            "Your chat turn as an API request and response, and what the server does inside."),
    PageDef("tokenization", "Tokenization", ":material/token:", "Key concepts",
            "How text becomes the pieces the model reads."),
    PageDef("embeddings", "Embeddings", ":material/scatter_plot:", "Key concepts",
            "Tokens as vectors: similarity, neighbours, and meaning in context."),
    PageDef("context_window", "Context window", ":material/width:", "Key concepts",
            "How much the model can see at once, and what it forgets."),
    PageDef("temperature", "Temperature & sampling", ":material/thermostat:", "Key concepts",
            "How randomness is controlled: temperature, top-k, top-p."),
    PageDef("prompts", "Prompts & chat", ":material/chat:", "Key concepts",
            "Chat templates, zero-shot vs few-shot, and a small chat."),
    PageDef("evaluation", "Evaluation", ":material/analytics:", "Evaluation & the big picture",
            "Perplexity and BLEU, and what they miss."),
    PageDef("summarization", "Summarization", ":material/summarize:", "Evaluation & the big picture",
            "The model summarizes your text; ROUGE against your reference and a lead-sentences baseline."),
    PageDef("diffusion", "Diffusion models", ":material/blur_on:", "Evaluation & the big picture",
            "Generative AI beyond text: a diffusion model draws digits on this CPU, noise to image."),
    PageDef("genai_landscape", "The generative-AI map", ":material/account_tree:", "Evaluation & the big picture",
            "AI ⊃ ML ⊃ DL ⊃ GenAI ⊃ LLM, the modalities, and a quiz."),
)


@functools.cache
def _existing_pages() -> tuple[PageDef, ...]:
    return tuple(p for p in PAGES if p.path.is_file())


def available_pages() -> list[PageDef]:
    """Registered pages whose file exists (every page exists on main; tests check it).

    Checked once per process: the frame asks on every rerun of every session.
    """
    return list(_existing_pages())


#: One ``st.Page`` per page for the whole process (stem → page): building one resolves and checks its file and its
#: icon; every run of every session then takes a shallow copy (the copy carries that run's "may run" flag).
_nav_pages: dict[str, st.Page] = {}


def _nav_page(page: PageDef) -> st.Page:
    built = _nav_pages.get(page.stem)
    if built is None:
        built = _nav_pages[page.stem] = st.Page(
            str(page.path),
            title=page.title,
            icon=page.icon,
            url_path=page.stem,
            default=page.stem == "home",
        )
    return copy.copy(built)


def build_navigation() -> tuple[dict[str, list], dict[str, object]]:
    """``st.Page`` objects grouped by section, and a stem → page map for links."""
    sections: dict[str, list] = {}
    by_stem: dict[str, object] = {}
    for page in available_pages():
        sp = _nav_page(page)
        sections.setdefault(page.section, []).append(sp)
        by_stem[page.stem] = sp
    return sections, by_stem


def neighbours(stem: str) -> tuple[PageDef | None, PageDef | None]:
    """Previous and next page on the guided path (the post's order)."""
    pages = available_pages()
    stems = [p.stem for p in pages]
    if stem not in stems:
        return None, None
    i = stems.index(stem)
    return (pages[i - 1] if i > 0 else None), (pages[i + 1] if i + 1 < len(pages) else None)


def guided_path_footer(stem: str, by_stem: dict[str, object]) -> None:
    """Previous / next controls at the bottom of a page, so a teacher can walk a class through in order."""
    prev_page, next_page = neighbours(stem)
    pages = available_pages()
    position = [p.stem for p in pages].index(stem) + 1 if stem in by_stem else 0
    st.divider()
    left, middle, right = st.columns([2, 1, 2], vertical_alignment="center")
    if prev_page is not None:
        left.page_link(by_stem[prev_page.stem], label=f"Previous: {prev_page.title}", icon=":material/arrow_back:")
    if position:
        middle.caption(f"Step {position} of {len(pages)}")
    if next_page is not None:
        right.page_link(by_stem[next_page.stem], label=f"Next: {next_page.title}", icon=":material/arrow_forward:")


FRAME_FLAG = "_llmx_frame"


#: Session key holding the URL path of the page this run shows (set by the frame before the page runs).
CURRENT_PAGE = "_current_page"


def mark_frame_ran(url_path: str = "") -> None:
    """Called by the entry script before it runs a page (``url_path``: the page about to run)."""
    st.session_state[FRAME_FLAG] = True
    st.session_state[CURRENT_PAGE] = url_path or "home"


def ensure_frame() -> None:
    """Make sure a page runs inside the app's frame (navigation, sidebar, guided path).

    With a ``pages/`` folder next to the entry, Streamlit 1.67 runs the first session after a server start in its old
    "pages directory" mode: a deep link such as ``/tokenization`` then executes ``pages/tokenization.py`` alone,
    without ``streamlit_app.py``. Every page calls this first; in that one case it switches the old mode off (as
    ``st.navigation`` itself does) and reruns, so the entry script runs and shows the same page in its frame.
    """
    if st.session_state.get(FRAME_FLAG):
        return
    leave_pages_directory_mode()
    st.rerun()


def leave_pages_directory_mode() -> None:
    """Switch off Streamlit 1.67's old "pages directory" mode for this process, as ``st.navigation`` itself does.

    With a ``pages/`` folder next to the entry, a process's first script run runs in that mode: the sidebar lists the
    folder's files ("streamlit app", "attention", ... in lower case) until the entry reaches ``st.navigation``, and a
    deep link runs its page file alone. ``scripts/serve.py`` calls this before the server starts; ``ensure_frame``
    when a page finds itself outside the frame.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


# --- per-run CPU time (where a class's server time goes) ---
#: Environment switch: ``LLMX_PROFILE_RUNS=1`` prints one line per completed script run to the server's stderr.
PROFILE_ENV = "LLMX_PROFILE_RUNS"
#: First word of that line, e.g. ``llmx-run page=next_token frame_ms=4.1 page_ms=19.8 total_ms=23.9``.
RUN_LOG_PREFIX = "llmx-run"


class RunTimer:
    """CPU time of this script run, split into the frame and the page (``time.thread_time``: this session's script
    thread only, so other sessions and background jobs running at the same time do not count).

    It covers what the script does: widgets, figures, cached lookups and turning elements into protobuf messages. The
    websocket writes happen on the server's event loop and are not included.
    """

    def __init__(self) -> None:
        self.enabled = os.environ.get(PROFILE_ENV, "") == "1"
        self.start = time.thread_time()
        self.page_s = 0.0

    def page(self, run) -> None:
        """Run the page (``run()``), timing it separately from the frame."""
        t0 = time.thread_time()
        try:
            run()
        finally:
            self.page_s += time.thread_time() - t0

    def report(self, stem: str) -> None:
        """Print the run's figures (only with ``LLMX_PROFILE_RUNS=1``)."""
        if not self.enabled:
            return
        total = (time.thread_time() - self.start) * 1000
        page = self.page_s * 1000
        # One write per line: sessions run on their own threads, and print() writes the newline separately.
        sys.stderr.write(f"{RUN_LOG_PREFIX} page={stem} frame_ms={total - page:.1f} page_ms={page:.1f} "
                         f"total_ms={total:.1f}\n")
        sys.stderr.flush()


class _PageEnd(Exception):
    """Raised by :func:`end_page`; :func:`run_page` catches it."""


_running = threading.local()  # script runs happen on one thread each


def run_page(page) -> None:
    """Run the page the navigation chose (the entry calls this), so that :func:`end_page` can end it early."""
    _running.page = True
    try:
        page.run()
    except _PageEnd:
        pass
    finally:
        _running.page = False


def fragment(func=None, *, run_every: float | None = None):
    """``st.fragment`` whose reruns get the script runs' intra-op thread count (``engine.threads.SCRIPT_THREADS``).

    A fragment's own rerun (its button, its timer) runs only the fragment, in a new script thread, without the entry
    script that sets the count for each run. Torch then gave that thread the process default (two OpenMP threads),
    and with more OpenMP threads than cores every parallel op waits for the scheduler: a Generate fragment streamed
    at 36 tokens/s instead of 74.
    """

    def wrap(f):
        @functools.wraps(f)
        def run(*args, **kwargs):
            from engine.threads import SCRIPT_THREADS, set_thread_intra_op

            set_thread_intra_op(SCRIPT_THREADS)
            return f(*args, **kwargs)

        return st.fragment(run, run_every=run_every)

    return wrap(func) if func is not None else wrap


def end_page() -> None:
    """Stop the page here (nothing more to show for this input). Inside the frame, the guided path and the share
    link below still draw; a page running alone (see :func:`ensure_frame`) just stops."""
    if getattr(_running, "page", False):
        raise _PageEnd
    st.stop()


def page_titles() -> dict[str, str]:
    """Page stem → title, for text that names pages."""
    return {p.stem: p.title for p in PAGES}


def page_links(stems: tuple[str, ...], exclude: str | None = None) -> int:
    """A link to each of ``stems`` whose page exists (others are skipped). Returns how many links were shown."""
    present = {p.stem: p for p in available_pages()}
    shown = 0
    for stem in stems:
        page = present.get(stem)
        if page is None or stem == exclude:
            continue
        st.page_link(f"pages/{stem}.py", label=page.title, icon=page.icon)
        shown += 1
    return shown


# --- presentation mode ---
PRESENT_KEY = "present"



def presentation_mode() -> bool:
    """Whether the large-text classroom layout is on (sidebar toggle, URL ``?present=true``)."""
    return bool(st.session_state.get(PRESENT_KEY, False))



def apply_presentation_css() -> None:
    """Larger text, higher contrast and less chrome when presentation mode is on."""
    if not presentation_mode():
        return
    st.html(
        """<style>
        html { font-size: 20px; }
        [data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
        [data-testid="stMain"] [data-testid="stMarkdownContainer"] li { font-size: 1.35rem; line-height: 1.5; }
        [data-testid="stMain"] h1 { font-size: 3.2rem; }
        [data-testid="stMain"] h2 { font-size: 2.4rem; }
        [data-testid="stMain"] h3 { font-size: 1.9rem; }
        [data-testid="stMain"] [data-testid="stWidgetLabel"] p { font-size: 1.3rem; font-weight: 600; }
        [data-testid="stMain"] textarea, [data-testid="stMain"] input { font-size: 1.35rem !important; }
        [data-testid="stMain"] [data-testid="stCaptionContainer"],
        [data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.15rem; opacity: 0.95; }
        [data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 2.6rem; }
        [data-testid="stMain"] [data-testid="stDataFrame"] { font-size: 1.2rem; }
        [data-testid="stHeader"], [data-testid="stToolbar"], footer { display: none; }
        .block-container { padding-top: 1rem; max-width: 100%; }
        .llmx-chip { font-size: 1.4rem !important; }
        </style>"""
    )



# --- the share link ---
def current_view_url() -> str:
    """The URL of this page with every bound widget's value, so the link reopens exactly this view."""
    base = st.context.url or ""
    params = {k: v for k, v in st.query_params.to_dict().items() if v not in ("", None)}
    return base + ("?" + urlencode(params) if params else "")


def share_link_box() -> None:
    """A sidebar box with the link to this exact view and a copy button (the code block's copy icon)."""
    with st.sidebar.popover("Share this view", icon=":material/link:", width="stretch"):
        st.caption("This link reopens the page with the same prompt and settings. Use the copy icon.")
        st.code(current_view_url(), language=None, wrap_lines=True)



# --- a shared link's parameters ---
_LINK_PARAMS = "_llmx_link_params"



def _non_finite_number(value: str) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False



def forget_link_value(key: str) -> None:
    """Stop Streamlit from seeding widget ``key`` from the link the session was opened with (this run on)."""
    try:  # the seeding copy is internal to Streamlit 1.67: if its shape changes, only this workaround is lost
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        get_script_run_ctx().session_state._state.query_params._initial_query_params.pop(key, None)
    except Exception:  # noqa: BLE001
        pass


def _drop_link_param(key: str) -> None:
    """Forget one parameter of the link, both in the URL and in the values widgets are seeded from."""
    del st.query_params[key]
    forget_link_value(key)


def remember_link_params() -> None:
    """Before the page runs: remember the query parameters a session arrived with (its shared link).

    Values that parse as non-finite numbers (``inf``, ``1e999``, ``nan``) are removed first: Streamlit 1.67's bound
    integer inputs crash on them (OverflowError) instead of ignoring them like other invalid values.
    """
    if _LINK_PARAMS not in st.session_state:
        st.session_state[_LINK_PARAMS] = st.query_params.to_dict()
        for key, value in st.session_state[_LINK_PARAMS].items():
            if _non_finite_number(value):
                _drop_link_param(key)



def notice_rejected_link_params() -> None:
    """After the page ran: widgets drop URL values they cannot use (wrong type, out of range, unknown option).

    Say so once, briefly, so a teacher whose link was mangled knows the page fell back to its defaults.
    """
    arrived = st.session_state.get(_LINK_PARAMS)
    if not arrived:
        return
    st.session_state[_LINK_PARAMS] = {}
    now = st.query_params.to_dict()
    # A value a widget accepted stays in the URL unchanged; one it rejected or corrected is gone or different.
    rejected = sorted(k for k, v in arrived.items() if now.get(k) != v)
    if rejected:
        names = ", ".join(k[:30] for k in rejected[:5])
        st.toast(
            f"Some settings in the link could not be used, so the page shows its defaults for them: {names}.",
            icon=":material/link_off:",
        )



# --- the prompt carried from page to page ---
#: URL parameter and widget key of the prompt every page shares.
PROMPT_KEY = "prompt"
DEFAULT_PROMPT = "The capital of France is"


def _carry(key: str) -> str:
    return f"_carry_{key}"


def seed_text_box(key: str, default: str) -> None:
    """Before a text box bound to ``key`` is drawn: give it the value the session last had in it.

    The widget's default stays constant so the URL only carries edited values. A bound widget that mounts on a new
    page with no URL parameter would fall back to that default, so the session's last value is restored first: that
    is how one prompt travels from page to page (a value in this page's own link still wins when the widget mounts).
    """
    where = f"_carry_page_{key}"
    here = st.session_state.get(CURRENT_PAGE)
    # Only a session that carries a value seeds the box. A new session (first visit, or a browser that reconnected
    # to a restarted or another replica) leaves it to the widget: its link or the browser's own copy of the value.
    if _carry(key) in st.session_state and (key not in st.session_state or st.session_state.get(where) != here):
        st.session_state[key] = st.session_state[_carry(key)]
    st.session_state[where] = here


def keep_in_link(key: str, value: str, default: str) -> None:
    """After a URL-bound text box was drawn: make sure the link carries its value, so a reload keeps it.

    Streamlit 1.67 writes a bound widget's value into the URL when the learner edits it, but not when the value was
    restored from the session on a newly opened page (the carried prompt); it refuses ``st.query_params[key] = …``
    for a bound key. Its own correction path (the one it uses for clamped values) writes the URL instead.
    """
    if value == default or st.query_params.get(key) == value:
        return
    try:  # internal to Streamlit 1.67, like forget_link_value: if its shape changes, only this workaround is lost
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        get_script_run_ctx().session_state._state.query_params.set_corrected_value(key, value, "string_value")
    except Exception:  # noqa: BLE001
        pass


def carry_text(key: str, value: str) -> None:
    """After a text box bound to ``key`` was drawn: remember its value for the next page."""
    st.session_state[_carry(key)] = value


def pending_shared_prompt() -> str:
    """The shared prompt as the box will show it, read before the box is drawn (session, then link, then carry)."""
    if PROMPT_KEY in st.session_state:
        return str(st.session_state[PROMPT_KEY])
    url = st.query_params.get(PROMPT_KEY)
    if url is not None:
        return str(url)
    return str(st.session_state.get(_carry(PROMPT_KEY), DEFAULT_PROMPT))


def set_shared_prompt(text: str) -> None:
    """Put ``text`` into the shared prompt from a widget callback (an example, a box switch): every page reads it.

    When the page then draws a different kind of box for the prompt (one line ↔ several), Streamlit would fill the
    new box from the link the page was opened with, i.e. the previous text; the link's value is dropped for this run
    so the new box shows ``text`` (the URL is updated from it right after).
    """
    st.session_state[PROMPT_KEY] = text
    carry_text(PROMPT_KEY, text)
    forget_link_value(PROMPT_KEY)
