"""Summarization: the chat model summarizes the learner's text (streamed, length-controlled, the exact prompt shown),
measured with ROUGE against an editable reference next to a lead-N baseline, and what ROUGE and BLEU both miss."""

import streamlit as st

from components import caches
from components.display import csv_download, empty_text_notice, illustration_note, show_chart, show_error
from components.figures.summaries import misses_figure, misses_table, rouge_figure, rouge_table
from components.frame import ensure_frame
from components.inputs import cleaned, fast_generation_toggle
from components.model import require_lm
from components.state import use_summary_example
from engine.lm import InputError
from engine.summarize import (
    DEFAULT_CAP,
    DEFAULT_WORDS,
    LENGTHS,
    MAX_CAP,
    MAX_SUMMARY_INPUT_TOKENS,
    MAX_SUMMARY_TEXT_CHARS,
    MAX_WORDS,
    MIN_CAP,
    MIN_WORDS,
    MISSES_REFERENCE,
    examples,
)

EXAMPLES = {ex.title: (ex.text, ex.reference) for ex in examples()}
SOURCES = {ex.title: ex.source for ex in examples()}
FIRST = examples()[0]

ensure_frame()
st.title("Summarization")
st.markdown(
    "> The post's hands-on list: *Experiment with: text generation, **summarization**, fine-tuning small models on "
    "your own dataset.* And on instruction tuning: *refine the pretrained model with human feedback, prompts, and "
    "tasks (e.g., question answering, summarization).*"
)
st.markdown(
    "An instruction-tuned model has no special summarization part: you **ask** it, through its chat template, and it "
    "writes a summary one token at a time, exactly as it writes anything else. Then comes the hard part: "
    "**measuring** whether the summary is any good."
)
lm = require_lm()
key = lm.key

# ------------------------------------------------------------------------------------------------ the summary
st.subheader("1. Ask the model for a summary")
st.markdown(
    "Pick an example or paste your own text. The model reads your text, then the request below it, and writes "
    "greedily (always its most likely next token), streamed as it comes. It stops when it writes its end-of-answer "
    f"token or at the token cap. This page reads at most {MAX_SUMMARY_INPUT_TOKENS:,} tokens of text."
)
st.pills("Examples", list(EXAMPLES), key="sm_example", on_change=use_summary_example,
         args=(EXAMPLES, "sm_example", "sm_text", "sm_ref"))
text = cleaned(st.text_area("Text to summarize", value=FIRST.text, key="sm_text", height=200, bind="query-params"),
               limit=MAX_SUMMARY_TEXT_CHARS)
source = next((SOURCES[t] for t, (body, _ref) in EXAMPLES.items() if body == text), None)
st.caption(f":material/info: Source: {source}" if source else ":material/info: Your own text.")
c_len, c_words, c_cap, c_fast = st.columns([2, 2, 2, 1.5], vertical_alignment="center")
length = c_len.radio("Length", LENGTHS, key="sm_len", horizontal=True, bind="query-params",
                     help="The request added after your text.")
words = c_words.slider("N words", MIN_WORDS, MAX_WORDS, DEFAULT_WORDS, step=5, key="sm_words", bind="query-params",
                       disabled=length != "About N words", help="Used by “About N words”.")
cap = c_cap.slider("Token cap", MIN_CAP, MAX_CAP, DEFAULT_CAP, step=8, key="sm_cap", bind="query-params",
                   help="A hard stop: the summary is cut after this many tokens, even mid-sentence.")
with c_fast:
    fast = fast_generation_toggle("sm_fast")

summary = prompt = None
if not text.strip():
    empty_text_notice("a text to summarize")
else:
    try:
        prompt = caches.summary_prompt(key, text, length, words, cap)
    except InputError as err:
        show_error(err)
if prompt is not None:
    summary = caches.finished_summary(key, text, length, words, cap, fast)
    fresh = summary is None
    with st.container(border=True, key="sm_summary_box"):
        st.caption(f"**{lm.info.name}'s summary**")
        if fresh:
            st.write_stream(caches.summary_stream(key, text, length, words, cap, fast))
            summary = caches.finished_summary(key, text, length, words, cap, fast)
        else:
            st.markdown(summary.text or "⟨empty⟩")
    if summary is not None:
        ending = (f"it hit the {cap}-token cap, so it may stop mid-sentence" if summary.stopped_at_cap
                  else "the model ended it itself")
        st.caption(
            f"Your text: **{prompt.text_tokens:,} tokens** → the whole prompt (template, request and all): "
            f"**{len(prompt.ids):,} tokens** → summary: **{summary.n_tokens} tokens, {summary.words} words** "
            + (f"(asked for about {words}; " if length == "About N words" else "(")
            + f"{ending}). Greedy, "
            + ("fast 4-bit mode (close to the exact model, not equal). " if summary.fast else "exact float32 model. ")
            + (f"Generated in {summary.seconds:.1f} s on this shared server." if fresh else
               "Already made on this server for exactly these settings, so it was not generated again "
               f"(it took {summary.seconds:.1f} s the first time).")
        )
    with st.expander("The exact prompt the model read", icon=":material/code:"):
        st.markdown(f"The request added after your text: **{prompt.instruction}** The chat template wraps it in "
                    "`<|im_start|>` / `<|im_end|>` markers and adds the model's default system message; the last line "
                    "opens the assistant's turn, which the model then writes.")
        st.code(prompt.templated, language=None, wrap_lines=True)
    st.caption(
        f":material/memory: Model that ran: **{lm.info.name}**, a decoder-only model (it reads and writes one "
        "stream of tokens). The post also names **T5**, an encoder-decoder (seq2seq) model built for tasks like this "
        "one; it is only available on servers that opt in to hub models and have a network, and this page does not "
        "run it: every summary here comes from the model named above."
    )

