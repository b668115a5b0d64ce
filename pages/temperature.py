"""Temperature & sampling: re-shape one cached next-token distribution live, then sample many continuations."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import caches
from components.display import csv_download, empty_text_notice, show_chart, show_error
from components.figures.bars import cut_figure, histogram_figure
from components.figures.lines import temperature_overlay_figure
from components.frame import end_page, ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from engine.generation import MAX_SAMPLES, first_token_histogram, max_samples_for
from engine.lm import InputError
from engine.sampling import sampling_view, temperature_regime
from engine.text import token_label

BATCH = "_tmp_batch"  # the last sampled batch and the settings it was drawn with

ensure_frame()  # a deep link on a fresh server runs this file alone: rerun it inside the frame
st.title("Temperature & sampling")
lm = require_lm()
st.markdown(
    "The post says **temperature controls randomness in text generation**. Here is exactly how. The model gives one "
    "next-token distribution; temperature, top-k and top-p only **re-shape** it before a token is drawn. The "
    "distribution below is computed **once per prompt**: moving a slider re-shapes the stored scores without "
    "running the model again."
)
text = prompt_input("Prompt", help="This prompt travels with you to the other pages.")
if not text.strip():
    empty_text_notice()
    end_page()
try:
    prompt_ids = caches.prompt_ids(lm.key, text)
    logits = caches.logits(lm.key, prompt_ids)  # [V], cached per prompt across pages and sessions
except InputError as err:
    show_error(err)
    end_page()

c1, c2, c3, c4 = st.columns(4)
temperature = c1.slider(
    "Temperature T", 0.0, 3.0, 1.0, step=0.05, key="tmp_t", bind="query-params",
    help="0 = greedy (always the top token). 1 = the model's own distribution. Above 1 = flatter, more random.",
)
top_k = c2.slider(
    "Top-k (0 = off)", 0, 100, 0, key="tmp_k", bind="query-params",
    help="Keep only the k most likely tokens, then renormalise.",
)
top_p = c3.slider(
    "Top-p (1 = off)", 0.0, 1.0, 1.0, step=0.01, key="tmp_p", bind="query-params",
    help="Keep the smallest set of most likely tokens whose probabilities add up to p (the 'nucleus').",
)
shown = c4.slider("Tokens on the charts", 5, 40, 15, key="tmp_show", bind="query-params")
sv = sampling_view(logits, temperature, top_k, top_p, shown)  # re-shapes the cached logits: no model run
cut, order = sv.cut, sv.order
pieces = [lm.token_text(i) for i in order]

m = st.columns(4)
before = sv.entropy_before
m[0].metric("Entropy after temperature", f"{before:.2f} bits",
            help="How unsure the model is, in bits (log base 2). Losses on other pages are in nats (natural log): "
            "bits = nats / ln 2.")
m[1].metric("Effective choices", f"{sv.effective_before:,.1f}", f"{sv.effective_after:,.1f} after the cuts",
            delta_color="off", delta_arrow="off", help="2^entropy: as random as a fair pick among this many tokens.")
m[2].metric("Tokens that can be drawn", f"{cut.kept:,}", f"of {lm.vocab_size:,}", delta_color="off",
            delta_arrow="off")
m[3].metric("Mass cut away", f"{cut.removed_by_k + cut.removed_by_p:.1%}",
            f"top-k {cut.removed_by_k:.1%} · top-p {cut.removed_by_p:.1%}", delta_color="off", delta_arrow="off")

# ------------------------------------------------------------------------------------------------ several T
st.subheader("Several temperatures on one chart")
log_scale = st.toggle("Log scale (both charts)", key="tmp_log", bind="query-params",
                      help="Shows the small probabilities that high temperatures lift and the cuts remove.")
show_chart(temperature_overlay_figure(pieces, sv.curves, float(temperature), log_scale), key="tmp_overlay")
st.caption(
    f"The {shown} most likely next tokens for your prompt, out of {lm.vocab_size:,}. Low T piles the "
    "probability onto the top token; high T flattens the curve."
)

# ------------------------------------------------------------------------------------------------ the cuts
st.subheader("What top-k and top-p keep")
show_chart(
    cut_figure(pieces, [float(cut.scaled[i]) for i in order], [float(cut.final[i]) for i in order], sv.status,
               log_scale),
    key="tmp_cuts",
)
k_text = f"top-k = {top_k} keeps {int(cut.keep_k.sum()):,} tokens" if top_k > 0 else "top-k is off"
p_text = f"top-p = {top_p:g} keeps {cut.kept:,} of those" if top_p < 1 else "top-p is off"
st.caption(
    f"{k_text} and removes {cut.removed_by_k:.1%} of the probability; {p_text} and removes "
    f"{cut.removed_by_p:.1%} more. The kept tokens are renormalised to add up to 100% (black diamonds): "
    "that is the distribution a token is actually drawn from."
)

# ------------------------------------------------------------------------------------------------ the formula
st.subheader("Temperature divides the logits before the softmax")
st.latex(r"p_i(T) \;=\; \mathrm{softmax}(z / T)_i \;=\; \frac{e^{z_i / T}}{\sum_{j=1}^{V} e^{z_j / T}}")
st.markdown(
    f"The model outputs one score (logit) $z_i$ for each of the {lm.vocab_size:,} tokens. Dividing by $T < 1$ "
    "stretches the gaps between scores, so the top token takes even more of the probability; $T > 1$ shrinks "
    "the gaps and spreads probability onto unlikely tokens; as $T \\to 0$ all of it goes to the top token "
    "(greedy). The ranking never changes, only how peaked the distribution is."
)
rows = sv.formula_rows(logits, temperature)
df = pd.DataFrame(
    {
        "token": [token_label(lm.token_text(r["id"])) for r in rows],
        "logit z": [r["z"] for r in rows],
        "z / T": [r["z/T"] for r in rows],
        "p at T = 1": [r["p1"] for r in rows],
        f"p at T = {temperature:g}": [r["pT"] for r in rows],
    }
)
st.dataframe(
    df, hide_index=True, width="stretch", key="tmp_formula_table",
    column_config={c: st.column_config.NumberColumn(format="%.4f") for c in df.columns if c != "token"},
)
if temperature <= 0:
    st.caption("At T = 0 the division is undefined: greedy decoding simply takes the arg-max, so z / T shows ∞.")

# ------------------------------------------------------------------------------------------------ which to use
st.subheader("Greedy or sampling? Low or high temperature?")
regime = temperature_regime(temperature)
here = " ← your setting"
st.markdown(
    "**Sampling** draws the next token at random in proportion to its probability, so each run differs. "
    "Temperature decides which distribution it draws from:\n\n"
    "- **Greedy** (T = 0) always takes the most likely token: the same prompt gives the same text every "
    f"time, but it can get stuck repeating itself.{here if regime == 'greedy' else ''}\n"
    "- **Low temperature** (between 0 and 1, e.g. 0.2 to 0.7) sharpens the model's distribution towards its best "
    "guesses: use it for facts, code, extraction and answers that should be repeatable."
    f"{here if regime == 'low' else ''}\n"
    "- **T = 1** is the model's **own distribution**, unchanged: the probabilities it learned in training."
    f"{here if regime == 'own' else ''}\n"
    "- **High temperature** (above 1) flattens the distribution for more varied, surprising text: brainstorming "
    "and stories. Too high and the rare, nonsensical tokens start to win; top-k and top-p cut that tail off."
    f"{here if regime == 'high' else ''}"
)

# ------------------------------------------------------------------------------------------------ a batch
st.subheader("Sample many continuations at once")
st.markdown(
    "Press the button to draw **N continuations in one batch** (one pass over the prompt, then one batched step "
    "per token) with the sliders above. A **seed** makes the random draws repeatable: the same seed and settings "
    "always give the same texts, so a teacher can replay a demo."
)
c1, c2, c3 = st.columns(3)
n = c1.slider("N continuations", 1, MAX_SAMPLES, 20, key="tmp_n", bind="query-params")
new = c2.slider("Tokens per continuation", 1, 30, 8, key="tmp_len", bind="query-params")
seed = c3.number_input("Seed", 0, 2**31 - 1, 42, step=1, key="tmp_seed", bind="query-params")
cap = max_samples_for(len(prompt_ids), new)
if n > cap:
    st.caption(f":material/info: With a prompt this long, one batch holds at most {cap} continuations; using {cap}.")
    n = cap
settings = {"ids": prompt_ids, "n": n, "new": new, "T": temperature, "k": top_k, "p": top_p, "seed": int(seed)}
if st.button(f"Sample {n} continuations", icon=":material/casino:", type="primary", key="tmp_sample"):
    with st.spinner(f"Sampling {n} continuations…"):
        result = caches.batch_samples(lm.key, prompt_ids, int(n), int(new), float(temperature), int(top_k),
                                      float(top_p), int(seed))
    st.session_state[BATCH] = {"settings": settings, "result": result}
saved = st.session_state.get(BATCH)
if not saved or saved["settings"]["ids"] != prompt_ids:
    st.caption("No samples yet for this prompt.")
    end_page()
result, used = saved["result"], saved["settings"]
if used != settings:
    st.caption(
        f":material/history: Showing the last batch, drawn with T = {used['T']:g}, top-k = {used['k']}, "
        f"top-p = {used['p']:g}, seed {used['seed']}. Press the button to sample with the current settings."
    )
rate = result.tokens_generated / result.seconds if result.seconds > 0 else 0.0
st.caption(
    f":material/speed: {len(result.texts)} continuations, {result.tokens_generated} tokens in "
    f"{result.seconds:.1f} s ({rate:.1f} tokens/s) with {result.forwards} forward passes "
    f"(one by one it would take {result.tokens_generated} passes)."
)
hist = first_token_histogram(result)  # first tokens against the distribution they were drawn from
show_chart(
    histogram_figure([lm.token_text(t) for t in hist.token_ids], hist.empirical, hist.expected, hist.total),
    key="tmp_histogram",
)
st.caption(
    f"Orange: share of the {hist.total} samples that started with each token. Blue: the probability it had after "
    f"temperature, top-k and top-p. They differ by {hist.total_variation:.0%} (total variation over these tokens); "
    "more samples bring them closer."
)
df = pd.DataFrame(
    {
        "#": range(1, len(result.texts) + 1),
        "first token": [token_label(lm.token_text(ids_[0])) if ids_ else "" for ids_ in result.token_ids],
        "continuation": result.texts,
    }
)
st.dataframe(df, hide_index=True, width="stretch", key="tmp_samples")
csv_download(df, "samples.csv", key="tmp_samples_csv")
