"""Context window: the real limit, a simulated small window, forgetting, the cost of long contexts, long text."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import csv_download, empty_text_notice, folded, show_chart, show_error, token_chips
from components.figures.bars import probability_bars, usage_gauge
from components.figures.lines import context_figure, cost_figures, sweep_figure
from components.frame import ensure_frame
from components.inputs import cleaned
from components.model import require_lm
from engine.context import COST_LENGTHS, MAX_LONG_TOKENS, apply_window, find_subsequence
from engine.lm import InputError, input_problem

DEFAULT_TEXT = (
    "My name is Ada. I live in a small town by the sea and I like to read books about science. "
    "What is my name? Answer: Your name is"
)
DEFAULT_LONG = (
    "Maria opened a small bakery on the corner of Elm Street. Every morning, Maria baked bread, croissants and a "
    "cinnamon cake that the whole street loved. Her brother Tom helped at the counter. Tom was shy, but he "
    "remembered every customer's order. One winter the oven broke. Maria called a repairman, but he could not come "
    "for a week. So Maria and Tom carried their dough to the school kitchen down the road, and the head teacher let "
    "them bake there at night. The children woke up to the smell of cinnamon cake. When the oven was fixed, the "
    "street held a small party at the bakery. Tom gave a short speech, and everyone agreed that the cinnamon cake "
    "tasted even better than before. Since then, every winter, the bakery on Elm Street bakes one cinnamon cake for "
    "the school, and the children write Maria and Tom a thank-you card."
)

ensure_frame()
st.title("Context window")
st.markdown(
    "The post defines the **context window** as *the number of tokens the model can “see” at once*. Everything the "
    "model knows about your conversation must fit in it: a token outside the window has no effect on the prediction "
    "at all. Below, the real model shows what that means."
)

lm = require_lm()
key = lm.key
limit = lm.info.context_length

# ------------------------------------------------------------------------------------------------ the real limit
st.subheader("The real limit")
st.markdown(
    f"This model's window is **{limit:,} tokens**, read from its configuration (`max_position_embeddings`). "
    "Large commercial models reach 128k tokens or more. Type or paste a text to see how much of the window it fills."
)
if "cw_text" not in st.session_state:
    st.session_state["cw_text"] = DEFAULT_TEXT
text = cleaned(st.text_area("Text", key="cw_text", height=110, bind="query-params"))
ids = caches.token_ids(key, text) if text.strip() else ()
n = len(ids)
if not ids:
    empty_text_notice("a text")
else:
    g_col, m_col = st.columns([3, 2], vertical_alignment="center")
    with g_col:
        show_chart(usage_gauge(n, limit), key="cw_gauge")
    with m_col:
        st.metric("Tokens in your text", f"{n:,}")
        st.metric("Share of the window used", f"{n / limit:.2%}")
        if n > limit:
            st.warning(
                f"This text is longer than the model's window: only its last {limit:,} tokens could be read.",
                icon=":material/warning:",
            )

# ------------------------------------------------------------------------------------------------ simulated window
if ids:
    st.subheader("Simulate a small window")
    st.markdown(
        f"A window of {limit:,} tokens is hard to overflow with a paragraph, so shrink it. When a plain text is longer "
        "than the window, the model can only read its **most recent** tokens; the greyed, struck-out tokens below are "
        "the ones it no longer sees. A chat app cuts more carefully: the chat on the Prompts page drops **whole turns**, "
        "oldest first, and always keeps the system prompt."
    )
    window = st.slider("Window size (tokens)", 8, 256, 16, key="cw_window", bind="query-params")
    view = apply_window(ids, window)
    shown = 600  # chips drawn at most (the page stays light for very long texts)
    first = max(0, n - shown)
    if first:
        st.caption(f"Showing the last {shown} of {n:,} tokens.")
    token_chips(
        caches.token_pieces(key, ids)[first:],
        ids[first:],
        dimmed=[not k for k in view.in_window[first:]],
        titles=[f"position {i}" + ("" if i >= view.start else " (outside the window)") for i in range(first, n)],
    )
    if view.overflow:
        st.caption(
            f"The model sees the last **{len(view.kept):,}** tokens; **{len(view.dropped):,}** slid out of the window."
        )
    else:
        st.caption(f"All {n:,} tokens fit in a {window}-token window: nothing is forgotten yet.")

# ------------------------------------------------------------------------------------------------ forgetting
if ids:
    st.subheader("What the model forgets")
    st.markdown(
        "Ask about a fact from the start of the text. With the whole text, the model can look the fact up; once it "
        "has slid out of the window, the model can only guess. Both predictions below are from the real model."
    )
    answer_word = cleaned(st.text_input("Answer to check", value="Ada", key="cw_answer", max_chars=40,
                                        bind="query-params"), limit=40, quiet=True).strip()
    answer = " " + answer_word  # the answer follows a space: " Ada" is one token, "Ada" another
    problem = input_problem(lm, text, what="text")  # the model reads at most MAX_INPUT_TOKENS tokens at once
    if not answer_word:
        st.info("Type the word you expect the model to answer with (for the default text: Ada).", icon=":material/edit:")
    elif problem:
        show_error(InputError(problem))
    else:
        full_col, win_col = st.columns(2)
        for col, seen, label, name in (
            (full_col, ids, f"Whole text ({n} tokens)", "full"),
            (win_col, tuple(view.kept), f"Last {len(view.kept)} tokens only", "win"),
        ):
            with col:
                st.markdown(f"**{label}**")
                p = caches.answer_prob(key, seen, answer)
                st.metric(f"p('{answer_word}' comes next)", f"{p:.2%}" if p >= 1e-4 else f"{p:.1e}")
                top = caches.next_view(key, seen)
                show_chart(
                    probability_bars(
                        [c.text for c in top.candidates],
                        [c.prob for c in top.candidates],
                        top.other_mass,
                        highlight=[c.text.strip() == answer_word for c in top.candidates],
                    ),
                    key=f"cw_top_{name}",
                    height=300,
                )
        if not view.overflow:
            st.info(
                "The window holds the whole text, so both sides are the same. Move the window slider below "
                f"{n} tokens to push the start of the text out.",
                icon=":material/info:",
            )
        fact_start = find_subsequence(ids[:-1], caches.token_ids(key, answer))
        with folded("p(answer) for every window size", "cw_sweep_open", ":material/show_chart:") as is_open:
            if is_open:
                st.markdown(
                    "One forward pass per window size, from 4 tokens to the whole text. Grey points: the first mention "
                    "of the answer is no longer fully in view."
                )
                if st.toggle("Run the sweep", key="cw_sweep"):
                    if n > 128:
                        st.info("The sweep runs on texts of at most 128 tokens, to keep it quick.", icon=":material/info:")
                    else:
                        points = caches.window_sweep(key, ids, answer, fact_start)
                        fact_window = n - fact_start if fact_start is not None else None
                        show_chart(sweep_figure(points, answer_word, fact_window), key="cw_sweep_chart")
                        if fact_start is None:
                            st.caption(f"'{answer_word}' does not appear earlier in the text, so no fact line is drawn.")

# ------------------------------------------------------------------------------------------ why windows are limited
st.subheader("Why are windows limited?")
st.markdown(
    f"In self-attention every token scores **every earlier token**: a sequence of T tokens makes a T × T matrix of "
    f"attention weights per head and per layer ({lm.info.heads} heads × {lm.info.layers} layers here). Double the "
    "text and that matrix grows **four times**: the quadratic term. The rest of the model (the MLPs, the projections) "
    "grows only linearly with T, so at short lengths it dominates the time, and attention takes over as T grows."
)
rope = getattr(lm.model.config, "rope_parameters", None) or {}
theta = rope.get("rope_theta") if isinstance(rope, dict) else None
st.markdown(
    "**Positions.** This model has no table of learned position vectors: it uses *rotary position embeddings* "
    "(RoPE), which rotate each query and key vector by an angle proportional to the token's position, so attention "
    "scores depend on how far apart two tokens are"
    + (f" (rotation base {theta:,.0f}, from the config)." if theta else ".")
    + f" The model was trained on sequences up to {limit:,} tokens; beyond that its predictions degrade."
)
max_len = st.select_slider(
    "Longest sequence to measure",
    options=list(COST_LENGTHS[2:]),
    value=256,
    key="cw_maxlen",
    bind="query-params",
    help="Longer sequences take longer to measure. Results are shared by everyone using this server.",
)
lengths = tuple(t for t in COST_LENGTHS if t <= max_len)
if st.toggle("Measure on this machine", key="cw_measure"):
    points = caches.measure_cost(key, lengths)
    time_fig, mem_fig = cost_figures(points, lm.info.layers, lm.info.heads)
    t_col, m_col = st.columns(2)
    with t_col:
        show_chart(time_fig, key="cw_time")
    with m_col:
        show_chart(mem_fig, key="cw_mem")
    table = pd.DataFrame(
        {
            "tokens": [p.n_tokens for p in points],
            "forward ms": [round(p.seconds * 1000, 1) for p in points],
            "attention MiB (all layers)": [round(p.attention_bytes / 2**20, 2) for p in points],
            "attention MiB (one layer)": [round(p.attention_bytes_per_layer / 2**20, 2) for p in points],
        }
    )
    st.dataframe(table, hide_index=True)
    csv_download(table, "context_cost.csv", key="cw_cost_csv")
    full_layer = lm.info.heads * limit**2 * 4
    st.caption(
        f"Measured now, while other people may be using this machine, so times are noisy. Attention memory is the "
        f"size of the real attention tensors the model returned. At the full {limit:,} tokens one layer's attention "
        f"weights alone would take {full_layer / 2**30:.1f} GiB in 32-bit floats (config arithmetic, not measured). "
        "Fused kernels such as FlashAttention compute the same result in tiles without storing the whole matrix, "
        "which saves the memory, but the T² compute remains."
    )
else:
    st.caption(f"Turn on the measurement to time forward passes of {', '.join(map(str, lengths))} tokens.")

# ---------------------------------------------------------------------------------------- text beyond the window
st.subheader("Reading a text longer than the window")
st.markdown(
    "To score a long text (its **perplexity**: the average surprise per token, lower is better) with a small window, "
    "there are two simple ways. **Chunking** cuts the text into window-sized pieces and scores each alone: cheap, "
    "but the first tokens of every chunk see almost nothing. A **sliding window** moves by a smaller *stride* and "
    "scores only the new tokens each time, so every token keeps a long context, at the price of more forward passes."
)
if "cw_long" not in st.session_state:
    st.session_state["cw_long"] = DEFAULT_LONG
long_text = cleaned(st.text_area("Long text", key="cw_long", height=140, bind="query-params"))
long_ids = caches.token_ids(key, long_text) if long_text.strip() else ()
if len(long_ids) > MAX_LONG_TOKENS:
    st.caption(f":material/info: Only the first {MAX_LONG_TOKENS} of {len(long_ids):,} tokens are scored here.")
    long_ids = long_ids[:MAX_LONG_TOKENS]
w_col, s_col = st.columns(2)
pwin = w_col.select_slider("Window (tokens)", options=[16, 32, 64, 128], value=32, key="cw_pwin", bind="query-params")
stride = s_col.select_slider(
    "Stride (tokens)", options=[4, 8, 16, 32, 64, 128], value=8, key="cw_stride", bind="query-params"
)
scoring = st.toggle(
    "Score the text three ways", key="cw_score", bind="query-params",
    help="Runs the model over the text once per window: a few seconds for the example. The results are shared by "
         "everyone using this server.",
)
if len(long_ids) < 2:
    empty_text_notice("a longer text")
elif not scoring:
    st.caption(
        f"Turn on the scoring to run the {len(long_ids)} tokens through the model as chunks, with the sliding window "
        "and whole."
    )
else:
    try:
        runs = caches.long_text_runs(key, long_ids, pwin, stride)
    except ValueError as err:
        show_error(err)
    else:
        table = pd.DataFrame([
            {
                "method": name,
                "forward passes": run.forwards,
                "mean context (tokens)": round(sum(run.context) / len(run.context), 1),
                "perplexity": round(run.perplexity, 2),
            }
            for name, run in runs.items()
        ])
        st.dataframe(table, hide_index=True)
        csv_download(table, "sliding_window_perplexity.csv", key="cw_ppl_csv")
        show_chart(context_figure(runs), key="cw_context_chart")
        st.caption(
            "Each line shows how many earlier tokens the model saw when it scored each token. The chunked line falls "
            "to one token at every chunk boundary; the sliding line stays near the window size; with the whole text "
            "in view context grows with position. All three score the same tokens, so their perplexities compare "
            "directly: more context usually means less surprise."
        )