# ------------------------------------------------------------------------------------------------ ROUGE
st.subheader("2. Measured: ROUGE against a reference, next to a baseline that just copies")
st.markdown(
    "**ROUGE** is the standard summary metric: it counts how many words (**ROUGE-1**), word pairs (**ROUGE-2**) "
    "and how long an in-order run of words (**ROUGE-L**, longest common subsequence) a summary shares with a "
    "human-written **reference**. *Recall* = share of the reference that the summary covers, *precision* = share of the "
    "summary found in the reference, *F1* = their balance. Computed with Google's "
    "[rouge-score](https://pypi.org/project/rouge-score/) library (lower-cased, stemmed: *debates* counts as "
    "*debate*). Next to it, the oldest baseline in the field: **lead-N**, the text's first sentences, as many as "
    "best match the model summary's length. News puts its key facts first, so copying is hard to beat."
)
reference = cleaned(st.text_area("Reference summary (edit it: it is only one person's summary)",
                                 value=FIRST.reference, key="sm_ref", height=90, bind="query-params"))
if reference in {ref for _body, ref in EXAMPLES.values()} and source is None:
    st.caption(":material/info: This reference was written for one of the examples, not for your text: write one "
               "for your text.")
if summary is None:
    st.info("No summary yet: give the model a text in section 1 to score one.", icon=":material/edit:")
elif not reference.strip():
    empty_text_notice("a reference summary")
else:
    try:
        comp = caches.summary_scores(text, summary.text, reference)
    except ValueError as err:
        show_error(err)
    else:
        m1, m2, m3 = st.columns(3)
        m1.metric("Model ROUGE-L F1", f"{comp.model['rougeL'].f1:.3f}")
        m2.metric("Lead baseline ROUGE-L F1", f"{comp.lead['rougeL'].f1:.3f}")
        m3.metric("ROUGE variants the model wins", f"{comp.wins} of 3")
        if comp.wins == 0:
            st.warning(
                f"**The baseline wins.** Copying the first {comp.baseline.sentences} sentence(s) of the text "
                f"({comp.baseline.words} words, matched to the summary's {summary.words}) scores at least as well as "
                f"the model's summary on every ROUGE variant. A 135M-parameter model often loses to this baseline: "
                "a bigger model, or a model trained on summaries, is what usually beats it.",
                icon=":material/trending_down:")
        elif comp.wins == 3:
            st.success(f"The model beats copying the first {comp.baseline.sentences} sentence(s) on every ROUGE "
                       "variant for this text and this reference.", icon=":material/trending_up:")
        else:
            st.info(f"Mixed: the model wins on {comp.wins} of 3 ROUGE variants against copying the first "
                    f"{comp.baseline.sentences} sentence(s).", icon=":material/balance:")
        show_chart(rouge_figure(comp), key="sm_rouge_chart")
        table = rouge_table(comp)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("precision", "recall", "F1")})
        csv_download(table, "rouge.csv", key="sm_rouge_csv")
        with st.expander("The lead baseline's text", icon=":material/content_copy:"):
            st.text(comp.baseline.text)
st.page_link("pages/evaluation.py", label="Compare: BLEU on the Evaluation page, the metric for translation",
             icon=":material/analytics:")
st.caption("BLEU is built like ROUGE from the other side: it counts the candidate's n-grams found in the references "
           "(precision, with a penalty for being short), ROUGE mostly asks how much of the reference was covered "
           "(recall).")

# ------------------------------------------------------------------------------------------------ blind spots
st.subheader("3. What ROUGE and BLEU both miss")
st.markdown(
    "Both metrics count shared words, not meaning. Below, one reference and four hand-written candidates, each "
    "scored live with both metrics."
)
st.markdown(f"Reference: *{MISSES_REFERENCE}*")
rows = caches.summary_metric_misses(MISSES_REFERENCE)
show_chart(misses_figure(rows), key="sm_misses_chart")
misses = misses_table(rows)
st.dataframe(misses, hide_index=True, width="stretch",
             column_config={**{c: st.column_config.NumberColumn(format="%.2f")
                               for c in ("ROUGE-1 F1", "ROUGE-2 F1", "ROUGE-L F1")},
                            "BLEU": st.column_config.NumberColumn(format="%.1f")})
csv_download(misses, "rouge_bleu_blind_spots.csv", key="sm_misses_csv")
by_label = {r.label: r for r in rows}
para, neg, swap = (by_label["Paraphrase, no shared word"], by_label["Negated"], by_label["Roles swapped"])
st.markdown(
    f"The faithful paraphrase scores ROUGE-1 **{para.rouge1:.2f}** and BLEU **{para.bleu:.1f}**; the sentence that "
    f"says the opposite scores ROUGE-1 **{neg.rouge1:.2f}** and BLEU **{neg.bleu:.1f}**; and with the roles swapped "
    f"(a park approving a council) ROUGE-1 is **{swap.rouge1:.2f}**: the same bag of words, so ROUGE-1 cannot see "
    "the difference. Use these scores to compare systems on many texts, never to judge one summary: meaning needs "
    "embedding-based scores, fact checks, or people."
)
illustration_note("The four candidates and their meaning labels are our examples; every score is computed live.")
