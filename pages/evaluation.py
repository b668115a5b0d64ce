"""Evaluation: perplexity on the user's text, BLEU of the model's translation against editable references, and what
BLEU misses."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import csv_download, empty_text_notice, illustration_note, show_chart, show_error
from components.figures.bars import candidates_figure, precision_figure
from components.figures.html import highlight_html, match_legend_html, surprise_html, surprise_legend_html
from components.figures.tables import ngram_table
from components.frame import ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from engine.evaluation import MAX_REFERENCES, TASK_TEMPLATE, bleu_or_message, lowest_perplexity, parse_references
from engine.lm import InputError
from engine.scoring import text_start_name

DEFAULT_A = "The capital of France is Paris. It is famous for the Eiffel Tower."
DEFAULT_B = "The capital of France is Rome. It is famous for the Eiffel Tower."
DEFAULT_SOURCE = "Le chat dort sur le canapé."
DEFAULT_REFS = "The cat is sleeping on the sofa.\nThe cat sleeps on the couch."
REPETITIVE = " ".join(["Paris is in France."] * 8)
PARAPHRASE_REF = "The cat is sitting on the mat."
#: Hand-written candidates (label, text, keeps the reference's meaning); their scores are computed live.
PARAPHRASES = (
    ("Exact copy", "The cat is sitting on the mat.", True),
    ("Paraphrase", "A kitten rests on the rug.", True),
    ("Negation", "The cat is not sitting on the mat.", False),
    ("Other animal", "The dog is sitting on the mat.", False),
    ("Roles swapped", "The mat is sitting on the cat.", False),
)

ensure_frame()
st.title("Evaluation: perplexity and BLEU")
st.markdown(
    "In classic ML you evaluate with accuracy or F1. For language models the post names two common metrics: "
    "**perplexity** (how well the model predicts real text: a language-modelling score) and **BLEU** (how much a "
    "generated text overlaps with human references: a generation score). Both are computed live below, and both "
    "have blind spots you can see for yourself."
)

lm = require_lm()
key = lm.key

# ------------------------------------------------------------------------------------------------ perplexity
st.subheader("1. Perplexity")
st.markdown(
    "Score every token of a text with the model (the pretraining loss, −log p of each real next token), average, "
    "and exponentiate: **perplexity = exp(average loss)**. Lower is better: a perplexity of 20 means the model was, "
    "on average, as unsure as a fair 20-sided die. It only compares models that share a tokenizer (the loss is per "
    "token), and it measures *predictability*: compare the two sentences below, then a repetitive one."
)
pa, pb = st.columns(2)
with pa:
    text_a = prompt_input("Text A", key="ev_a", default=DEFAULT_A, height=90)
with pb:
    text_b = prompt_input("Text B", key="ev_b", default=DEFAULT_B, height=90)
rows = []
for col, name, text in ((pa, "A", text_a), (pb, "B", text_b)):
    with col:
        if not text.strip():
            empty_text_notice(f"text {name}")
            continue
        try:
            sc = caches.text_score(key, text)
        except InputError as err:
            show_error(err)
            continue
        st.metric(f"Perplexity of text {name}", f"{sc.perplexity:,.2f}",
                  help=f"exp({sc.mean_loss:.3f}) over {len(sc.tokens)} tokens")
        st.caption(f"average loss {sc.mean_loss:.3f} nats (natural-log units) over {len(sc.tokens)} tokens → "
                   f"exp({sc.mean_loss:.3f}) = {sc.perplexity:,.2f}; the first token is scored after "
                   f"`{text_start_name(lm)}`.")
        st.html(surprise_html(sc, max_tokens=120))
        rows.append({"text": name, "tokens": len(sc.tokens), "average_loss_nats": sc.mean_loss,
                     "perplexity": sc.perplexity})
st.html(surprise_legend_html())
if len(rows) == 2:
    lower = lowest_perplexity({r["text"]: r["perplexity"] for r in rows})
    rep = caches.text_score(key, REPETITIVE)
    rows.append({"text": "repetitive", "tokens": len(rep.tokens), "average_loss_nats": rep.mean_loss,
                 "perplexity": rep.perplexity})
    st.markdown(
        f"Text **{lower}** has the lower perplexity: the model finds it more predictable. What a model has learned "
        "(facts included) shows up as predictability, but predictability is all the number measures: the empty, "
        f"repetitive text “Paris is in France.” said 8 times scores **{rep.perplexity:,.2f}**"
        + (", better than both. " if lowest_perplexity({r["text"]: r["perplexity"] for r in rows}) == "repetitive"
           else ". ")
        + "Perplexity tells you "
        "how well a model fits text like this, not whether an output is true, useful or well written."
    )
    csv_download(pd.DataFrame(rows), "perplexity.csv", key="ev_ppl_csv")

# ------------------------------------------------------------------------------------------------ BLEU
st.subheader("2. BLEU: the model's translation against references")
st.markdown(
    "BLEU counts how many of a candidate's word sequences (**n-grams**, n = 1 to 4) also appear in a human "
    "**reference**, combines the four precisions (geometric mean) and multiplies by a **brevity penalty** for "
    "candidates shorter than the references. 100 = identical to a reference. Computed with "
    "[sacrebleu](https://github.com/mjpost/sacrebleu), the standard implementation (sentence-level, with its "
    "default smoothing)."
)
source = prompt_input("French sentence for the model to translate", key="ev_src", default=DEFAULT_SOURCE, height=68)
refs_text = prompt_input(f"Reference translations (one per line, up to {MAX_REFERENCES})", key="ev_refs",
                         default=DEFAULT_REFS, height=90)
candidate_override = prompt_input("Your own candidate (optional: leave empty to score the model's translation)",
                                  key="ev_cand", default="", height=68)
references = parse_references(refs_text)
hypothesis = None
if candidate_override.strip():
    hypothesis = candidate_override.strip()
    st.caption("Scoring your candidate instead of the model's translation.")
elif not source.strip():
    empty_text_notice("a French sentence")
elif len(source) > 400:
    st.warning("Keep the sentence under 400 characters: the model translates one sentence.", icon=":material/warning:")
else:
    try:
        hypothesis, full = caches.model_translation(key, source)
    except InputError as err:
        show_error(err)
    else:
        st.markdown("**The model's translation** (greedy, first line of its answer):")
        st.code(hypothesis or "⟨empty⟩", language=None, wrap_lines=True)
        with st.expander("The exact request and the full answer", icon=":material/code:"):
            st.code(TASK_TEMPLATE.format(source=source), language=None, wrap_lines=True)
            st.code(full, language=None, wrap_lines=True)
        if not hypothesis:
            st.warning("The model gave an empty answer, so there is nothing to score.", icon=":material/warning:")
if hypothesis:
    result, message = bleu_or_message(hypothesis, references)
    if message:
        st.info(message, icon=":material/edit:")
    else:
        c1, c2, c3 = st.columns(3)
        c1.metric("BLEU", f"{result.score:.1f}", help="0-100, higher = more overlap with a reference")
        c2.metric("Brevity penalty", f"{result.brevity_penalty:.3f}",
                  help=f"candidate {result.hyp_len} tokens, closest reference {result.ref_len}")
        c3.metric("References", f"{len(references)}")
        st.html(match_legend_html())
        st.html(highlight_html(result))
        show_chart(precision_figure(result), key="ev_precisions")
        table = ngram_table(result)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"precision": st.column_config.NumberColumn(format="percent")})
        csv_download(table, "bleu_ngrams.csv", key="ev_bleu_csv")
        st.caption(
            "An n-gram counts at most as many times as it appears in a single reference (clipping), so repeating a "
            "matching word does not raise the score. Add a reference with other wording and watch more words turn "
            "green: BLEU rewards matching *some* reference."
        )

# ------------------------------------------------------------------------------------------------ BLEU's blind spots
st.subheader("3. What BLEU misses")
st.markdown(
    "BLEU only counts shared words. A faithful **paraphrase** with different words scores low, while a sentence "
    "that reuses the reference's words with the **opposite meaning** scores high. The model's perplexity does not "
    "fix this either."
)
para_ref = prompt_input("Reference", key="ev_pref", default=PARAPHRASE_REF, height=68)
if not para_ref.strip():
    empty_text_notice("a reference")
else:
    labels, scores, same, table_rows = [], [], [], []
    for label, cand, ok in PARAPHRASES:
        res, _msg = bleu_or_message(cand, [para_ref])
        ppl = caches.text_score(key, cand).perplexity
        labels.append(f"{label}: {cand}")
        scores.append(res.score if res else 0.0)
        same.append(ok)
        table_rows.append({"candidate": cand, "kind": label, "same meaning": ok,
                           "BLEU": res.score if res else 0.0, "model perplexity": ppl})
    show_chart(candidates_figure(labels, scores, same), key="ev_paraphrase")
    df = pd.DataFrame(table_rows)
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={"BLEU": st.column_config.NumberColumn(format="%.1f"),
                                "model perplexity": st.column_config.NumberColumn(format="%.1f")})
    csv_download(df, "bleu_blind_spots.csv", key="ev_para_csv")
    illustration_note("The candidate sentences and their meaning labels are our examples (written for the default "
                      "reference); the BLEU scores and perplexities are computed live.")
    st.markdown(
        "That is why modern LLM evaluation adds metrics that compare meaning (embedding-based scores such as "
        "BERTScore), task-specific tests (exact answers, unit tests for code), and human or LLM-as-judge ratings."
    )
