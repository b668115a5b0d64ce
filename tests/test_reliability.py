"""Reliability: every page survives bad input and hostile links (AppTest, real model).

The input matrix puts each hostile text into each page's main text box through the URL (as a shared link would);
the link fuzz puts wrong-typed, huge and hostile values into every URL-bound widget a page has.
"""

from __future__ import annotations

import pytest

from components.frame import available_pages
from tests.conftest import app_page, assert_no_exception

#: Each page's main text input (its URL key).
MAIN_TEXT_KEY = {
    "home": "prompt",
    "ml_to_llm": "prompt",
    "next_token": "prompt",
    "attention": "prompt",
    "pretraining": "pt_text",
    "fine_tuning": "ft_text",
    "tokenization": "prompt",
    "embeddings": "emb_words",
    "context_window": "cw_text",
    "temperature": "prompt",
    "prompts": "pr_user",
    "evaluation": "ev_a",
    "genai_landscape": "land_level",
    "diffusion": "diff_points",
    "encoders": "enc_text",
    "using_llms": "api_user",
    "summarization": "sm_text",
    "rlhf": "rl_prompt",
}

#: Further text boxes that get the same hostile text in the same link (the embeddings page also reads the shared prompt).
MORE_TEXT_KEYS = {"embeddings": ("prompt", "emb_sents", "emb_squery"),
                  "encoders": ("enc_tok", "enc_sents", "enc_query", "enc_hub_gen", "enc_hub_mask", "enc_hub_t2t"),
                  "using_llms": ("api_system",)}

BAD_TEXTS = {
    "empty": "",
    "whitespace": " \t\n  ",
    "huge": "All work and no play makes Jack a dull boy. " * 2300,  # ~100,000 characters
    "past_context_window": "token " * 9000,  # more tokens than the 8,192-token window
    "scripts": "مرحبا بالعالم 你好世界 😀👩‍👩‍👧 עברית",
    "control": "zero\u200bwidth\u202eRTL\x00NUL\x07bell\x1b[31m",
    "html": '</script><script>alert(1)</script><img src=x onerror=alert(2)> {{7*7}} ${x}',
}


def test_every_page_is_covered():
    assert set(MAIN_TEXT_KEY) == {p.stem for p in available_pages()}


@pytest.mark.parametrize("kind", list(BAD_TEXTS))
@pytest.mark.parametrize("stem", list(MAIN_TEXT_KEY))
def test_bad_input_matrix(stem, kind):
    keys = (MAIN_TEXT_KEY[stem], *MORE_TEXT_KEYS.get(stem, ()))
    at = app_page(stem, query={key: BAD_TEXTS[kind] for key in keys})
    assert_no_exception(at)
    assert not at.main.error or all("No language model" not in e.value for e in at.main.error)
    # the page still renders: either to its end (the guided-path footer) or up to a clear message about the input
    assert at.title
    ran_to_end = any("Step " in c.value for c in at.caption)
    said_why = len(at.info) + len(at.warning) + len(at.main.error) > 0
    assert ran_to_end or said_why


HOSTILE_VALUES = ["NaN", "inf", "-1e309", "99999999999999999999", "../../etc/passwd", "<script>alert(1)</script>",
                  "True", "", "%00", "[]"]


@pytest.mark.parametrize("stem", [p.stem for p in available_pages()])
def test_link_fuzz(stem):
    """Every widget key on the page gets every hostile value: nothing crashes and no path or model is accepted."""
    first = app_page(stem)
    keys = sorted({w.key for kind in ("slider", "select_slider", "selectbox", "radio", "toggle", "number_input",
                                      "text_input", "text_area", "checkbox", "segmented_control", "multiselect")
                   for w in first.get(kind) if getattr(w, "key", None) and not str(w.key).startswith("$$")})
    assert keys, "the page has no keyed widgets to fuzz"
    for value in HOSTILE_VALUES[:: 2 if len(keys) > 12 else 1]:
        at = app_page(stem, query={**{k: value for k in keys}, "model": "/etc/passwd"})
        assert_no_exception(at)
        assert at.selectbox(key="model").value == "SmolLM2-135M-Instruct"
