"""The page registry: one ordered list, in the post's order, that builds the navigation and the guided path.

URL paths equal the file names (``pages/next_token.py`` is served at ``/next_token``): with a ``pages/`` folder next
to an entry that calls ``st.navigation``, Streamlit 1.67 shows a "Page not found" modal on the first deep link after
a server start whenever the two differ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

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
    PageDef("pretraining", "Pretraining", ":material/menu_book:", "Training",
            "The next-token loss on any text, and one gradient step."),
    PageDef("fine_tuning", "Fine-tuning & RLHF", ":material/tune:", "Training",
            "Teach the model a fact live on this CPU; instruction tuning and preferences."),
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


def build_navigation() -> tuple[dict[str, list], dict[str, object]]:
    """``st.Page`` objects grouped by section, and a stem → page map for links."""
    sections: dict[str, list] = {}
    by_stem: dict[str, object] = {}
    for page in available_pages():
        sp = st.Page(
            str(page.path),
            title=page.title,
            icon=page.icon,
            url_path=page.stem,
            default=page.stem == "home",
        )
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
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()
