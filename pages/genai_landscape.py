"""The generative-AI map: AI ⊃ ML ⊃ DL ⊃ GenAI ⊃ LLM, the modality table, what runs live here, and a self-check quiz."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import caches
from components.challenges import QUIZ_PREFIX
from components.display import csv_download, illustration_note, show_chart, show_error
from components.figures.bars import probability_bars
from components.figures.maps import VIEWS, map_figure, modality_figure, modality_table, status_text
from components.frame import ensure_frame, page_links, page_titles
from components.model import require_lm
from components.state import clear_choices
from engine.landscape import (
    HIERARCHY,
    MODALITIES,
    QUIZ,
    SIMPLIFICATION,
    TRANSFORMER_FAMILIES,
    analogy_rows,
    ancestors,
    children,
    level,
    post_models_note,
)
from engine.lm import InputError
from engine.registry import ALLOWED_HUB_MODELS, hub_models_enabled

ensure_frame()
st.title("The generative-AI map")
st.markdown(
    "Where do LLMs sit? Each ring of the field sits inside a bigger one: **AI ⊃ machine learning ⊃ deep learning ⊃ "
    "generative AI ⊃ LLMs**. So **every LLM is generative AI, but not every generative AI model is an LLM**: some "
    "generate images, audio, video or 3D."
)
lm = require_lm()

# ------------------------------------------------------------------------------------------------ the hierarchy
st.header("The map of the field")
keys = [lv.key for lv in HIERARCHY]
c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
view = c1.radio("Draw it as", VIEWS, horizontal=True, key="land_view", bind="query-params")
chosen = c2.selectbox("Explore a level", keys, index=keys.index("llm"), format_func=lambda k: level(k).name,
                      key="land_level", bind="query-params")
map_col, info_col = st.columns([3, 2], gap="large")
with map_col:
    show_chart(map_figure(view, chosen, page_titles()), key="land_map")
    st.caption(
        ":green-background[Green]: the app demonstrates it live. :gray-background[Grey]: described only. "
        "Click a box to zoom in (click the top box to zoom out); hover for the post's definition and examples."
    )
with info_col:
    lv = level(chosen)
    st.subheader(lv.name)
    st.markdown(f"{lv.definition}  \n*Examples: {lv.examples}.*")
    chain = ancestors(chosen)
    if len(chain) > 1:
        st.markdown("**Inside:** " + " ⊂ ".join(a.name for a in chain))
        st.caption(f"Everything in *{chain[0].name}* is also in *{chain[1].name}*, and so on up the chain; the "
                   "reverse is not true.")
    inner = children(chosen)
    if inner:
        st.markdown("**Contains:** " + ", ".join(c.name for c in inner))
    if lv.pages:
        st.success(status_text(lv.pages, page_titles()), icon=":material/play_circle:")
        page_links(lv.pages, exclude="genai_landscape")
        if "genai_landscape" in lv.pages:
            st.caption("…and the live check further down this page.")
    else:
        st.info(status_text(()) + ".", icon=":material/menu_book:")
st.info(f"**Where the post simplifies.** {SIMPLIFICATION}", icon=":material/info:")
illustration_note("The map is reference text from the post, not model output.")

# ------------------------------------------------------------------------------------------------ analogy
st.header("The post's analogy, on the map")
st.markdown(
    "The post sums the rings up in one line each. Read them from the top: each row is a ring *inside* the one above "
    "it on the map, so each adds one idea to the last: examples → neural networks → creating new data → text."
)
analogy = pd.DataFrame(analogy_rows(page_titles()))
st.dataframe(analogy, hide_index=True, width="stretch", key="land_analogy")
csv_download(analogy, "analogy.csv", key="land_analogy_csv")
st.caption("The post's analogy table in its own words; the last two columns come from the map above (where each ring "
           "sits) and from this app's page registry (where it runs live). "
           "“Using deep learning to create new data” is the simplification noted above.")

# ------------------------------------------------------------------------------------------------ modalities
st.header("Generative AI is bigger than text")
st.markdown(
    "Generative models **learn the patterns in data and generate new data that looks like it**. Mathematically they "
    "model **p(x)**, the probability of the data itself, instead of p(y | x) like a classifier. Each kind of data has "
    "its own model families:"
)
show = st.segmented_control("Show", ["All", "Live here", "Described only"], default="All", key="land_show",
                            bind="query-params")
mod_chart, mod_table = st.columns([2, 3], gap="large")
with mod_chart:
    show_chart(modality_figure(page_titles()), key="land_modalities")
    st.caption("Inner ring: what is generated. Outer ring: the model families. Hover for how each one generates; "
               "click a domain to zoom in.")
with mod_table:
    df = modality_table(show or "All")
    st.table(df.set_index("Domain"))
    csv_download(df, "generative_ai_modalities.csv", key="land_csv")
illustration_note("The modality table is reference text from the post (families and how they work), not model output.")

# ------------------------------------------------------------------------------------------------ live vs described
st.header("What this app shows live, and what it only describes")
live = [m for m in MODALITIES if m.live_here]
described = [m for m in MODALITIES if not m.live_here]
llm_live = [m for m in live if "LLM" in m.family]
kinds = [w if w[0].isdigit() else w.lower() for w in (m.domain.split(" ")[0] for m in described)]  # audio, …, 3D
st.markdown(
    f"The **LLM branch** runs live in this app: {lm.info.name}, a {lm.info.parameters / 1e6:.0f}M-parameter "
    f"Transformer, running on this computer. It generates **{' and '.join(m.domain.lower() for m in llm_live)}**. "
    + "".join(f"**{m.domain}** run live too: a small diffusion model, trained on this CPU, draws 8×8 digits. "
              for m in live if m not in llm_live)
    + f"**{', '.join(m.domain for m in described)}** generation are described on this page only: no "
    + (", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)) + " model runs here."
)
st.subheader("The LLM branch, checked live")
st.markdown("The same next-token classifier handles prose and code. Here is what the model predicts next for each:")
EXAMPLES = (("Text", "The capital of France is"), ("Code", "def add(a, b):\n    return"))
live_cols = st.columns(len(EXAMPLES), gap="large")
for col, (domain, example) in zip(live_cols, EXAMPLES):
    with col:
        st.markdown(f"**{domain}**")
        st.code(example, language="python" if domain == "Code" else None)
        try:
            top = caches.text_distribution(lm.key, example).view(lm, 5)
        except InputError as err:
            show_error(err)
            continue
        show_chart(
            probability_bars([c.text for c in top.candidates], [c.prob for c in top.candidates], top.other_mass),
            key=f"land_live_{domain.lower()}",
            height=260,
        )
st.markdown("**Where each live part is demonstrated:**")
link_cols = st.columns(2)
with link_cols[0]:
    for m in live:
        st.markdown(f"*{m.domain}*")
        if not page_links(m.pages, exclude="genai_landscape"):
            st.caption("Shown on this page.")
with link_cols[1]:
    st.markdown("*The ideas underneath (ML, deep learning)*")
    shown = page_links(tuple(dict.fromkeys(s for k in ("ml", "dl") for s in level(k).pages)))
    if not shown:
        st.caption("Those pages are not available in this build.")

# ------------------------------------------------------------------------------------------------ families
st.header("Inside the LLM branch: three Transformer families")
st.markdown(
    "The post names GPT-2, BERT and T5: the same attention wired three ways. Each family runs live in this app as a "
    "small model of its kind (the *live here* column names it). "
    + post_models_note(hub_models_enabled(), {k: spec.label for k, spec in ALLOWED_HUB_MODELS.items()})
)
st.dataframe(
    [{"family": f.name, "in the post": f.examples, "good at": f.good_at,
      "live here": f.live_model.format(model=lm.info.name),
      "pages": ", ".join(page_titles().get(p, p) for p in f.pages)} for f in TRANSFORMER_FAMILIES],
    hide_index=True, key="land_families",
)
page_links(("encoders",))

# ------------------------------------------------------------------------------------------------ quiz
st.header("Check yourself")
st.markdown("Pick an answer: you get feedback at once.")


vocab = f"{lm.vocab_size:,}"
correct = answered = 0
for number, q in enumerate(QUIZ, start=1):
    options = [o.format(vocab=vocab) for o in q.options]
    choice = st.radio(f"**{number}. {q.text.format(vocab=vocab)}**", options, index=None, key=QUIZ_PREFIX + q.key)
    verdict = None if choice is None else choice == options[q.answer]
    if verdict is None:
        continue
    answered += 1
    if verdict:
        correct += 1
        st.success(f"**Right.** {q.why}", icon=":material/check_circle:")
    else:
        st.error(f"**Not quite.** The answer is: *{options[q.answer]}*. {q.why}", icon=":material/cancel:")
score_col, reset_col = st.columns([3, 1], vertical_alignment="center")
if answered:
    score_col.metric("Score", f"{correct} / {answered}", help=f"{len(QUIZ) - answered} question(s) left.")
    if answered == len(QUIZ) and correct == len(QUIZ):
        score_col.markdown("All correct: you have the map.")
else:
    score_col.caption(f"{len(QUIZ)} questions. Your answers stay in this browser tab only.")
reset_col.button("Start again", on_click=clear_choices, args=(tuple(QUIZ_PREFIX + q.key for q in QUIZ),), icon=":material/restart_alt:", disabled=not answered,
                 key="land_quiz_reset")
