"""Next-token prediction: p(next token | previous tokens) over the full vocabulary, step-through and streaming."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from components import caches
from components import state as walk_state
from components.display import cached_chart, csv_download, empty_text_notice, show_chart, show_error, stream_text
from components.figures.bars import probability_bars
from components.figures.html import continued_text_html
from components.figures.lines import entropy_steps_figure
from components.frame import end_page, ensure_frame, fragment
from components.inputs import cleaned, fast_generation_toggle, prompt_input
from components.model import require_lm
from engine.lm import MAX_INPUT_TOKENS, MAX_NEW_TOKENS, InputError, check_length
from engine.text import md_escape, token_label

GEN = "_nt_gen"  # the last streamed continuation

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
state = walk_state.walk(text)
if not text.strip():
    empty_text_notice()
    end_page()
try:
    steps = state["steps"]
    ids = tuple(check_length(caches.prompt_ids(lm.key, text) + tuple(s.token_id for s in steps)))
    dist = caches.next_distribution(lm.key, ids)  # cached per (model, ids): 30 students on one example cost one pass
except InputError as err:
    show_error(err)
    end_page()
walk_state.show_walk_distribution(lm.key, ids, dist.probs, dist.entropy_bits)
added = lm.decode([s.token_id for s in steps])

# ------------------------------------------------------------------------------------------------ the distribution
st.markdown("**The text so far** (appended tokens highlighted):")
st.html(continued_text_html(text, added))
k = st.slider("How many candidates to show (top-k)", 3, 40, 10, key="nt_k", bind="query-params")
view = dist.view(lm, k)
left, right = st.columns([3, 2])
with right:
    probe_text = cleaned(st.text_input(
        "Where does this text rank as the next token?",
        value=" Lyon",
        key="nt_probe",
        bind="query-params",
        max_chars=200,
        help="Leading spaces matter: ' Lyon' (with a space) and 'Lyon' are different tokens.",
    ), limit=200, quiet=True)
    found = caches.rank_probe(lm.key, ids, probe_text) if probe_text else None
    if not probe_text:
        st.caption("Type a word above (start it with a space if it follows a space) to see its rank.")
    elif found is None:
        st.caption("That text has no tokens.")
    else:
        first = md_escape(token_label(found.pieces[0]))
        p_text = f"{found.first_prob:.2%}" if found.first_prob >= 1e-4 else f"{found.first_prob:.2e}"
        summary = f"{first} is rank **{found.first_rank:,}** of {lm.vocab_size:,}, with probability **{p_text}**"
        if found.single_token:
            st.markdown(f"{summary} (token id {found.token_ids[0]}).")
        else:
            pieces = " + ".join(md_escape(token_label(p)) for p in found.pieces[:12])
            st.markdown(
                f"{md_escape(token_label(probe_text))} is **{len(found.token_ids)} tokens** ({pieces}): the model has "
                f"to write it one token at a time. The first piece, {summary}."
            )
            if len(found.token_ids) <= 12 and len(ids) + len(found.token_ids) <= MAX_INPUT_TOKENS:
                parts = caches.chain_probs(lm.key, ids, tuple(found.token_ids))
                st.caption(
                    f"Chain rule: p({md_escape(token_label(probe_text))} | text) = "
                    f"{' × '.join(f'{p:.3g}' for p in parts)} = {math.prod(parts):.3g}: each factor is one more "
                    "next-token prediction, with the pieces before it already written."
                )
    highlight_id = found.token_ids[0] if found is not None else None
    best = view.candidates[0]
    m1, m2 = st.columns(2)
    m1.metric("Top token", token_label(best.text), f"{best.prob:.1%}", delta_color="off", delta_arrow="off")
    m2.metric("Entropy", f"{dist.entropy_bits:.2f} bits", f"≈ {dist.effective_choices:,.1f} choices",
              delta_color="off", delta_arrow="off", help="2^entropy: as unsure as a fair pick among this many tokens.")
with left:
    cached_chart(("nt_bars", lm.key, tuple(ids), k, highlight_id), lambda: probability_bars(  # shared by every visitor
        [c.text for c in view.candidates],
        [c.prob for c in view.candidates],
        view.other_mass,
        highlight=[c.token_id == highlight_id for c in view.candidates],
        title=f"p(next token | text so far): top {k} of {lm.vocab_size:,}",
    ), key="nt_bars")
st.caption(
    f"Computed over all {lm.vocab_size:,} tokens, then the top {k} are drawn. The grey bar is the other "
    f"{lm.vocab_size - k:,} tokens together ({view.other_mass:.1%}). The highlighted bar is the token you "
    "asked about, when it is in the top list."
)

# ------------------------------------------------------------------------------------------------ step through
st.subheader("Step through generation")
st.markdown(
    "Generation is the same classifier applied again and again: choose a token, append it, predict again. "
    "Press **Top token** to append the most likely token (greedy decoding), **Sample one** to draw a "
    "token at random in proportion to its probability, or **click any candidate**."
)
at_cap = len(steps) >= walk_state.MAX_STEPS
cands = {c.token_id: c for c in view.candidates}
c1, c2, c3, c4 = st.columns(4)
c1.button("Top token", on_click=walk_state.append_step, args=(None, "greedy"), icon=":material/trending_flat:",
          disabled=at_cap, width="stretch", key="nt_greedy", help="Append the most likely token (greedy).")
c2.button("Sample one", on_click=walk_state.append_step, args=(None, "sampled"), icon=":material/casino:",
          disabled=at_cap, width="stretch", key="nt_sample",
          help="Draw a token at random from the model's distribution (temperature 1). Reset replays the same draws.")
c3.button("Undo", on_click=walk_state.undo_step, icon=":material/undo:", disabled=not steps, width="stretch",
          key="nt_undo")
c4.button("Reset", on_click=walk_state.reset_walk, icon=":material/restart_alt:", disabled=not steps,
          width="stretch", key="nt_reset")
st.pills(
    "Or click a candidate to append it",
    options=list(cands),
    format_func=lambda i: f"{md_escape(token_label(cands[i].text))} {cands[i].prob:.1%}",
    key=walk_state.WALK_PICK,
    on_change=walk_state.pick_step,
    disabled=at_cap,
)
if at_cap:
    st.caption(f"This page stops at {walk_state.MAX_STEPS} steps. Undo or reset to keep going.")
if not steps:
    st.caption("No tokens appended yet. Each step you take is recorded in a table here.")
else:
    if any(lm.is_special(s.token_id) for s in steps):
        st.caption(
            ":material/info: A special token such as `<|im_end|>` was appended: in a chat it ends the model's reply."
        )
    df = pd.DataFrame(
        {
            "step": range(1, len(steps) + 1),
            "token": [token_label(s.text) for s in steps],
            "token id": [s.token_id for s in steps],
            "chosen by": [s.how for s in steps],
            "probability": [s.prob for s in steps],
            "rank": [s.rank for s in steps],
            "entropy (bits)": [s.entropy for s in steps],
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

# ------------------------------------------------------------------------------------------------ streaming
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


@fragment
def generate_section(lm, prompt: str, ids: tuple[int, ...], n_new: int, temp: float, fast: bool) -> None:
    """Generate, as a fragment: the press reruns only this section, so the page above is neither run nor redrawn
    while the text streams (the first token comes sooner, and the browser only draws the text). The settings stay
    outside it: a change reruns the page, so the sidebar's share link carries them."""
    clicked = st.button("Generate", icon=":material/play_arrow:", type="primary", key="nt_generate")
    request = (ids, int(n_new), float(temp), bool(fast))
    out_box, rate_box = st.empty(), st.empty()
    if clicked:  # streamed live, so not cached: the page shows the text as it arrives, redrawn a few times a second
        def draw(t) -> None:
            out_box.html(continued_text_html(prompt, t.text))
            rate_box.caption(f":material/speed: {t.tokens} tokens in {t.seconds:.1f} s: **{t.tokens_per_s:.1f} tokens/s**")

        # The first pick comes from the distribution already on the page (cached): on screen before any pass runs
        first = caches.logits(lm.key, ids)
        tally = stream_text(lm.generate_stream(ids, n_new, temperature=temp, seed=0, fast=fast, first_logits=first), draw)
        st.session_state[GEN] = {"request": request, "text": tally.text, "tokens": tally.tokens, "seconds": tally.seconds,
                                 "first_token_s": tally.first_token_s, "tokens_per_s": tally.tokens_per_s,
                                 "fast": tally.fast}
    saved = st.session_state.get(GEN)
    if saved and saved["request"] == request:
        out_box.html(continued_text_html(prompt, saved["text"]))
        ended = " It stopped at the end-of-reply token." if saved["tokens"] < n_new else ""
        how = ("4-bit weights, bfloat16 arithmetic: close to the float32 path, not equal" if saved["fast"]
               else "float32 arithmetic on the 4-bit weights unpacked to float32")
        if fast and not saved["fast"]:
            how += "; the 4-bit copy was still being prepared, so this run used float32"
        rate_box.caption(
            f":material/speed: {saved['tokens']} tokens in {saved['seconds']:.1f} s: **{saved['tokens_per_s']:.1f} "
            f"tokens/s** on this CPU, first token after {(saved['first_token_s'] or 0) * 1000:.0f} ms ({how}; one forward pass "
            f"per token, reusing the cached keys and values of earlier tokens).{ended}"
        )
    elif not clicked:
        rate_box.caption("Press **Generate** to watch the text appear token by token.")


generate_section(lm, text + added, ids, int(n_new), float(temp), bool(fast))
