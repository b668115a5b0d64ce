"""Attention & Transformers: self-attention in the real model, head by head, one head by hand, and the logit lens."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import (
    cached_chart,
    csv_download,
    empty_text_notice,
    illustration_note,
    show_error,
    token_chips,
)
from components.figures.bars import token_bars
from components.figures.bertviz import (
    MAX_CELLS,
    MAX_TOKENS,
    head_view_height,
    layers_within_budget,
    model_view_height,
)
from components.figures.heatmaps import attention_heatmap, generated_heatmap, head_grid, lens_heatmap, mask_patterns
from components.figures.lines import lens_trajectory
from components.figures.tables import matrix_table, vector_table
from components.frame import end_page, ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from engine.attention import (
    ATTN_MAX_TOKENS,
    HEAD_METRICS,
    LENS_POSITIONS,
    MAX_GEN_TOKENS,
    head_metric,
    masked_mass,
    sink_share,
    token_attention,
)
from engine.lm import InputError
from engine.text import token_label

ensure_frame()
st.title("Attention & Transformers")
st.markdown(
    "The post credits the Transformer's **self-attention** for letting the model *look at all words at once and "
    "decide which are most relevant to predicting the next one*. This page opens up the real model's attention: "
    "every number below was just computed by SmolLM2 on your prompt."
)

lm = require_lm()
info = lm.info
L, H, KV, D_HEAD = info.layers, info.heads, info.kv_heads, info.head_dim
key = lm.key

text = prompt_input("Prompt", help="Shared with the other pages. Short prompts give readable pictures.")
st.caption(f"This page reads at most {ATTN_MAX_TOKENS} tokens: attention grows with the square of the length.")
if not text.strip():
    empty_text_notice()
    end_page()
try:
    with st.spinner("Running the model once with attention recording on…"):
        run = caches.attention_run(key, text)
except InputError as err:
    show_error(err)
    end_page()

T = len(run.ids)
tokens = run.tokens
token_chips(tokens, run.ids, show_whitespace=True)

st.subheader("Self-attention in one paragraph")
st.markdown(
    f"Each layer turns every token's vector into three smaller vectors ({D_HEAD} numbers each, per head): a "
    "**query** (what am I looking for?), a **key** (what do I contain?) and a **value** (what do I pass on?). A token "
    "compares its query with the keys of the tokens it may see (a dot product, divided by √d), turns the scores "
    "into weights that sum to 1 with a softmax, and takes the weighted average of their values. That weighted "
    f"average is how information moves between positions. This model does it in **{H} heads in each of its {L} "
    f"layers** ({H * L} attention patterns per token), each head with its own learned projections."
)

# ------------------------------------------------------------------------------------------------- one head
st.subheader("One head's attention matrix")
c1, c2 = st.columns([3, 1])
layer = c1.slider("Layer", 0, L - 1, value=min(L - 1, 2), key="at_layer", bind="query-params")
head = c2.selectbox("Head", list(range(H)), index=0, key="at_head", bind="query-params",
                    format_func=lambda h: f"head {h}")
weights = run.attentions[layer, head]  # [T, T]
cached_chart(("at_matrix", key, text, layer, head), lambda: attention_heatmap(weights, tokens, f"Layer {layer}, head {head}"),
             key="at_matrix")
if T > 1:
    last = T - 1
    top_key = int(weights[last].argmax())
    st.caption(
        f"Each row is one token reading the tokens before it; the row sums to 1. The last token "
        f"{token_label(tokens[last])} puts {float(weights[last, top_key]):.0%} of this head's attention on "
        f"{token_label(tokens[top_key])} (position {top_key}). The blank upper triangle is the causal mask: a token "
        "never sees the future."
    )

st.subheader("Find interesting heads: all layers × heads")
metric = st.selectbox(
    "Colour each head by",
    list(HEAD_METRICS),
    format_func=lambda m: HEAD_METRICS[m][0],
    key="at_metric",
    bind="query-params",
)
grid = head_metric(run.attentions, metric)  # [L, H]
st.caption(HEAD_METRICS[metric][1])
cached_chart(("at_grid", key, text, metric),
             lambda: head_grid(grid, HEAD_METRICS[metric][0], zmax=None if metric == "entropy" else 1.0,
                               short="bits" if metric == "entropy" else "weight"), key="at_grid")
flat = int(grid.flatten().argmax())
st.caption(
    f"Highest for this prompt: layer {flat // H}, head {flat % H} ({float(grid.flatten()[flat]):.2f}). Pick it above "
    "to see its matrix."
)
csv_download(
    pd.DataFrame([{"layer": li, "head": h, HEAD_METRICS[metric][0]: round(float(grid[li, h]), 5)}
                  for li in range(L) for h in range(H)]),
    f"attention_heads_{metric}.csv",
    key="at_grid_csv",
)

# ------------------------------------------------------------------------------------------------- one token
st.subheader("What does this token look at?")
positions = list(range(T))
if st.session_state.get("at_tok") not in positions:
    st.session_state["at_tok"] = T - 1
c1, c2, c3 = st.columns([2, 1, 1])
pos = c1.selectbox("Token", positions, key="at_tok", bind="query-params",
                   format_func=lambda i: f"{i}: {token_label(tokens[i])}")
tok_layer = c2.selectbox("Layer", [-1, *range(L)], key="at_tlayer", bind="query-params",
                         format_func=lambda i: "all layers (average)" if i < 0 else f"layer {i}")
tok_head = c3.selectbox("Head", [-1, *range(H)], key="at_thead", bind="query-params",
                        format_func=lambda h: f"all {H} heads (average)" if h < 0 else f"head {h}")
per_head = token_attention(run.attentions, pos, None if tok_layer < 0 else tok_layer)  # [H, pos+1]
bars = per_head.mean(0) if tok_head < 0 else per_head[tok_head]
where = "all layers" if tok_layer < 0 else f"layer {tok_layer}"
who = f"average of {H} heads" if tok_head < 0 else f"head {tok_head}"
cached_chart(("at_tokbars", key, text, pos, tok_layer, tok_head),
             lambda: token_bars(bars, tokens, pos, f"{token_label(tokens[pos])} reading earlier tokens ({where}, {who})"),
             key="at_tokbars")
if pos == 0:
    st.caption("The first token can only see itself, so all its attention (1.0) goes there.")
else:
    sink_note = (
        f" The largest share goes to the first token, {token_label(tokens[0])}: the attention sink (explained below)."
        if int(bars.argmax()) == 0 else ""
    )
    st.caption(
        f"Only positions 0–{pos} appear: tokens after {token_label(tokens[pos])} are masked. The bars sum to 1. "
        "The grey bar is the token itself; orange is the largest." + sink_note
    )

# ------------------------------------------------------------------------------------------------- bertviz
st.subheader("bertviz: the classic attention views")
st.markdown(
    "[bertviz](https://github.com/jessevig/bertviz) draws attention as lines. **Head view**: hover a token to see "
    "where it looks; each colour is a head (click the coloured squares to show or hide heads). **Model view**: a "
    "thumbnail of every head in the chosen layers; click one to enlarge it. The JavaScript it needs is served by this "
    "app, so it works with no internet."
)
c1, c2 = st.columns([1, 3])
view = c1.segmented_control("View", ["head", "model"], default="head", key="at_bv", bind="query-params",
                            format_func=lambda v: {"head": "Head view", "model": "Model view"}[v], required=True)
default_layers = sorted({0, L // 5, 2 * L // 5, 3 * L // 5, 4 * L // 5, L - 1})
if "at_bvl" not in st.session_state:
    st.session_state["at_bvl"] = default_layers
chosen_layers = c2.multiselect("Layers to include", list(range(L)), key="at_bvl", bind="query-params",
                               format_func=lambda i: f"layer {i}")
bv_T = min(T, MAX_TOKENS)
if not chosen_layers:
    st.info("Pick at least one layer to draw.", icon=":material/info:")
else:
    bv_layers = layers_within_budget(chosen_layers, H, bv_T)
    notes = []
    if bv_T < T:
        notes.append(f"the first {bv_T} of {T} tokens (causal attention: these weights are exactly the ones the "
                     "model used, whatever follows)")
    if len(bv_layers) < len(set(chosen_layers)):
        notes.append(f"layers {', '.join(map(str, bv_layers))} only (at most {MAX_CELLS:,} weights per view keep the "
                     "page light)")
    if notes:
        st.caption(":material/info: Showing " + "; ".join(notes) + ".")
    # The head view opens on the layer picked above when it is included.
    html = caches.bertviz_html(key, text, view, tuple(bv_layers), bv_T, layer)
    if view == "model":
        height = model_view_height(bv_T, len(bv_layers), H)
    else:
        height = head_view_height(bv_T)
    st.iframe(html, height=min(height, 2400))
    st.caption(f"Weights rounded to 3 decimals; this view is {len(html) / 1e6:.1f} MB including its scripts.")

# ------------------------------------------------------------------------------------------------- arithmetic
st.subheader("One head by hand: the arithmetic, from the real weights")
n_max = min(T, 8)
n_calc = n_max
if T > 2:
    n_calc = st.slider("Tokens to compute (from the start of the prompt)", 2, n_max, value=min(n_max, 6),
                       key="at_n", bind="query-params")
calc = caches.head_by_hand(key, text, layer, head, n_calc)
ctoks = [f"{i}: {token_label(t)}" for i, t in enumerate(calc.tokens)]
show_dims = 6

st.markdown(
    f"Layer **{layer}**, head **{head}** (pick them above), on the first {n_calc} tokens. Because attention is "
    "causal, these positions are computed exactly as if the prompt stopped here."
)
st.markdown(
    f"**1. Queries and keys.** The layer's input is normalised (RMSNorm), then multiplied by the head's learned "
    f"matrices: each token gets a query and a key of {D_HEAD} numbers (first {show_dims} shown). Both are rotated by "
    "an angle that depends on the position (rotary position embedding), which is how the model knows word order. "
    f"Head {head} shares its keys and values with heads {', '.join(map(str, calc.group))} (grouped-query "
    f"attention, key/value head {calc.kv_head})."
)
c1, c2 = st.columns(2)
c1.caption("Queries Q (after rotation)")
c1.dataframe(vector_table(calc.q, ctoks, show_dims), key="at_q")
c2.caption("Keys K (after rotation)")
c2.dataframe(vector_table(calc.k, ctoks, show_dims), key="at_k")
st.markdown(
    f"**2. Scores Q·Kᵀ / √d.** Row = query, column = key. Dividing by √{D_HEAD} = {D_HEAD ** 0.5:.0f} keeps the "
    "scores in a range where the softmax is not saturated."
)
st.dataframe(matrix_table(calc.scaled, ctoks), key="at_scaled")
st.markdown(
    "**3. Causal mask.** Scores for later tokens are set to −∞, so they get weight exactly 0 after the softmax."
)
masked_df = matrix_table(calc.masked, ctoks).map(lambda v: "−∞" if v == float("-inf") else f"{v:.3f}")
st.dataframe(masked_df, key="at_masked")
st.markdown("**4. Softmax of each row** (eᶻ / Σeᶻ): the attention weights. Each row sums to 1.")
st.dataframe(matrix_table(calc.weights, ctoks, 4), key="at_weights")
st.markdown(
    f"**5. Weighted sum of values.** Each token's output is its weights times the value vectors (first {show_dims} "
    f"of {D_HEAD} numbers). The {H} heads' outputs are concatenated and mixed by the output projection."
)
c1, c2 = st.columns(2)
c1.caption("Values V")
c1.dataframe(vector_table(calc.v, ctoks, show_dims), key="at_v")
c2.caption("Output = weights · V")
c2.dataframe(vector_table(calc.output, ctoks, show_dims), key="at_out")
st.success(
    f"Checked against the model: largest difference from the weights it returned is {calc.max_weight_diff:.1e}, "
    f"from the head output it passed on is {calc.max_output_diff:.1e}.",
    icon=":material/check_circle:",
)

# ------------------------------------------------------------------------------------------------- misreadings
st.subheader("What you will see, and how not to misread it")
sink = sink_share(run.attentions)
future = masked_mass(run.attentions)
st.markdown(
    f"- **Causal masking.** Every matrix is a triangle: a token reads only itself and earlier tokens. Summed over "
    f"all {L} layers and {H} heads, the weight on future tokens for your prompt is exactly **{future:g}**. That is "
    "what lets the same forward pass train on every position at once, and why generation goes one token at a time.\n"
    f"- **The attention sink.** Averaged over every head and layer, tokens put **{sink:.0%}** of their attention on "
    f"the very first token, {token_label(tokens[0])}, whatever it is. Softmax weights must sum to 1, so a head with "
    "nothing useful to do parks its weight on a fixed spot; the first token is visible to everyone. Heavy weight "
    "there usually means the head is idle, not that the first word matters.\n"
    f"- **Grouped-query attention.** This model has {H} query heads but only {KV} key/value heads: heads "
    + "; ".join(f"{g * (H // KV)}–{(g + 1) * (H // KV) - 1} share key/value head {g}" for g in range(KV))
    + ". Their patterns differ only through their queries. It shrinks the memory that generation has to keep "
    "(the KV cache) by a factor of " + f"{H // KV}.\n"
    "- **Attention is not an explanation.** A large weight says where a head read from, not why the model answered "
    "as it did: what it reads is then transformed by the output projection and the MLP, thousands of paths add up "
    "in the residual stream, and other weightings can give the same answer. Use attention to form hypotheses, and "
    "test them by changing the input (or see the logit lens below)."
)

# ------------------------------------------------------------------------------------------------- logit lens
st.subheader("The logit lens: what would the model say if it stopped after layer k?")
st.markdown(
    "After each layer, the token vector is a work in progress. Push it through the model's own final norm and output "
    "layer and you get the next-token guess that layer would make. Colour: probability of that layer's top guess "
    "(over the full vocabulary); text: the guess. Read a column from top to bottom."
)
lens = caches.lens_result(key, text)
cached_chart(("at_lens", key, text), lambda: lens_heatmap(lens, lm.token_text), key="at_lens")
final = lm.token_text(int(lens.final_ids[-1]))
p_final = lens.final_probs[:, -1]
first_top = next((i for i in range(len(p_final)) if int(lens.final_ranks[i, -1]) == 1), len(p_final) - 1)
st.caption(
    f"Last {len(lens.positions)} positions (at most {LENS_POSITIONS}). At the last position the model's answer is "
    f"{token_label(final)} ({float(p_final[-1]):.1%}); it is first the top guess {lens.layer_labels[first_top]}"
    f" (of {L}). The first row (embeddings) mostly predicts the input token itself: this "
    "model's input and output embeddings are the same matrix."
)
cached_chart(("at_lens_line", key, text), lambda: lens_trajectory(lens, lm.token_text), key="at_lens_line")
csv_download(
    pd.DataFrame([
        {"layer": lens.layer_labels[r], "position": p, "input token": lens.tokens[c],
         "top guess": lm.token_text(int(lens.top_ids[r, c, 0])), "p(top guess)": round(float(lens.top_probs[r, c, 0]), 6),
         "p(final answer)": float(lens.final_probs[r, c]), "rank of final answer": int(lens.final_ranks[r, c])}
        for r in range(len(lens.layer_labels)) for c, p in enumerate(lens.positions)
    ]),
    "logit_lens.csv",
    key="at_lens_csv",
)

# ------------------------------------------------------------------------------------------------- generation
st.subheader("Attention of generated tokens")
st.markdown(
    "While it writes, the model reads the prompt again at every step. Greedy decoding picks each token; the map shows "
    "where the model looked while choosing it (averaged over heads)."
)
c1, c2, c3 = st.columns([2, 2, 1.3], vertical_alignment="bottom")
n_new = c1.slider("Tokens to generate", 1, MAX_GEN_TOKENS, value=6, key="at_gen", bind="query-params")
gen_layer = c2.selectbox("Layer", [-1, *range(L)], key="at_glayer", bind="query-params",
                         format_func=lambda i: "all layers (average)" if i < 0 else f"layer {i}")
skip_sink = c3.toggle("Hide the first token", value=True, key="at_gsink", bind="query-params",
                      help="The first token soaks up most attention (the attention sink, see above). Hiding its "
                      "column lets the colour scale show how the rest is shared.")
with st.spinner("Generating…"):
    gen = caches.generated_attention(key, text, n_new)
if not gen.generated:
    st.info("No room left in the context window to generate.", icon=":material/info:")
else:
    g_layer = None if gen_layer < 0 else gen_layer
    cached_chart(("at_genmap", key, text, n_new, g_layer, skip_sink),
                 lambda: generated_heatmap(gen, g_layer, skip_first=skip_sink), key="at_genmap")
    share = gen.prompt_share(g_layer)
    gen_df = pd.DataFrame({
        "step": range(1, len(gen.generated) + 1),
        "generated token": [token_label(t) for t in gen.generated],
        "probability": [round(p, 4) for p in gen.probs],
        "weight on the prompt": [round(float(s), 3) for s in share],
        "weight on its own earlier output": [round(1 - float(s), 3) for s in share],
    })
    st.dataframe(gen_df, hide_index=True, key="at_gen_table")
    csv_download(gen_df, "generated_attention.csv", key="at_gen_csv")
    st.caption(
        "The first row always puts all its weight on the prompt (nothing has been generated yet); later tokens also "
        "read what the model itself just wrote. The probabilities are the full softmax of the model at each step."
        + (f" The first column, {token_label(gen.tokens[0])}, is hidden." if skip_sink and gen.prompt_len > 1 else "")
    )

# ------------------------------------------------------------------------------------------------- architectures
st.subheader("Encoder, decoder, encoder-decoder")
is_enc_dec = bool(getattr(lm.model.config, "is_encoder_decoder", False))
kind = "an encoder-decoder" if is_enc_dec else "a decoder-only model, like GPT"
st.markdown(
    "The post names BERT, GPT and T5: three ways to wire the same attention. **BERT** (encoder) lets every token see "
    "every other token, which suits understanding a whole text. **GPT** (decoder) lets a token see only earlier ones, "
    "which is what next-token generation needs. **T5** (encoder-decoder) encodes the input bidirectionally, then the "
    "decoder writes the output causally and reads the encoded input through **cross-attention**. "
    f"{info.name} is **{kind}**: its measured attention (right) has exactly {future:g} weight above the diagonal."
)
avg = run.attentions.mean(dim=(0, 1))  # [T, T] average over layers and heads
cached_chart(("at_masks", key, text), lambda: mask_patterns(avg, tokens), key="at_masks")
illustration_note("The first three panels are illustrations of which tokens may see which; the fourth is measured on "
                  "your prompt (first 12 tokens, average over all layers and heads).")
