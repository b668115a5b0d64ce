"""Attention & Transformers: what attention is, one head, all heads, the block around attention, the logit lens."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import (
    cached_chart,
    csv_download,
    empty_text_notice,
    folded,
    illustration_note,
    show_error,
    token_chips,
)
from components.figures.bars import token_bars
from components.figures.bertviz import (
    MAX_CELLS,
    MAX_TOKENS,
    default_layers,
    head_view_height,
    layers_within_budget,
    model_view_height,
)
from components.figures.heatmaps import (
    attention_heatmap,
    generated_heatmap,
    head_grid,
    lens_heatmap,
    mask_patterns,
)
from components.figures.lines import block_flow_figure, lens_trajectory
from components.figures.tables import matrix_table, vector_table
from components.frame import end_page, ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from components.state import default_once, keep_choice
from engine.attention import ATTN_MAX_TOKENS, HEAD_METRICS, LENS_POSITIONS, MAX_GEN_TOKENS
from engine.lm import InputError
from engine.text import token_label

ensure_frame()
st.title("Attention & Transformers")
st.markdown(
    "The post credits the Transformer's **self-attention** for letting the model *look at all words at once and "
    "decide which are most relevant to predicting the next one*. The Transformer comes from the 2017 paper "
    "*Attention Is All You Need* (Vaswani et al.); nearly every LLM since, including the one on this page, is built "
    "from its blocks. Every number below was just computed by the real model on your prompt."
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

# ------------------------------------------------------------------------------------------------- 1. what it is
st.subheader("1. What attention does")
st.markdown(
    f"Inside the model every token is a **vector**: a list of {info.hidden_size} numbers that starts as the token's "
    "embedding (its learned starting vector) and is refined layer after layer. **Attention** is the step where tokens share information: each "
    "token gives every token it can see a **weight** (the weights add up to 1) and takes in a weighted mix of "
    "what those tokens carry. A token sees only itself and the tokens before it, never later ones: the model writes "
    f"left to right. The model does this many times over: in each of its {L} layers, {H} separate **heads** "
    "attend in their own way (section 2). The chart averages them all; pick a token, or one layer and head."
)
positions = list(range(T))
keep_choice("at_tok", positions, T - 1)
c1, c2, c3 = st.columns([2, 1, 1])
pos = c1.selectbox("Token", positions, key="at_tok", bind="query-params",
                   format_func=lambda i: f"{i}: {token_label(tokens[i])}")
tok_layer = c2.selectbox("Layer", [-1, *range(L)], key="at_tlayer", bind="query-params",
                         format_func=lambda i: "all layers (average)" if i < 0 else f"layer {i}")
tok_head = c3.selectbox("Head", [-1, *range(H)], key="at_thead", bind="query-params",
                        format_func=lambda h: f"all {H} heads (average)" if h < 0 else f"head {h}")
tv = caches.token_view(key, text, pos, None if tok_layer < 0 else tok_layer, None if tok_head < 0 else tok_head)
where = "all layers" if tok_layer < 0 else f"layer {tok_layer}"
who = f"average of {H} heads" if tok_head < 0 else f"head {tok_head}"
cached_chart(("at_tokbars", key, text, pos, tok_layer, tok_head),
             lambda: token_bars(tv.weights, tokens, pos, f"{token_label(tokens[pos])} reading earlier tokens ({where}, {who})"),
             key="at_tokbars")
if pos == 0:
    st.caption("The first token can only see itself, so all its attention (1.0) goes there.")
else:
    sink_note = (
        f" The most goes to the very first token, {token_label(tokens[0])} ({tv.top_weight:.0%}), whatever it says: "
        "this is the **attention sink**, explained in section 3."
        if tv.sink_on_top else
        f" The most goes to {token_label(tokens[tv.top])} (position {tv.top}, {tv.top_weight:.0%})."
    )
    st.caption(
        f"Only positions 0–{pos} appear: tokens after {token_label(tokens[pos])} are hidden from it (the **causal "
        "mask**). The bars sum to 1; the grey bar is the token itself, orange the largest." + sink_note
    )

# ------------------------------------------------------------------------------------------------- 2. one head
st.subheader("2. One head: queries, keys and values")
st.markdown(
    f"How does a token choose its weights? In each layer, every token's vector is turned into three shorter vectors "
    f"of {D_HEAD} numbers by three learned matrices: a **query** (what am I looking for?), a **key** (what do I "
    "contain?) and a **value** (what do I pass on?). A token compares its query with the key of every token it may "
    "see (a dot product: large when they point the same way), a **softmax** (exponentiate each score, divide by "
    "the total) turns those scores into weights that sum to 1, and the token receives the weighted sum of their values. One set of these matrices is an attention "
    "**head**. Below, one head's weights for every token: each row is one token reading the ones before it."
)
c1, c2 = st.columns([3, 1])
layer = c1.slider("Layer", 0, L - 1, value=min(L - 1, 2), key="at_layer", bind="query-params")
head = c2.selectbox("Head", list(range(H)), index=0, key="at_head", bind="query-params",
                    format_func=lambda h: f"head {h}")
hv = caches.head_view(key, text, layer, head)
cached_chart(("at_matrix", key, text, layer, head),
             lambda: attention_heatmap(hv.weights, tokens, f"Layer {layer}, head {head}"), key="at_matrix")
if T > 1:
    st.caption(
        f"Each row sums to 1. The last token {token_label(tokens[-1])} puts {hv.last_top_weight:.0%} of this head's "
        f"attention on {token_label(tokens[hv.last_top])} (position {hv.last_top}). The blank upper triangle is the "
        "causal mask."
    )

with folded("One head by hand: the arithmetic, from the real weights", "at_by_hand", ":material/calculate:") as is_open:
    if is_open:
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
            f"**1. Queries and keys.** The layer's input vector is first rescaled to a steady size (**RMSNorm**: divided "
            "by its root-mean-square; section 4 shows why), "
            f"then multiplied by the head's learned matrices: each token gets a query and a key of {D_HEAD} numbers "
            f"(first {show_dims} shown). Both are rotated by an angle that depends on the position (rotary position "
            f"embedding), which is how the model knows word order. Head {head} shares its keys and values with heads "
            f"{', '.join(map(str, calc.group))} (**grouped-query attention**, key/value head {calc.kv_head}; see "
            "section 3)."
        )
        c1, c2 = st.columns(2)
        c1.caption("Queries Q (after rotation)")
        c1.dataframe(vector_table(calc.q, ctoks, show_dims), key="at_q")
        c2.caption("Keys K (after rotation)")
        c2.dataframe(vector_table(calc.k, ctoks, show_dims), key="at_k")
        st.markdown(
            f"**2. Scores Q·Kᵀ / √d.** Row = query, column = key. Dividing by √{D_HEAD} = {calc.sqrt_d:.0f} keeps the "
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
            f"**5. Weighted sum of values.** Each token's output is its weights times the value vectors (first "
            f"{show_dims} of {D_HEAD} numbers). The {H} heads' outputs are joined and mixed by the output projection."
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

# ------------------------------------------------------------------------------------------------- 3. all heads
st.subheader(f"3. All heads: {H} per layer, {L} layers")
st.markdown(
    f"Each layer runs **{H} heads side by side**, each with its own query, key and value matrices, so each can look "
    f"for something different; their outputs are joined and mixed back into the token's vector. With {L} layers "
    f"that makes {H} × {L} attention patterns per token. The grid gives each head one number for your prompt: pick "
    "the highest cell's layer and head in section 2 to see its matrix."
)
metric = st.selectbox(
    "Colour each head by",
    list(HEAD_METRICS),
    format_func=lambda m: HEAD_METRICS[m][0],
    key="at_metric",
    bind="query-params",
)
overview = caches.head_overview(key, text, metric)
st.caption(HEAD_METRICS[metric][1])
cached_chart(("at_grid", key, text, metric),
             lambda: head_grid(overview.grid, overview.label, zmax=None if metric == "entropy" else 1.0,
                               short="bits" if metric == "entropy" else "weight"), key="at_grid")
st.caption(
    f"Highest for this prompt: layer {overview.best_layer}, head {overview.best_head} ({overview.best_value:.2f})."
)
csv_download(pd.DataFrame(overview.records()), f"attention_heads_{metric}.csv", key="at_grid_csv")

facts = caches.attention_facts(key, text)
groups = "; ".join(f"heads {g[0]}–{g[-1]} share key/value head {i}" for i, g in enumerate(facts.kv_groups))
st.markdown(
    f"- **The attention sink.** Averaged over every head and layer, tokens put **{facts.sink:.0%}** of their "
    f"attention on the very first token, {token_label(tokens[0])}, whatever it is. The weights must add up to 1, so "
    "a head with nothing useful to do parks its weight on a fixed spot, and the first token is visible to everyone. "
    "Heavy weight there usually means the head is idle, not that the first word matters.\n"
    f"- **The causal mask, measured.** Summed over all {L} layers and {H} heads, the weight on later tokens is "
    f"exactly **{facts.future:g}**. That is what lets one forward pass train on every position at once, and why "
    "generation goes one token at a time.\n"
    f"- **Grouped-query attention and the KV cache.** While it writes, the model keeps every earlier token's keys "
    "and values in memory so it never recomputes them: the **KV cache**. To make that memory smaller, this model "
    f"has {H} query heads but only {KV} key/value heads ({groups}), which cuts the KV cache by a factor of "
    f"{facts.kv_saving}. Heads in one group differ only through their queries."
)

with folded("bertviz: the classic attention views", "at_bertviz", ":material/hub:") as is_open:
    if is_open:
        st.markdown(
            "[bertviz](https://github.com/jessevig/bertviz) draws attention as lines. **Head view**: hover a token to see "
            "where it looks; each colour is a head (click the coloured squares to show or hide heads). **Model view**: a "
            "thumbnail of every head in the chosen layers; click one to enlarge it. The JavaScript it needs is served by "
            "this app, so it works with no internet."
        )
        c1, c2 = st.columns([1, 3])
        view = c1.segmented_control("View", ["head", "model"], default="head", key="at_bv", bind="query-params",
                                    format_func=lambda v: {"head": "Head view", "model": "Model view"}[v], required=True)
        default_once("at_bvl", default_layers(L))
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
                notes.append(f"layers {', '.join(map(str, bv_layers))} only (at most {MAX_CELLS:,} weights per view keep "
                             "the page light)")
            if notes:
                st.caption(":material/info: Showing " + "; ".join(notes) + ".")
            # The head view opens on the layer picked in section 2 when it is included.
            html = caches.bertviz_html(key, text, view, tuple(bv_layers), bv_T, layer)
            height = model_view_height(bv_T, len(bv_layers), H) if view == "model" else head_view_height(bv_T)
            st.iframe(html, height=min(height, 2400))
            st.caption(f"Weights rounded to 3 decimals; this view is {len(html) / 1e6:.1f} MB including its scripts.")

# ------------------------------------------------------------------------------------------------- 4. the block
st.subheader("4. The block around attention: residual stream, RMSNorm, MLP")
flow = caches.block_flow(key, text)
st.markdown(
    "Attention is one half of a Transformer **block**; the model stacks "
    f"{L} of them. Three more parts make the block work:\n"
    "- **The residual stream.** A token's vector is carried from block to block, and each part *adds* its result "
    "to it instead of replacing it: `x = x + attention(…)`, then `x = x + MLP(…)`. The running vector is the "
    "residual stream; every part reads it and writes into it.\n"
    "- **RMSNorm.** Before attention and before the MLP, the vector is divided by its root-mean-square (then "
    "multiplied by a learned scale per number), so each part sees an input of a steady size however large the "
    "stream has grown.\n"
    f"- **The MLP** (multi-layer perceptron). A small two-layer network applied to each token on its own: its "
    f"{info.hidden_size} numbers are expanded to {flow.mlp_width:,}, passed through a non-linearity and projected "
    "back. Attention moves information *between* tokens; the MLP transforms what each token holds, and is where "
    "much of the model's stored knowledge is thought to live.\n\n"
    "The chart follows the last token's vector, the one that will become the next-token prediction, through every "
    "block."
)
cached_chart(("at_block", key, text), lambda: block_flow_figure(flow, tokens[flow.position]), key="at_block")
st.caption(
    f"The residual stream grows from length {float(flow.residual[0]):.1f} (the embedding) to "
    f"{float(flow.residual[-1]):.1f} after the last block (root-mean-square {float(flow.rms[0]):.2f} → "
    f"{float(flow.rms[-1]):.2f}): that is why each part normalises its input first. The MLP changed the vector more "
    f"than attention did in {flow.mlp_larger} of {L} layers; attention added the most in layer {flow.biggest_attn}, "
    f"the MLP in layer {flow.biggest_mlp}."
)
csv_download(pd.DataFrame(flow.records()), "residual_stream.csv", key="at_block_csv")
st.markdown(
    "**Attention is not an explanation.** A large weight says where a head read from, not why the model answered as "
    "it did: what it reads is then mixed by the output projection and the MLP, many paths add up in the residual "
    "stream, and other weightings could give the same answer. Use attention to form hypotheses, and test them by "
    "changing the input, or by reading the residual stream directly, as the next section does."
)

# ------------------------------------------------------------------------------------------------- 5. logit lens
st.subheader("5. What the layers predict: the logit lens")
st.markdown(
    f"After the last block, a final RMSNorm and the **output layer** give every one of the {info.vocab_size:,} "
    "tokens in the vocabulary a score, its **logit**; a softmax turns the logits into next-token probabilities. The "
    "**logit lens** asks what the model would say if it stopped after layer k: push the residual stream after that "
    "layer through the same final norm and output layer. Colour: probability of that layer's top guess (over the full "
    "vocabulary); text: the guess. Read a column from top to bottom."
)
lens = caches.lens_result(key, text)
cached_chart(("at_lens", key, text), lambda: lens_heatmap(lens, lm.token_text), key="at_lens")
final = lm.token_text(int(lens.final_ids[-1]))
first_top = lens.first_top_row()
st.caption(
    f"Last {len(lens.positions)} positions (at most {LENS_POSITIONS}). At the last position the model's answer is "
    f"{token_label(final)} ({float(lens.final_probs[-1, -1]):.1%}); "
    + (f"it only becomes the top guess {lens.layer_labels[first_top]}, the last layer. " if first_top == L
       else f"it is the top guess from {lens.layer_labels[first_top]} on. ")
    + "The first row (embeddings) mostly predicts the input token itself: this model's input and output embeddings "
    "are the same matrix."
)
with folded("The final answer's probability, layer by layer", "at_lens_more", ":material/show_chart:") as is_open:
    if is_open:
        cached_chart(("at_lens_line", key, text), lambda: lens_trajectory(lens, lm.token_text), key="at_lens_line")
        csv_download(pd.DataFrame(lens.records(lm.token_text)), "logit_lens.csv", key="at_lens_csv")

# ------------------------------------------------------------------------------------------------- more
st.subheader("More")
with folded("Attention while the model writes", "at_writing", ":material/edit_note:") as is_open:
    if is_open:
        st.markdown(
            "While it writes, the model reads the prompt again at every step (through the KV cache). Greedy decoding "
            "picks each token; the map shows where the model looked while choosing it (averaged over heads)."
        )
        c1, c2, c3 = st.columns([2, 2, 1.3], vertical_alignment="bottom")
        n_new = c1.slider("Tokens to generate", 1, MAX_GEN_TOKENS, value=6, key="at_gen", bind="query-params")
        gen_layer = c2.selectbox("Layer", [-1, *range(L)], key="at_glayer", bind="query-params",
                                 format_func=lambda i: "all layers (average)" if i < 0 else f"layer {i}")
        skip_sink = c3.toggle("Hide the first token", value=True, key="at_gsink", bind="query-params",
                              help="The first token soaks up most attention (the attention sink, section 3). Hiding its "
                              "column lets the colour scale show how the rest is shared.")
        with st.spinner("Generating…"):
            gen = caches.generated_attention(key, text, n_new)
        if not gen.generated:
            st.info("No room left in the context window to generate.", icon=":material/info:")
        else:
            g_layer = None if gen_layer < 0 else gen_layer
            cached_chart(("at_genmap", key, text, n_new, g_layer, skip_sink),
                         lambda: generated_heatmap(gen, g_layer, skip_first=skip_sink), key="at_genmap")
            gen_df = pd.DataFrame(gen.steps(g_layer))
            st.dataframe(gen_df, hide_index=True, key="at_gen_table")
            csv_download(gen_df, "generated_attention.csv", key="at_gen_csv")
            st.caption(
                "The first row puts all its weight on the prompt (nothing has been generated yet); later tokens also "
                "read what the model itself just wrote. The probabilities are the full softmax of the model at each step."
                + (f" The first column, {token_label(gen.tokens[0])}, is hidden." if skip_sink and gen.prompt_len > 1
                   else "")
            )

with folded("Encoder, decoder, encoder-decoder", "at_archs", ":material/account_tree:") as is_open:
    if is_open:
        is_enc_dec = bool(getattr(lm.model.config, "is_encoder_decoder", False))
        kind = "an encoder-decoder" if is_enc_dec else "a decoder-only model, like GPT"
        st.markdown(
            "The post names BERT, GPT and T5: three ways to wire the same attention. **BERT** (encoder) lets every token "
            "see every other token, which suits understanding a whole text. **GPT** (decoder) lets a token see only "
            "earlier ones, which is what next-token generation needs. **T5** (encoder-decoder) encodes the input in both "
            "directions, then the decoder writes the output left to right and reads the encoded input through "
            f"**cross-attention**. {info.name} is **{kind}**: its measured attention (right) has exactly "
            f"{facts.future:g} weight above the diagonal."
        )
        cached_chart(("at_masks", key, text), lambda: mask_patterns(facts.average, tokens), key="at_masks")
        illustration_note("The first three panels are illustrations of which tokens may see which; the fourth is "
                          "measured on your prompt (first 12 tokens, average over all layers and heads).")
