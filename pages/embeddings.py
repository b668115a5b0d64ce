"""Embeddings: the model's real lookup table, similarity, projections, neighbours, analogies and meaning in context."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import cached_chart, csv_download, folded, show_error
from components.figures.bars import neighbour_figure
from components.figures.heatmaps import cosine_heatmap, vector_figure
from components.figures.lines import layer_curves_figure
from components.figures.scatter import context_scatter, projection_figure
from components.frame import ensure_frame
from components.inputs import clean_text, cleaned, prompt_input
from components.model import require_lm
from engine import embeddings as emb
from engine.encoder import MAX_ENCODER_TOKENS, MAX_SENTENCES, VECTOR_METHODS, sentence_lines, short_labels
from engine.loader import ModelLoadError
from engine.registry import ENCODER_DEFAULT_KEY, get_encoder_spec
from engine.text import code_span, html_escape, token_label

DEFAULT_WORDS = (
    "king, queen, man, woman, prince, princess, dog, cat, puppy, kitten, Paris, London, France, Japan, "
    "apple, banana, strawberry, car, bicycle, skateboard"
)
DEFAULT_A = (
    "We sat on the bank of the river and watched the water.\n"
    "The boat drifted toward the muddy bank of the stream.\n"
    "Fish hid under the grassy river bank."
)
DEFAULT_B = (
    "I deposited my salary at the bank this morning.\n"
    "The bank approved her loan application.\n"
    "He opened a savings account at a local bank."
)
DEFAULT_SENTENCES = "\n".join([
    "How do I reset my password?",
    "I forgot my login details.",
    "What time does the shop open?",
    "When are you open on Sundays?",
    "My parcel has not arrived yet.",
])
DEFAULT_SEARCH = "I can't sign in to my account"
ENCODER_LABEL = get_encoder_spec(ENCODER_DEFAULT_KEY).label


ensure_frame()
st.title("Embeddings")
st.markdown(
    "> **Embedding**: turning tokens into numerical vectors.\n\n"
    "After tokenization each token is just an id. The model's first step is a **lookup**: row *id* of a big "
    "table, the **embedding matrix**, becomes the token's vector. The table is learned in training like every other "
    "weight, and tokens used in similar ways end up with vectors pointing in similar directions. Everything below "
    "reads the real model's table and hidden states."
)

lm = require_lm()
key = lm.key
ts = caches.embedding_table(key)
rows_v, dims_d = ts.rows, ts.dims
m1, m2, m3, m4 = st.columns(4)
m1.metric("Rows (vocabulary)", f"{ts.rows:,}")
m2.metric("Dimensions per token", f"{ts.dims:,}")
m3.metric("Numbers in the table", f"{ts.numbers:,}", help=f"{ts.share:.0%} of the model's {lm.info.parameters:,}")
m4.metric("Shared with the output layer", "yes" if ts.tied else "no")
st.caption(
    f"The embedding matrix has shape [{ts.rows:,} × {ts.dims}] and holds {ts.share:.0%} of all parameters. "
    + (
        "This model **ties** it to the output layer: the same rows score every candidate next token at the end."
        if ts.tied
        else "This model has a separate output layer."
    )
)

# ------------------------------------------------------------------------------------------------ one token
st.subheader("One token's vector, and its nearest neighbours")
c_word, c_space, c_k = st.columns([2, 1.3, 1.3], vertical_alignment="bottom")
with c_word:
    word_raw = st.text_input("Word", value="king", key="emb_word", max_chars=40, bind="query-params")
with c_space:
    leading = st.toggle(
        "Mid-sentence form",
        value=True,
        key="emb_space",
        bind="query-params",
        help="Embed ' king' (with its leading space, how a word usually appears in a sentence) rather than 'king' "
        "(start of a line). They are different tokens with different vectors. Also used by the word list and the "
        "analogy below.",
    )
with c_k:
    k = st.slider("Neighbours", 5, 30, 10, key="emb_k", bind="query-params")
word = cleaned(word_raw, 40, one_line=True, quiet=True)
if not word:
    st.info("Type a word to see its vector.", icon=":material/edit:")
else:
    wv = caches.word_vector(key, word, leading)
    rows, labels = caches.word_rows(key, word, leading)
    if wv.n_tokens > 1:
        st.warning(
            f"'{word}' is **{wv.n_tokens} tokens** ({' + '.join(repr(p) for p in wv.pieces)}), so it has no single "
            "row. Below are the rows of its pieces and their **average**, which is what this page uses as the word's "
            "vector. Averaging pieces is a rough stand-in: the model itself never sees an averaged vector, it reads "
            "the pieces one after another and builds the word's meaning in its layers (see *Meaning in context*).",
            icon=":material/call_split:",
        )
    else:
        st.markdown(f"{html_escape(repr(wv.form), quote=False)} is token **{wv.ids[0]:,}**: this is row {wv.ids[0]:,} of the table.")
    cached_chart(("emb_vector", key, word, leading), lambda: vector_figure(rows, [html_escape(x, quote=False) for x in labels]),
                 key="emb_vector")
    vs = wv.summary()
    st.caption(
        f"{dims_d} numbers, real weights (not an illustration). Length {vs.length:.2f}, values from "
        f"{vs.low:.3f} to {vs.high:.3f}; largest in dimensions "
        + ", ".join(str(d) for d in vs.top_dims)
        + ". Single dimensions rarely mean anything on their own: meaning is in the direction of the whole vector."
    )
    near = caches.neighbours(key, word, leading, k)
    cached_chart(("emb_neighbours", key, word, leading, k), lambda: neighbour_figure(near), key="emb_neighbours")
    st.caption(
        f"The {k} entries of all {rows_v:,} whose rows point most nearly the same way (cosine similarity), the word's "
        "own token(s) left out. Expect other spellings (capitalised, plural, no leading space) near the top: the "
        "model learned that they are used alike."
        + (" With an averaged multi-token vector the neighbours are often poor." if wv.n_tokens > 1 else "")
    )
    csv_download(
        pd.DataFrame(
            {
                "rank": [n.rank for n in near],
                "id": [n.token_id for n in near],
                "token": [n.text for n in near],
                "cosine": [round(n.cosine, 4) for n in near],
            }
        ),
        "nearest_neighbours.csv",
        key="emb_near_csv",
    )

# ------------------------------------------------------------------------------------------------ word list
st.subheader("Compare words: similarity and a map")
words_raw = st.text_area(
    "Words (separated by commas or new lines)",
    value=DEFAULT_WORDS,
    key="emb_words",
    height=90,
    bind="query-params",
    help=f"Up to {emb.MAX_WORDS} words. A word that splits into several tokens is the average of its pieces.",
)
words, notes = emb.parse_words(clean_text(words_raw, limit=2000)[0])
for note in notes:
    st.caption(f":material/info: {note}")
p1, p2, p3 = st.columns(3)
with p1:
    method = st.segmented_control(
        "Projection",
        ["PCA", "t-SNE"],
        default="PCA",
        key="emb_proj",
        bind="query-params",
        help="PCA: a linear view along the directions of largest spread. t-SNE: keeps each point's neighbours "
        "close, good at showing clusters, but distances between clusters mean little.",
    )
with p2:
    dims = st.segmented_control("View", ["2D", "3D"], default="2D", key="emb_dims", bind="query-params")
with p3:
    extra = st.slider(
        "Add nearest neighbours per word",
        0,
        5,
        0,
        key="emb_more",
        bind="query-params",
        help="Adds each word's closest vocabulary entries to the map: more points make clusters (and t-SNE) useful.",
    )
if not words:
    st.info("Type at least two words, separated by commas, to compare them.", icon=":material/edit:")
elif len(words) < 2:
    st.info(f"Only one word ('{words[0]}'): add at least one more to compare.", icon=":material/edit:")
else:
    try:
        wmap = caches.word_map(
            key, tuple(words), leading, "tsne" if method == "t-SNE" else "pca", 3 if dims == "3D" else 2, extra
        )
    except ValueError as err:
        show_error(err)
    else:
        split = [w for w in wmap.words if w.n_tokens > 1]
        if split:
            st.caption(
                ":material/call_split: Split into several tokens (their vector is the average of the pieces): "
                + "; ".join(f"{w.word} = {' + '.join(repr(p) for p in w.pieces)}" for w in split)
            )
        labels = [html_escape(w.label, quote=False) for w in wmap.words]
        map_inputs = (key, tuple(words), leading, method, dims, extra)
        cached_chart(("emb_heatmap", *map_inputs), lambda: cosine_heatmap(labels, wmap.sims), key="emb_heatmap")
        (i, j), (lo_i, lo_j) = wmap.extremes()
        st.caption(
            f"Most similar pair: {wmap.words[i].word} and {wmap.words[j].word} ({wmap.sims[i, j]:.2f}); least: "
            f"{wmap.words[lo_i].word} and {wmap.words[lo_j].word} ({wmap.sims[lo_i, lo_j]:.2f}). Cosine 1 means the "
            "same direction, 0 unrelated."
        )
        cached_chart(
            ("emb_projection", *map_inputs),
            lambda: projection_figure(wmap.projection, [html_escape(x, quote=False) for x in wmap.labels], wmap.groups),
            key="emb_projection",
        )
        if wmap.projection.explained:
            kept = sum(wmap.projection.explained)
            st.caption(
                f"A {len(wmap.projection.explained)}-D shadow of {dims_d}-D vectors: these axes keep {kept:.0%} of the "
                "spread, so points that look close may not be. Trust the heatmap for exact similarities."
            )
        else:
            st.caption("t-SNE places neighbours together; the distances between far-apart groups are not meaningful.")
        sim_table = pd.DataFrame(wmap.sims, columns=[w.word for w in wmap.words])
        sim_table.insert(0, "word", [w.word for w in wmap.words])
        sim_table.insert(1, "tokens", [" + ".join(w.pieces) for w in wmap.words])
        csv_download(sim_table, "cosine_similarity.csv", key="emb_sim_csv")

# ------------------------------------------------------------------------------------------------ analogy
st.subheader("Arithmetic with meaning: a − b + c")
st.markdown(
    "The classic test: take *king*, subtract *man*, add *woman*. If the table stores a 'male → female' direction, "
    "the nearest entry should be *queen*. The three input words (and their other spellings) are left out of the "
    "answers, otherwise *king* or *woman* usually wins."
)
a1, a2, a3, a4 = st.columns(4)
a = cleaned(a1.text_input("a", value="king", key="emb_a", max_chars=40, bind="query-params"), 40, one_line=True, quiet=True)
b = cleaned(a2.text_input("− b", value="man", key="emb_b", max_chars=40, bind="query-params"), 40, one_line=True, quiet=True)
c = cleaned(a3.text_input("+ c", value="woman", key="emb_c", max_chars=40, bind="query-params"), 40, one_line=True, quiet=True)
expected = cleaned(
    a4.text_input("Expected (optional)", value="queen", key="emb_expect", max_chars=40, bind="query-params"), 40, one_line=True, quiet=True
)
if not (a and b and c):
    st.info("Fill in a, b and c, for example Paris − France + Italy.", icon=":material/edit:")
else:
    res = caches.analogy(key, a, b, c, expected, leading)
    say = {"good": st.success, "weak": st.warning, "poor": st.error}[res.quality]
    say(f"**{res.quality.capitalize()}.** {res.verdict}", icon=":material/rule:")
    cached_chart(("emb_analogy", key, a, b, c, expected, leading),
                 lambda: neighbour_figure(res.neighbours, highlight=expected), key="emb_analogy")
    st.caption(
        f"Nearest to '{c}' alone, for comparison: "
        + ", ".join(repr(n.text) for n in res.baseline[:5])
        + ". When the two lists agree, the arithmetic did little. Analogies work for some relations (gender, "
        "comparatives) and fail for many others in a model this small: try Paris − France + Italy."
    )

# ------------------------------------------------------------------------------------------------ in context
st.subheader("Meaning in context: the same word, different sentences")
st.markdown(
    "The lookup table gives **one** vector per token, whatever the sentence. The layers then mix in context. Below, "
    "the same word is followed through every layer in two groups of sentences with different meanings. At layer 0 "
    "(the lookup) all copies are identical; watch the two meanings drift apart."
)
ctx_word = cleaned(
    st.text_input("Word to follow", value="bank", key="emb_cword", max_chars=40, bind="query-params"), 40, one_line=True, quiet=True
)
g1, g2 = st.columns(2)
text_a = g1.text_area(
    "Meaning A: one sentence per line", value=DEFAULT_A, key="emb_ctx_a", height=120, bind="query-params"
)
text_b = g2.text_area(
    "Meaning B: one sentence per line", value=DEFAULT_B, key="emb_ctx_b", height=120, bind="query-params"
)
sent_a = tuple(emb.split_sentences(clean_text(text_a, limit=2000)[0]))
sent_b = tuple(emb.split_sentences(clean_text(text_b, limit=2000)[0]))
layer = st.slider("Layer", 0, lm.info.layers, 6, key="emb_layer", bind="query-params", help="0 = the embedding lookup.")
if not ctx_word:
    st.info("Type the word to follow through the layers.", icon=":material/edit:")
elif not (sent_a or sent_b):
    st.info("Write at least two sentences that use the word.", icon=":material/edit:")
else:
    try:
        with st.spinner("Running each sentence through the model…"):
            ctx = caches.contextual(key, ctx_word, sent_a, sent_b)
    except ValueError as err:
        show_error(err)
    else:
        for sentence, reason in ctx.skipped:
            st.caption(f":material/block: Skipped “{sentence[:80]}”: {reason}")
        split = [s for s in ctx.sentences if len(s.positions) > 1]
        if split:
            st.caption(
                f":material/call_split: '{ctx_word}' is {len(split[0].positions)} tokens here "
                f"({' + '.join(repr(p) for p in split[0].pieces)}); its vector is taken at the **last** piece, the "
                "only one that has seen the whole word in a left-to-right model."
            )
        curves = ctx.group_curves()
        ctx_inputs = (key, ctx_word, sent_a, sent_b, layer)
        cached_chart(("emb_layers", *ctx_inputs), lambda: layer_curves_figure(curves, layer), key="emb_layers")
        gap = ctx.gap(layer)
        if gap is not None:
            st.caption(
                f"At layer {layer}: same meaning {gap.within:.2f}, different meaning {gap.across:.2f} (gap "
                f"{gap.gap:+.2f}). The gap is largest at layer {gap.best_layer} ({gap.best_gap:+.2f}). The last point is after the model's final normalisation, a differently scaled "
                "space. Vectors in a language model all point roughly the same way, so even unrelated uses stay well "
                "above 0: compare the lines, not the absolute values."
            )
        else:
            st.caption("Give sentences for both meanings to compare same-meaning and different-meaning pairs.")
        per_layer = pd.DataFrame({"layer": list(range(ctx.layers))} | dict(curves)).round(4)
        csv_download(per_layer, "similarity_per_layer.csv", key="emb_layers_csv")
        with folded("Every sentence at this layer: similarities and a map", "emb_ctx_open",
                    ":material/scatter_plot:") as is_open:
            if is_open:
                h1, h2 = st.columns(2)
                names = [f"{i + 1} · {'AB'[s.group]}" for i, s in enumerate(ctx.sentences)]
                texts = [html_escape(f"{i + 1}. {s.text}", quote=False) for i, s in enumerate(ctx.sentences)]
                with h1:
                    cached_chart(
                        ("emb_ctx_heatmap", *ctx_inputs),
                        lambda: cosine_heatmap(names, ctx.sims[layer].numpy(), title=f"Cosine at layer {layer}", hover=texts),
                        key="emb_ctx_heatmap",
                    )
                with h2:
                    proj = caches.context_projection(key, ctx_word, sent_a, sent_b, layer)
                    cached_chart(("emb_ctx_scatter", *ctx_inputs), lambda: context_scatter(proj, ctx.sentences),
                                 key="emb_ctx_scatter")
                st.caption(
                    "Sentences are numbered in order: meaning A first, then B. Each point on the right is one sentence's "
                    "vector for the word at this layer, flattened with PCA. Hover for the sentence."
                )

# ------------------------------------------------------------------------------------------------ your prompt
st.subheader("Your prompt, token by token")
st.markdown(
    "The prompt you carry from page to page, as the model holds it: each token starts as its row of the table "
    "(layer 0) and is reshaped by every layer. The heatmap compares the tokens' vectors with each other at the layer "
    "you pick."
)
prompt = prompt_input(help="The prompt shared by every page: Home, Tokenization, Next-token and the others use it too.")
p_layer = st.slider(
    "Layer",
    0,
    lm.info.layers,
    0,
    key="emb_prompt_layer",
    bind="query-params",
    help=f"0 = the embedding lookup; {lm.info.layers} = after the last layer and the final normalisation.",
)
if not prompt:
    st.info("Type a prompt above to see its tokens as vectors.", icon=":material/edit:")
else:
    try:
        with st.spinner("Running the prompt through the model…"):
            pv = caches.prompt_vectors(key, prompt)
    except ValueError as err:
        show_error(err)
    else:
        n = len(pv.ids)
        if pv.total > n:
            st.caption(
                f":material/content_cut: Your prompt is {pv.total:,} tokens; only the first {n} are compared "
                "(a bigger heatmap is unreadable). Their vectors are exactly what the whole prompt gives them: each "
                "token only sees the ones before it."
            )
        names = [token_label(t) for t in pv.pieces]
        labels = [html_escape(x, quote=False) for x in names]  # for the chart
        shown = [code_span(x) for x in names]  # for the captions
        norms = pv.norms[p_layer]
        hover = [f"#{i} {label} · length {norms[i]:.1f}" for i, label in enumerate(labels)]
        where = "the lookup table rows" if p_layer == 0 else f"after layer {p_layer}"
        cached_chart(
            ("emb_prompt_heatmap", key, pv.ids, p_layer),  # the figure depends on nothing else
            lambda: cosine_heatmap(labels, pv.sims[p_layer], title=f"Cosine between your tokens: {where}", hover=hover),
            key="emb_prompt_heatmap",
        )
        notes = []
        pair = pv.repeated_token()
        if pair is not None:
            i, j = pair
            same = f"{shown[i]} appears at positions {i} and {j}: cosine {pv.sims[0][i, j]:.2f} at layer 0, the same row"
            if p_layer == 0:
                notes.append(same + ". Move the slider to watch the two copies drift apart.")
            else:
                notes.append(
                    f"{same}, and {pv.sims[p_layer][i, j]:.2f} here: each copy has mixed in different context, so the "
                    "model no longer holds them alike."
                )
        elif n > 1:
            notes.append(
                "At layer 0 each token is its table row whatever the sentence; type a word twice to see one token "
                "get two different vectors in later layers."
            )
        long = pv.long_vectors(p_layer)
        if long:
            listed = ", ".join(f"{shown[i]} (#{i}, {r:.0f}× the median length)" for i, r in long)
            notes.append(
                f"Unusually long vectors at this layer: {listed}. The model parks huge values on a few positions"
                + (", the first among them," if long[0][0] == 0 else "")
                + " and uses them as an 'attention sink' (see Attention & Transformers), so they look unlike the rest."
            )
        best = pv.most_similar_pair(p_layer, skip={i for i, _ in long})
        if best is not None:
            i, j = best
            notes.append(
                f"Most similar pair of different tokens here: {shown[i]} and {shown[j]} ({pv.sims[p_layer][i, j]:.2f})"
                + (", leaving out the long vectors." if long else ".")
            )
        notes.append(
            "Hover a cell for both tokens; the vector lengths are in the hover too. Vectors in a language model all "
            "point roughly the same way, so compare the cells with each other rather than with 0."
        )
        st.caption(" ".join(notes))
        sim_table = pd.DataFrame(pv.sims[p_layer], columns=[f"{i} {t}" for i, t in enumerate(pv.pieces)]).round(4)
        sim_table.insert(0, "token", pv.pieces)
        sim_table.insert(0, "position", list(range(n)))
        csv_download(sim_table, f"prompt_cosine_layer_{p_layer}.csv", key="emb_prompt_csv")

# ------------------------------------------------------------------------------------------------ sentences
st.subheader("From token vectors to sentence vectors")
st.markdown(
    "Everything above is one vector **per token**. Search, clustering and retrieval for chatbots need one vector "
    f"**per text**. An encoder trained for that, {ENCODER_LABEL} (a small BERT, the Encoders page shows it reading), "
    "averages its last layer's token vectors and scales the result to length 1; texts with the same meaning then "
    "point the same way, even when they share no word. Type a few sentences and a query: the encoder ranks them by "
    "cosine, and the heatmap compares every pair."
)
sents_raw = st.text_area("Sentences, one per line", value=DEFAULT_SENTENCES, key="emb_sents", height=140,
                         bind="query-params", help=f"At most {MAX_SENTENCES} sentences of at most "
                         f"{MAX_ENCODER_TOKENS} WordPiece tokens each.")
sentences = tuple(sentence_lines(cleaned(sents_raw)))
s_query = cleaned(st.text_input("Search for", value=DEFAULT_SEARCH, key="emb_squery", bind="query-params"),
                  one_line=True)
s_method = st.selectbox("Vectors for the heatmap", list(VECTOR_METHODS), format_func=VECTOR_METHODS.get,
                        key="emb_svec", bind="query-params",
                        help="Switching only changes the view: all three are computed once for your sentences.")
if len(sentences) < 2:
    st.info("Type at least two sentences, one per line, to search and compare them.", icon=":material/edit:")
else:
    try:
        hits = caches.sentence_search(ENCODER_DEFAULT_KEY, s_query, sentences) if s_query else None
        sims = caches.sentence_similarities(ENCODER_DEFAULT_KEY, key, sentences)
    except ModelLoadError as err:
        st.warning(f"The encoder is not available: {err.reason} {err.fix}", icon=":material/warning:")
    except ValueError as err:
        show_error(err)
    else:
        if hits is None:
            st.info("Type something to search for.", icon=":material/edit:")
        else:
            st.dataframe(pd.DataFrame([{"rank": h.rank, "sentence": h.sentence, "cosine to the query": round(h.score, 4)}
                                       for h in hits]), hide_index=True, key="emb_hits")
            st.caption(f"Best match for {s_query!r}: {hits[0].sentence!r} (cosine {hits[0].score:.2f}), found by "
                       "meaning: the encoder compared one vector per text, not the words.")
        cached_chart(("emb_sent_sims", key, sentences, s_method),
                     lambda: cosine_heatmap([html_escape(x) for x in short_labels(sentences)],
                                            sims.matrices[s_method].double().numpy(), title=VECTOR_METHODS[s_method],
                                            hover=[html_escape(x) for x in sentences]),
                     key="emb_sent_sims")
        st.markdown(
            "**Why a token vector is not a sentence vector.** Any model gives a vector per token, so why not take one "
            f"of those? {lm.info.name}'s last token has read the whole text, but it was trained to predict the next "
            "word: its vectors crowd into one direction and every pair looks alike. The encoder's [CLS] token alone "
            "was not trained to stand for the text in this model either. The table measures it on your sentences:"
        )
        st.dataframe(pd.DataFrame([{"vectors": VECTOR_METHODS[m], "lowest cosine": round(sims.spread(m)[0], 3),
                                    "highest cosine": round(sims.spread(m)[1], 3)} for m in VECTOR_METHODS]),
                     hide_index=True, key="emb_spread")
        st.caption("Cosine between two different sentences, lowest and highest. A useful sentence vector spreads "
                   "them wide: high for paraphrases, near 0 for unrelated sentences.")
