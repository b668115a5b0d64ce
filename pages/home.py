"""Home: what the app teaches, the map of the field, and a first live prediction from the real model."""

import streamlit as st

from components import caches
from components.display import cached_chart, empty_text_notice, illustration_note, show_error
from components.figures.bars import probability_bars
from components.figures.maps import hierarchy_figure
from components.frame import PAGES, available_pages, ensure_frame
from components.inputs import prompt_input
from components.model import finish_first_look, first_look_or_lm, is_first_look
from engine.lm import InputError

ensure_frame()
st.title("LLM Explainer")
st.markdown(
    "How do large language models and generative AI work? Each page takes one idea from the post "
    "*Introduction to LLM and Gen AI* and pairs it with live widgets driven by a **real language model running on "
    "this computer**: no cloud, no canned numbers. Everything you see below a prompt box was just computed."
)

# While a warm start still imports transformers, the first look (the same weights, read without it) predicts.
lm = first_look_or_lm()

st.subheader("Try it: what comes next?")
st.markdown(
    "An LLM's core training task is **next-token prediction**: given the text so far, give a probability to every "
    f"token in its vocabulary (this model knows {lm.vocab_size:,}). Edit the prompt and watch the probabilities change."
)
text = prompt_input("Prompt", help="This prompt travels with you to the other pages.")
if not text.strip():
    empty_text_notice()
else:
    try:
        dist = caches.text_distribution(lm.key, text, first_look=is_first_look(lm))
    except InputError as err:
        show_error(err)
    else:
        view = dist.view(lm, 10)
        cached_chart(  # built once per (model, prompt) for every visitor
            ("home_teaser", lm.key, text, is_first_look(lm)),
            lambda: probability_bars([c.text for c in view.candidates], [c.prob for c in view.candidates],
                                     view.other_mass),
            key="home_teaser",
        )
        best = view.candidates[0]
        st.caption(
            f"Most likely next token: '{best.text}' at {best.prob:.1%}. The grey bar is the probability of the other "
            f"{lm.vocab_size - len(view.candidates):,} tokens together."
        )

st.subheader("Where LLMs sit: the map of the field")
st.markdown(
    "**Every LLM is generative AI, but not every generative AI model is an LLM.** Click a box to zoom in; hover for "
    "the post's definition and examples."
)
cached_chart(("home_map",), hierarchy_figure, key="home_map")  # the same map for everyone
illustration_note("A map of the field from the post: reference text, not model output.")

st.subheader("The guided path")
st.markdown("The pages follow the post's order. Use the sidebar, or **Next** at the bottom of every page.")
present = {p.stem for p in available_pages()}
for number, page in enumerate((p for p in PAGES if p.stem in present and p.stem != "home"), start=1):
    st.page_link(f"pages/{page.stem}.py", label=f"{number}. {page.title}: {page.blurb}", icon=page.icon)

finish_first_look(lm)  # with a first look: the model's progress, then this page again with the model
