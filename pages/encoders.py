"""Encoders, decoders, encoder-decoders: SmolLM2 (decoder), all-MiniLM-L6-v2 (encoder) and a small encoder-decoder
trained on this server, read side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import caches
from components.display import cached_chart, show_chart, show_error, watch_job
from components.figures.heatmaps import cosine_heatmap, readers_figure, weights_heatmap
from components.figures.html import chips_html, wordpiece_chips_html
from components.figures.lines import training_loss_figure
from components.frame import end_page, ensure_frame
from components.inputs import cleaned
from components.model import require_lm
from engine import seq2seq as s2s
from engine.encoder import (
    MAX_ENCODER_TOKENS,
    MAX_SENTENCES,
    VECTOR_METHODS,
    future_mass,
    layer_average,
    sentence_lines,
    short_labels,
)
from engine.hub_models import EXAMPLES as HUB_EXAMPLES
from engine.hub_models import MASK_MARK, TASKS, code_snippet, fits, hub_specs
from engine.loader import ModelLoadError
from engine.registry import ENCODER_DEFAULT_KEY, HUB_MODELS_ENV, get_hub_spec, hub_models_enabled
from engine.text import html_escape, token_label

ENC = ENCODER_DEFAULT_KEY
S2S_SEED = 0
DEFAULT_SENTENCE = "The bank by the river was closed."
DEFAULT_TOKENIZE = "Unbelievably, Transformers tokenize emoji 😀 differently!"
DEFAULT_SENTENCES = "\n".join([
    "A man is playing a guitar.",
    "Someone is strumming an instrument.",
    "The stock market fell sharply today.",
    "Share prices dropped this morning.",
    "A cat sleeps on the warm sofa.",
])
DEFAULT_QUERY = "music performance"
#: One input box per task of the post's models (each keeps its own text when the learner switches model).
HUB_TEXT_KEYS = {"generate": "enc_hub_gen", "fill-mask": "enc_hub_mask", "text2text": "enc_hub_t2t"}
HUB_HELP = {
    "generate": "GPT-2 continues this text, always taking the most likely next token.",
    "fill-mask": f"Write {MASK_MARK} once where the missing word goes; BERT reads the words on both sides.",
    "text2text": "Start with what T5 should do: 'translate English to German: …' or 'summarize: …'.",
}

ensure_frame()
st.title("Encoders, decoders, encoder-decoders")
st.markdown(
    "The post says: learn the Transformer concept (**attention, encoder-decoder**) and use Hugging Face Transformers "
    "to load models like **GPT-2, BERT or T5**. Those three names are the three ways of wiring the same attention. "
    "On this page all three families run live: SmolLM2 as the decoder (a GPT), all-MiniLM-L6-v2 as the encoder "
    "(a BERT), and a small encoder-decoder (the shape of T5) that this server trains in front of you."
)
st.dataframe(pd.DataFrame([
    {"family": "Decoder-only", "in the post": "GPT-2 (and GPT-4, Llama)", "a token reads": "itself and earlier tokens",
     "good at": "generating text, one token after another", "live here": "SmolLM2-135M-Instruct"},
    {"family": "Encoder-only", "in the post": "BERT", "a token reads": "every token, before and after",
     "good at": "understanding: search, classification, similarity", "live here": "all-MiniLM-L6-v2 (a 6-layer BERT)"},
    {"family": "Encoder-decoder", "in the post": "T5", "a token reads": "encoder: all input; decoder: earlier output "
     "+ all input (cross-attention)", "good at": "turning one text into another: translation, summarization",
     "live here": "a 2 + 2-layer model trained below on dates"},
]), hide_index=True, key="enc_families")

lm = require_lm()
try:
    encoder = caches.encoder_model(ENC)
except ModelLoadError as err:
    st.error(f"**The encoder could not be loaded.** {err.reason}\n\n**How to fix it:** {err.fix}",
             icon=":material/error:")
    end_page()
einfo = encoder.info

# ------------------------------------------------------------------------------------------------- two readers
st.header("1. The same sentence, two readers")
st.markdown(
    f"Type a sentence. **{lm.info.name}** (decoder) and **{einfo.name}** (encoder) each read it once, and we average "
    f"their attention over every layer and head ({lm.info.layers} × {lm.info.heads} for the decoder, {einfo.layers} × "
    f"{einfo.heads} for the encoder). Rows are the tokens reading, columns the tokens read. Nothing is drawn by hand: "
    "an empty cell is a weight the model really gave 0."
)
sentence = cleaned(st.text_input("Sentence", value=DEFAULT_SENTENCE, key="enc_text", bind="query-params"),
                   one_line=True)
if not sentence:
    st.info("Type a sentence above to see both models read it.", icon=":material/edit:")
else:
    try:
        with st.spinner("Both models are reading the sentence…"):
            dec_tokens, dec_att = caches.decoder_reading(lm.key, sentence)
            erun = caches.encoder_run(ENC, sentence)
    except ValueError as err:
        show_error(err)
    else:
        dec_future, enc_future = future_mass(dec_att), future_mass(erun.attentions)
        cached_chart(("enc_readers", lm.key, ENC, sentence), lambda: readers_figure([
            (f"Decoder ({lm.info.name}): causal", layer_average(dec_att).numpy(), dec_tokens),
            (f"Encoder ({einfo.name}): bidirectional", layer_average(erun.attentions).numpy(), erun.pieces),
        ]), key="enc_readers")
        c1, c2 = st.columns(2)
        c1.metric("Decoder: weight on later tokens", f"{dec_future:.1%}",
                  help="Share of all attention weight above the diagonal, over every layer, head and token.")
        c2.metric("Encoder: weight on later tokens", f"{enc_future:.1%}",
                  help="Share of all attention weight above the diagonal, over every layer, head and token.")
        st.caption(
            f"Measured on your sentence: the decoder puts exactly {dec_future:g} of its weight on later tokens (the "
            f"causal mask), the encoder {enc_future:.1%}. A decoder must not peek at the word it is about to predict; "
            "an encoder is never asked to predict the next word, so each token may use the whole sentence, which is "
            "why 'bank' can be read in the light of 'river' that comes after it. The two models also cut the text "
            "differently (next section)."
        )

# ------------------------------------------------------------------------------------------------- tokenization
st.header("2. Tokenization: WordPiece vs byte-level BPE")
st.markdown(
    "BERT-family encoders use **WordPiece**: the text is lower-cased (for this model), split into words, and each "
    "word into the longest pieces of a 30,522-entry vocabulary; a piece that continues a word starts with `##`. "
    "`[CLS]` opens every text and `[SEP]` closes it; a character it cannot spell becomes `[UNK]`. SmolLM2 uses "
    "**byte-level BPE**: a space belongs to the token after it, case is kept, and anything (emoji too) can be spelt "
    "from bytes, so nothing is ever unknown."
)
tok_text = cleaned(st.text_input("Text to tokenize", value=DEFAULT_TOKENIZE, key="enc_tok", bind="query-params"),
                   one_line=True)
if not tok_text:
    st.info("Type a text above to compare the two tokenizers.", icon=":material/edit:")
else:
    try:
        cmp = caches.tokenizer_comparison(ENC, lm.key, tok_text)
    except ValueError as err:
        show_error(err)
    else:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Words (split at spaces)", cmp.words)
        c2.metric("WordPiece tokens", cmp.wordpiece_content, help="Without [CLS] and [SEP].")
        c3.metric("BPE tokens (SmolLM2)", len(cmp.bpe))
        c4.metric("[UNK] in WordPiece", cmp.unknown)
        st.markdown(f"**WordPiece ({einfo.name})**, {len(cmp.wordpiece)} tokens with [CLS] and [SEP]:")
        st.html(wordpiece_chips_html(cmp.wordpiece, cmp.wordpiece_ids))
        st.markdown(f"**Byte-level BPE ({lm.info.name})**, {len(cmp.bpe)} tokens (· is a space):")
        st.html(chips_html(cmp.bpe, cmp.bpe_ids, show_whitespace=True))
        st.caption(
            f"{cmp.continued} WordPiece token(s) continue a word (dashed, `##`). "
            + ("The encoder lower-cased the text first: 'Paris' and 'paris' are the same to it. " if cmp.lowercased
               else "")
            + ("It had no piece for some characters and wrote [UNK]: that information is gone before the model "
               "reads anything. " if cmp.unknown else "")
            + "Token ids mean nothing across models: each has its own vocabulary."
        )

# ------------------------------------------------------------------------------------------------- embeddings
st.header("3. Sentence embeddings: search by meaning")
st.markdown(
    f"The encoder turns a whole text into **one vector of {einfo.hidden_size} numbers**: it averages its last layer's "
    "token vectors and scales the result to length 1. all-MiniLM-L6-v2 was trained so that texts with the same "
    "meaning get vectors pointing the same way, so the cosine between two vectors (1 = same direction, 0 = unrelated) "
    "measures closeness of meaning. That is what semantic search, clustering and retrieval for chatbots (RAG) run on."
)
raw_sents = cleaned(st.text_area("Sentences, one per line", value=DEFAULT_SENTENCES, key="enc_sents", height=150,
                                 bind="query-params"))
sentences = tuple(sentence_lines(raw_sents))
query = cleaned(st.text_input("Search for", value=DEFAULT_QUERY, key="enc_query", bind="query-params"),
                one_line=True)
st.caption(f"At most {MAX_SENTENCES} sentences of at most {MAX_ENCODER_TOKENS} WordPiece tokens each are read.")
if len(sentences) < 2:
    st.info("Type at least two sentences, one per line.", icon=":material/edit:")
elif not query:
    st.info("Type something to search for.", icon=":material/edit:")
else:
    try:
        hits = caches.sentence_search(ENC, query, sentences)
    except ValueError as err:
        show_error(err)
    else:
        st.dataframe(pd.DataFrame([{"rank": h.rank, "sentence": h.sentence, "cosine to the query": round(h.score, 4)}
                                   for h in hits]), hide_index=True, key="enc_hits")
        st.caption(f"Best match for {query!r}: {hits[0].sentence!r} (cosine {hits[0].score:.2f}). The ranking uses "
                   "meaning, not shared words: try a query that shares no word with the sentence you want.")

st.subheader("Why a token vector is not a sentence vector")
st.markdown(
    "Any Transformer gives a vector per token, so why not take one of those as the sentence's vector? Compare three "
    "choices on your sentences. The encoder's **[CLS] token** alone was never trained to stand for the sentence in "
    "this model; the **decoder's last token** has read the whole text but was trained to predict the next word, so "
    "its vectors crowd into one direction and everything looks similar. The **mean-pooled encoder vector** is what "
    "this model was trained for: it spreads unrelated sentences apart."
)
method = st.selectbox("Vectors to compare", list(VECTOR_METHODS), format_func=VECTOR_METHODS.get, key="enc_vec",
                      bind="query-params")
if len(sentences) < 2:
    st.info("Type at least two sentences above, one per line, to compare their vectors.", icon=":material/edit:")
else:
    try:
        sims = caches.sentence_similarities(ENC, lm.key, sentences)
    except ValueError as err:
        show_error(err)
    else:
        cached_chart(("enc_sims", lm.key, ENC, sentences, method),
                     lambda: cosine_heatmap([html_escape(s) for s in short_labels(sentences)],
                                            sims.matrices[method].double().numpy(), title=VECTOR_METHODS[method],
                                            hover=[html_escape(s) for s in sentences]),
                     key="enc_sims")
        st.dataframe(pd.DataFrame([{"vectors": VECTOR_METHODS[m], "lowest cosine": round(sims.spread(m)[0], 3),
                                    "highest cosine": round(sims.spread(m)[1], 3)} for m in VECTOR_METHODS]),
                     hide_index=True, key="enc_spread")
        st.caption("Cosine between two different sentences, lowest and highest, for each kind of vector. A useful "
                   "sentence vector gives a wide range: high for paraphrases, near 0 for unrelated sentences.")

# ------------------------------------------------------------------------------------------------- the post's models
st.header("4. The post's models: GPT-2, BERT, T5")
st.markdown(
    "The post names three models to load with Hugging Face Transformers. Each is one family, and each is loaded with "
    "the **head** its training gave it, so each does a different job: **GPT-2** (decoder) continues a text, **BERT** "
    "(encoder, with its masked-language-model head) fills in a hidden word using the words on both sides, **T5** "
    "(encoder-decoder) reads a whole text and writes another one: a translation or a summary. The encoder above, "
    f"{einfo.name}, is a BERT without that head: it makes vectors, so this page never asks it to fill a blank."
)
hub_on = hub_models_enabled()
st.dataframe(pd.DataFrame([{
    "model": s.label, "family": s.family, "job here": TASKS[s.task], "hub repository": s.hub_id,
    "does not apply to": "; ".join(f"{TASKS[t]}: {fits(s.family, t)[1]}" for t in TASKS if not fits(s.family, t)[0]),
    "on this server": "opted in" if s.key in hub_on else "not available here",
} for s in hub_specs()]), hide_index=True, key="enc_hub_table")
hub_key = st.segmented_control("Model", [s.key for s in hub_specs()], default=hub_specs()[0].key,
                               format_func=lambda k: get_hub_spec(k).label, key="enc_hub", bind="query-params")
hub_spec = get_hub_spec(hub_key or hub_specs()[0].key)
if hub_spec.key not in hub_on:
    st.info(
        f"**{hub_spec.label} is not available here.** It comes from the Hugging Face hub "
        f"(`{hub_spec.hub_id}`, {hub_spec.params_label} weights), and this server does not download models: the app "
        "runs offline. A server with network access can opt in by starting with "
        f"`{HUB_MODELS_ENV}=1`; then this section runs it live. The code below does the same thing on any machine "
        "that can reach the hub.", icon=":material/cloud_off:")
else:
    hub, hub_err = caches.hub_model(hub_spec.key)
    if hub is None:
        st.warning(f"{hub_err.reason} {hub_err.fix}", icon=":material/cloud_off:")
    else:
        hub_text = cleaned(st.text_input(f"Input for {hub_spec.label} ({TASKS[hub_spec.task]})",
                                         value=HUB_EXAMPLES[hub_spec.task], key=HUB_TEXT_KEYS[hub_spec.task],
                                         bind="query-params", help=HUB_HELP[hub_spec.task]), one_line=True)
        if not hub_text:
            st.info(f"Type an input, e.g. {HUB_EXAMPLES[hub_spec.task]!r}.", icon=":material/edit:")
        else:
            try:
                res = caches.hub_run(hub_spec.key, hub_text)
            except ValueError as err:
                show_error(err)
            else:
                st.markdown(f"**{hub_spec.label}** ({hub.info.model_class}, {hub.info.parameters:,} weights) read "
                            f"{res.input_tokens} tokens and wrote:")
                st.code(res.output or "(nothing)", language=None, wrap_lines=True)
                if res.candidates:
                    st.dataframe(pd.DataFrame([{"word": w, "probability": round(p, 4)} for w, p in res.candidates]),
                                 hide_index=True, key="enc_hub_fill")
                st.caption(f"Computed just now from {hub.info.source}. " + (
                    "The probabilities are the masked-LM head's softmax at the [MASK] position; the sentence uses "
                    "the top word." if res.candidates else
                    "Greedy decoding (always the most likely next token), so the same input gives the same output."))
st.caption(":material/code: Code to run elsewhere (it downloads the model from the hub); this page does not run it.")
st.code(code_snippet(hub_spec), language="python")

# ------------------------------------------------------------------------------------------------- encoder-decoder
st.header("5. An encoder-decoder, trained here")
cfg = s2s.TrainConfig(seed=S2S_SEED)
st.markdown(
    "T5 and the original Transformer of *Attention is all you need* have both halves: an **encoder** reads the whole "
    "input (bidirectional), a **decoder** writes the output one token at a time (causal), and at every step the "
    "decoder also reads the encoder's vectors through **cross-attention**. A pretrained one like T5 cannot be "
    "downloaded on an offline server, so this server trains a small one from scratch: "
    f"{cfg.layers} encoder + {cfg.layers} decoder layers, "
    f"{cfg.heads} heads, {cfg.d_model}-number vectors, one token per character. Its task can be checked by eye: "
    "turn a date written out, like *3 May 2024*, into the ISO form *2024-05-03*."
)
job = caches.seq2seq_training(S2S_SEED)
if not job.started:
    st.button("Train the encoder-decoder on this server", key="s2s_train", icon=":material/model_training:",
              type="primary", on_click=job.start,
              help=f"{cfg.steps} steps of {cfg.batch} random dates, seeded: the same run every time. The first person "
              "to press it trains it for everyone on this server.")
    st.caption(f"Training takes about half a minute on 2 CPU cores (the {cfg.held_out} test dates are never shown to "
               "the model while it learns).")
    end_page()
if job.running:  # the run is shared by every session; each session draws its own progress
    watch_job(job, lambda j: f"Training: step {j.step:,} of {j.total:,}, {j.elapsed:.0f} s",
              lambda values: training_loss_figure(values, cfg.steps), key="s2s")
if job.error:
    st.error(f"Training failed: {job.error}", icon=":material/error:")
    end_page()
model = job.result
show_chart(training_loss_figure(model.losses, cfg.steps, "Training loss of this server's run"), key="s2s_loss")
c1, c2, c3 = st.columns(3)
c1.metric("Held-out accuracy", f"{model.accuracy:.1%}",
          help=f"Exact-match on {len(model.held_out)} dates the model never saw while training.")
c2.metric("Training time", f"{model.train_seconds:.0f} s")
c3.metric("Weights", f"{model.parameters:,}")
st.caption(
    f"Loss from {model.losses[0]:.2f} to {model.losses[-1]:.3f} nats per character in {cfg.steps} steps. Of "
    f"{len(model.held_out)} dates between {s2s.FIRST_YEAR} and {s2s.LAST_YEAR} kept out of training, it converts "
    f"{model.accuracy:.1%} exactly right."
)

st.subheader("Watch it translate")
src = cleaned(st.text_input("Date written out", value="3 May 2024", key="s2s_in", bind="query-params",
                            help=f"Day, month name, year between {s2s.FIRST_YEAR} and {s2s.LAST_YEAR}: e.g. 14 July "
                            "1989. Other inputs run too; see what happens."),
              one_line=True)
if not src:
    st.info("Type a date above, e.g. 25 December 2031.", icon=":material/edit:")
    end_page()
try:
    tr = caches.seq2seq_translation(S2S_SEED, src)
except ValueError as err:
    show_error(err)
    end_page()
expected = s2s.expected_output(src)
if expected is None:
    st.warning(f"The model wrote **{tr.output or '(nothing)'}**. Your input is not a real date written like "
               "'3 May 2024', so there is no right answer to check: the model never saw anything like it.",
               icon=":material/help:")
elif tr.output == expected:
    st.success(f"The model wrote **{tr.output}**: correct.", icon=":material/check_circle:")
else:
    st.error(f"The model wrote **{tr.output}**; the right answer is **{expected}**.", icon=":material/cancel:")
if expected is not None and not s2s.seen_years(src):
    st.caption(f":material/info: It only ever saw years {s2s.FIRST_YEAR}–{s2s.LAST_YEAR} while training: a year "
               "outside that range tests whether it learned to copy digits or just memorised years.")

c1, c2 = st.columns(2)
s_layer = c1.selectbox("Layer", [-1, *range(cfg.layers)], key="s2s_layer", bind="query-params",
                       format_func=lambda i: "all layers (average)" if i < 0 else f"layer {i}")
s_head = c2.selectbox("Head", [-1, *range(cfg.heads)], key="s2s_head", bind="query-params",
                      format_func=lambda h: f"all {cfg.heads} heads (average)" if h < 0 else f"head {h}")


writes = [f"{i}: writes {token_label(c)}" for i, c in enumerate(tr.chosen)]
src_labels = [f"{i}: {token_label(c)}" for i, c in enumerate(tr.src_tokens)]
st.markdown("**Cross-attention**: each output character (row) reading the encoded input (columns).")
cached_chart(("s2s_cross", S2S_SEED, src, s_layer, s_head),
             lambda: weights_heatmap(layer_average(tr.cross, s_layer, s_head).numpy(), writes, src_labels, None, "decoder position (what it writes)",
                                     "input character (encoder)"), key="s2s_cross")
st.caption("Look for the year's digits reading the year, the month's digits reading the month's name, the day's "
           "digits reading the day. Rows sum to 1.")
c1, c2 = st.columns(2)
with c1:
    st.markdown("**Encoder self-attention** (bidirectional)")
    cached_chart(("s2s_enc", S2S_SEED, src, s_layer, s_head),
                 lambda: weights_heatmap(layer_average(tr.encoder, s_layer, s_head).numpy(), src_labels, src_labels), key="s2s_enc")
with c2:
    st.markdown("**Decoder self-attention** (causal)")
    cached_chart(("s2s_dec", S2S_SEED, src, s_layer, s_head),
                 lambda: weights_heatmap(layer_average(tr.decoder, s_layer, s_head).numpy(), writes, writes), key="s2s_dec")
st.caption(
    f"Measured weight on later positions: encoder {future_mass(tr.encoder):.1%}, decoder {future_mass(tr.decoder):g} "
    "(its causal mask). The decoder's rows are the positions that chose each output character; position 0 reads "
    "only the start token."
)
