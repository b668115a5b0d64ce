"""Next-token prediction: p(next token | previous tokens) over the full vocabulary, step-through and streaming."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st
import torch

from components.charts import probability_bars, token_label
from components.compute import distribution_for_ids
from components.model import load_model, require_lm, selected_key
from components.nav import ensure_frame
from components.next_token_views import cached_probe, chain_probs, encode_prompt, entropy_steps_figure, md_escape
from components.ui import (
    clean_text,
    csv_download,
    empty_text_notice,
    esc,
    fast_generation_toggle,
    prompt_input,
    show_chart,
)
from engine import sampling
from engine.lm import MAX_INPUT_TOKENS, MAX_NEW_TOKENS
from engine.predict import rank_of

STATE = "nt_state"  # {"prompt": str, "steps": [dict], "draws": int}
DIST = "_nt_dist"  # (context ids, probs [V], entropy) of the distribution on screen, for the step callbacks
GEN = "_nt_gen"  # the last streamed continuation
PICK = "nt_pick"
MAX_STEPS = 64


def _state() -> dict:
    return st.session_state.setdefault(STATE, {"prompt": None, "steps": [], "draws": 0})


def _append(token_id: int | None, how: str) -> None:
    """Button/pill callback: append one token to the text, recording its probability, rank and the entropy."""
    state, dist = _state(), st.session_state.get(DIST)
    if dist is None:
        return
    ids, probs, entropy = dist
    if len(state["steps"]) >= MAX_STEPS:
        return
    if how == "greedy":
        token_id = int(torch.argmax(probs))
    elif how == "sampled":
        gen = torch.Generator().manual_seed(state["draws"])  # draw 0, 1, 2…: a fresh start replays the same draws
        state["draws"] += 1
        token_id = sampling.sample_token(probs, gen)
    if token_id is None:
        return
    lm = load_model(selected_key())
    state["steps"].append(
        {
            "id": int(token_id),
            "text": lm.token_text(int(token_id)),
            "how": how,
            "prob": float(probs[int(token_id)]),
            "rank": rank_of(probs, int(token_id)),
            "entropy": float(entropy),
        }
    )


def _pick() -> None:
    choice = st.session_state.get(PICK)
    st.session_state[PICK] = None
    if choice is not None:
        _append(int(choice), "picked")


def _undo() -> None:
    state = _state()
    if state["steps"]:
        state["steps"].pop()


def _reset() -> None:
    state = _state()
    state["steps"] = []
    state["draws"] = 0


def _text_html(prompt: str, added: str) -> str:
    """The prompt in plain ink and the appended tokens highlighted; everything escaped."""
    return (
        '<div style="font-family:ui-monospace,monospace;font-size:1.05rem;white-space:pre-wrap;padding:10px 12px;border-radius:8px;'
        'border:1px solid #ced4da;line-height:1.5">'
        f"{esc(prompt)}<span style=\"background:#ffe8cc;color:#1a1a1a;border-radius:4px\">{esc(added)}</span></div>"
    )


def render_probe(lm, ids: list[int], probs: torch.Tensor) -> int | None:
    """Where does a token the user types rank? Returns its first token id (to highlight it on the chart)."""
    raw = st.text_input(
        "Where does this text rank as the next token?",
        value=" Lyon",
        key="nt_probe",
        bind="query-params",
        max_chars=200,
        help="Leading spaces matter: ' Lyon' (with a space) and 'Lyon' are different tokens.",
    )
    text, _notes = clean_text(raw, limit=200)
    if not text:
        st.caption("Type a word above (start it with a space if it follows a space) to see its rank.")
        return None
    found = cached_probe(ids, text)
    if found is None:
        st.caption("That text has no tokens.")
        return None
    first = md_escape(token_label(found.pieces[0]))
    summary = (
        f"{first} is rank **{found.first_rank:,}** of {lm.vocab_size:,}, with probability **{found.first_prob:.2%}**"
        if found.first_prob >= 1e-4
        else f"{first} is rank **{found.first_rank:,}** of {lm.vocab_size:,}, with probability **{found.first_prob:.2e}**"
    )
    if found.single_token:
        st.markdown(f"{summary} (token id {found.token_ids[0]}).")
        return found.token_ids[0]
    pieces = " + ".join(md_escape(token_label(p)) for p in found.pieces[:12])
    st.markdown(
        f"{md_escape(token_label(text))} is **{len(found.token_ids)} tokens** ({pieces}): the model has to write it one token at "
        f"a time. The first piece, {summary}."
    )
    if len(found.token_ids) <= 12 and len(ids) + len(found.token_ids) <= MAX_INPUT_TOKENS:
        parts = chain_probs(ids, found.token_ids)
        total = 1.0
        for p in parts:
            total *= p
        factors = " × ".join(f"{p:.3g}" for p in parts)
        st.caption(
            f"Chain rule: p({md_escape(token_label(text))} | text) = {factors} = {total:.3g}: each factor is one more "
            "next-token prediction, with the pieces before it already written."
        )
    return found.token_ids[0]


def render_steps(lm, prompt: str, state: dict, view, at_cap: bool) -> None:
    """Buttons to append a token, the history table and its chart."""
    st.subheader("Step through generation")
    st.markdown(
        "Generation is the same classifier applied again and again: choose a token, append it, predict again. "
        "Press **Top token** to append the most likely token (greedy decoding), **Sample one** to draw a "
        "token at random in proportion to its probability, or **click any candidate**."
    )
    cands = {c.token_id: c for c in view.candidates}
    c1, c2, c3, c4 = st.columns(4)
    c1.button("Top token", on_click=_append, args=(None, "greedy"), icon=":material/trending_flat:",
              disabled=at_cap, width="stretch", key="nt_greedy", help="Append the most likely token (greedy).")
    c2.button("Sample one", on_click=_append, args=(None, "sampled"), icon=":material/casino:",
              disabled=at_cap, width="stretch", key="nt_sample",
              help="Draw a token at random from the model's distribution (temperature 1). Reset replays the same draws.")
    c3.button("Undo", on_click=_undo, icon=":material/undo:", disabled=not state["steps"], width="stretch",
              key="nt_undo")
    c4.button("Reset", on_click=_reset, icon=":material/restart_alt:", disabled=not state["steps"], width="stretch",
              key="nt_reset")
    st.pills(
        "Or click a candidate to append it",
        options=list(cands),
        format_func=lambda i: f"{md_escape(token_label(cands[i].text))} {cands[i].prob:.1%}",
        key=PICK,
        on_change=_pick,
        disabled=at_cap,
    )
    if at_cap:
        st.caption(f"This page stops at {MAX_STEPS} steps. Undo or reset to keep going.")
    steps = state["steps"]
    if not steps:
        st.caption("No tokens appended yet. Each step you take is recorded in a table here.")
        return
    if any(lm.is_special(s["id"]) for s in steps):
        st.caption(
            ":material/info: A special token such as `<|im_end|>` was appended: in a chat it ends the model's reply."
        )
    df = pd.DataFrame(
        {
            "step": range(1, len(steps) + 1),
            "token": [token_label(s["text"]) for s in steps],
            "token id": [s["id"] for s in steps],
            "chosen by": [s["how"] for s in steps],
            "probability": [s["prob"] for s in steps],
            "rank": [s["rank"] for s in steps],
            "entropy (bits)": [s["entropy"] for s in steps],
        }
    )
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "probability": st.column_config.NumberColumn(format="%.4f"),
            "entropy (bits)": st.column_config.NumberColumn(format="%.2f"),
        },
        key="nt_history",
    )
    csv_download(df, "next_token_steps.csv", key="nt_history_csv")
    if len(steps) >= 2:
        show_chart(entropy_steps_figure(df["step"], df["entropy (bits)"], df["probability"]), key="nt_entropy")
        st.caption(
            "Entropy is how unsure the model was before each step (0 bits = certain; log₂ 49,152 ≈ 15.6 bits = "
            "no idea at all). Low-probability picks usually come from sampling or clicking."
        )


def render_stream(lm, ids: list[int], prompt_so_far: str) -> None:
    """A longer continuation, streamed token by token with a live tokens-per-second figure."""
    st.subheader("Generate a longer continuation")
    st.markdown(
        "The same loop, run by the computer: predict, pick, append, repeat. With temperature 0 it always takes the "
        "top token; above 0 it samples (seed 0, so the same settings give the same text)."
    )
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="center")
    n_new = c1.slider("New tokens", 10, MAX_NEW_TOKENS, 60, step=10, key="nt_len", bind="query-params")
    temp = c2.slider("Temperature", 0.0, 1.5, 0.0, step=0.1, key="nt_temp", bind="query-params",
                     help="0 = greedy. See the Temperature & sampling page.")
    with c3:
        fast = fast_generation_toggle("nt_fast")
    clicked = st.button("Generate", icon=":material/play_arrow:", type="primary", key="nt_generate")
    request = (tuple(ids), int(n_new), float(temp), bool(fast))
    out_box = st.empty()
    rate_box = st.empty()
    if clicked:
        text, tokens, elapsed = "", 0, 0.0
        start = time.perf_counter()
        for step in lm.generate_stream(ids, n_new, temperature=temp, seed=0, fast=fast):
            text += step.text
            tokens += 1
            elapsed = time.perf_counter() - start
            out_box.html(_text_html(prompt_so_far, text))
            rate_box.caption(f":material/speed: {tokens} tokens in {elapsed:.1f} s: **{tokens / elapsed:.1f} tokens/s**")
        st.session_state[GEN] = {"request": request, "text": text, "tokens": tokens, "seconds": elapsed}
    saved = st.session_state.get(GEN)
    if saved and saved["request"] == request:
        out_box.html(_text_html(prompt_so_far, saved["text"]))
        rate = saved["tokens"] / saved["seconds"] if saved["seconds"] > 0 else 0.0
        ended = " It stopped at the end-of-reply token." if saved["tokens"] < n_new else ""
        how = ("4-bit weights, bfloat16 arithmetic: close to the exact model, not equal" if fast
               else "exact float32 model")
        rate_box.caption(
            f":material/speed: {saved['tokens']} tokens in {saved['seconds']:.1f} s: **{rate:.1f} tokens/s** on this "
            f"CPU ({how}; one forward pass per token, reusing the cached keys and values of earlier tokens).{ended}"
        )
    elif not clicked:
        rate_box.caption("Press **Generate** to watch the text appear token by token.")


ensure_frame()  # a deep link on a fresh server runs this file alone: rerun it inside the frame
st.title("Next-token prediction")
lm = require_lm()
st.markdown(
    "The post says an LLM's core training task is *just next-word prediction*. Precisely: **given the tokens so far, "
    "give a probability to every token that could come next.** For an ML practitioner that is plain "
    f"**classification**: the input is the text so far, the classes are the **{lm.vocab_size:,} tokens** of the "
    "vocabulary, and the output is one softmax over all of them. Generating text is that classifier applied again "
    "and again, each time with its own choice appended."
)
with st.expander("Why this is a model of p(x), the probability of text itself", icon=":material/functions:"):
    st.markdown(
        "Generative AI models **p(x)**, the probability of the data, rather than **p(y | x)** as in supervised "
        "learning. The chain rule of probability splits the probability of a whole text into next-token predictions:"
    )
    st.latex(r"p(x_1, \dots, x_n) = \prod_{t=1}^{n} p(x_t \mid x_1, \dots, x_{t-1})")
    st.markdown(
        "So a model of **p(next token | previous tokens)** is a model of p(x): the special case the post names. "
        "The rank box below shows the chain rule at work on words that take several tokens."
    )

text = prompt_input("Prompt", help="This prompt travels with you to the other pages.")
state = _state()
if state["prompt"] != text:  # a new prompt starts a new walk
    state.update(prompt=text, steps=[], draws=0)

if not text.strip():
    empty_text_notice()
else:
    try:
        prompt_ids = encode_prompt(lm, text)
        ids = prompt_ids + [s["id"] for s in state["steps"]]
        dist = distribution_for_ids(ids)  # cached per (model, ids): 30 students on one example cost one pass
    except ValueError as err:
        st.warning(str(err), icon=":material/warning:")
    else:
        view_probs, entropy = dist.probs, dist.entropy_bits  # [V], the full distribution (shared: read only)
        st.session_state[DIST] = (tuple(ids), view_probs, entropy)
        added = lm.decode([s["id"] for s in state["steps"]])

        st.markdown("**The text so far** (appended tokens highlighted):")
        st.html(_text_html(text, added))
        k = st.slider("How many candidates to show (top-k)", 3, 40, 10, key="nt_k", bind="query-params")
        view = dist.view(lm, k)
        left, right = st.columns([3, 2])
        with right:
            highlight_id = render_probe(lm, ids, view_probs)
            best = view.candidates[0]
            m1, m2 = st.columns(2)
            m1.metric("Top token", token_label(best.text), f"{best.prob:.1%}", delta_color="off",
                      delta_arrow="off")
            m2.metric("Entropy", f"{entropy:.2f} bits", f"≈ {dist.effective_choices:,.1f} choices",
                      delta_color="off", delta_arrow="off", help="2^entropy: as unsure as a fair pick among this many tokens.")
        with left:
            fig = probability_bars(
                [c.text for c in view.candidates],
                [c.prob for c in view.candidates],
                view.other_mass,
                highlight=[c.token_id == highlight_id for c in view.candidates],
                title=f"p(next token | text so far): top {k} of {lm.vocab_size:,}",
            )
            show_chart(fig, key="nt_bars")
        st.caption(
            f"Computed over all {lm.vocab_size:,} tokens, then the top {k} are drawn. The grey bar is the other "
            f"{lm.vocab_size - k:,} tokens together ({view.other_mass:.1%}). The highlighted bar is the token you "
            "asked about, when it is in the top list."
        )
        render_steps(lm, text, state, view, at_cap=len(state["steps"]) >= MAX_STEPS)
        render_stream(lm, ids, text + added)
