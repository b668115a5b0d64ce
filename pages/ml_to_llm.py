"""From ML to LLMs: regression and classification you know, the LLM as a classifier over its vocabulary,
p(y|x) vs p(x) on the real model, a generative toy, and how a practitioner calls the same model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import caches
from components.display import (
    cached_chart,
    csv_download,
    empty_text_notice,
    folded,
    illustration_note,
    show_chart,
    show_error,
)
from components.figures.bars import class_bars, probability_bars
from components.figures.lines import cumulative_logprob_figure, regression_figure
from components.figures.scatter import CLASS_COLOURS, classifier_figure, mixture_figure
from components.frame import available_pages, ensure_frame
from components.inputs import clean_text, prompt_input
from components.model import require_lm
from engine import ml_basics as mb
from engine.lm import InputError
from engine.scoring import text_start_name
from engine.text import html_escape, token_label

SENTENCE_LIMIT = 500
REVIEW_LIMIT = 1500

ensure_frame()
st.title("From ML to LLMs")
st.markdown(
    "You already know supervised ML: **regression** predicts a number, **classification** predicts a label, and both "
    "learn **p(y | x)** from examples. An LLM is still an ML model: a neural network (a Transformer) trained on text. "
    "This page starts from the two models you know and shows, on the real model running here, that the LLM is a "
    "classifier too, and a **generative** model of text."
)
lm = require_lm()

# ------------------------------------------------------------------------------------------------ 1. what you know
st.header("1. What you already know")
reg_col, cls_col = st.columns(2, gap="large")
with reg_col:
    st.subheader("Regression: predict a number")
    a1, a2 = st.columns(2)
    noise = a1.slider("Noise in the data", 0.0, 1.0, 0.3, 0.05, key="ml_noise", bind="query-params")
    degree = a2.slider("Polynomial degree (capacity)", 1, 12, 3, key="ml_degree", bind="query-params",
                       help="Higher degree = more parameters. Watch the training error fall and the new-data error rise.")
    x, y, fit, test_mse = caches.regression(30, float(noise), int(degree), 0)
    cached_chart(("ml_reg", float(noise), int(degree)), lambda: regression_figure(x, y, fit), key="ml_reg_chart",
                 height=360)
    m1, m2 = st.columns(2)
    m1.metric("Error on training points (MSE)", f"{fit.mse:.3f}")
    m2.metric("Error on new points (MSE)", f"{test_mse:.3f}", delta=f"{test_mse - fit.mse:+.3f} vs training",
              delta_color="inverse")
    st.caption("Least squares on 30 noisy points of y = 0.5x + sin x. A high degree chases the noise: "
               "a low training error, a higher error on new points (overfitting).")

with cls_col:
    st.subheader("Classification: predict a label")
    spread = st.slider("Overlap between classes (spread)", 0.4, 2.5, 0.9, 0.1, key="ml_spread", bind="query-params")
    X, labels, clf = caches.classification(float(spread), 0)
    b1, b2 = st.columns(2)
    px = b1.slider("Your point: feature 1", -5.0, 5.0, 0.5, 0.1, key="ml_x1", bind="query-params")
    py = b2.slider("Your point: feature 2", -4.0, 5.0, 0.5, 0.1, key="ml_x2", bind="query-params")
    cached_chart(("ml_cls", float(spread), px, py), lambda: classifier_figure(X, labels, clf, (px, py)),
                 key="ml_cls_chart", height=360)
    st.caption(
        f"Softmax regression, p(class | x) = softmax(W x + b), trained by gradient descent on cross-entropy: "
        f"loss {clf.losses[0]:.2f} → {clf.losses[-1]:.2f} nats in {len(clf.losses)} steps (a **nat** is the unit of "
        "a loss measured with the natural log; every loss in this app is in nats, and bits = nats / ln 2), "
        f"training accuracy {clf.accuracy(X, labels):.0%}. The shaded regions are its decisions; the decision boundaries "
        "are where the colour changes. Hover anywhere for p(class | x)."
    )

# ------------------------------------------------------------------------------------------------ 2. the LLM's head
st.header("2. An LLM is a classifier over its whole vocabulary")
st.markdown(
    "Put the two side by side. Your classifier gives a probability to each of **3 classes** for the point you chose. "
    f"The LLM gives a probability to each of its **{lm.vocab_size:,} tokens** for what comes after your prompt. Same "
    "softmax, same cross-entropy loss in training: the *classes* are the vocabulary and the *features* are what the "
    "Transformer computed from the text."
)
point = caches.point_prediction(float(spread), 0, float(px), float(py))
left, right = st.columns(2, gap="large")
with left:
    st.subheader(f"Your classifier at ({px:.1f}, {py:.1f})")
    cached_chart(
        ("ml_cls_bars", float(spread), px, py),
        lambda: class_bars(list(point.names), list(point.probs), [CLASS_COLOURS[i] for i in point.classes]),
        key="ml_cls_bars",
    )
    st.caption(f"W is {clf.W.shape[0]} × {clf.W.shape[1]}: one row of weights per class, 2 features in.")
with right:
    st.subheader("The LLM on your prompt")
    text = prompt_input("Prompt", help="This prompt travels with you to the other pages.")
    head = None
    if not text.strip():
        empty_text_notice()
    else:
        try:
            head = caches.head_summary(lm.key, text)
        except InputError as err:
            show_error(err)
    if head is not None:
        k = st.slider("Tokens to show", 3, 20, 8, key="ml_topk", bind="query-params",
                      help="Only changes the chart: the model is not run again.")
        view = head.dist.view(lm, int(k))
        cached_chart(
            ("ml_llm_bars", lm.key, text, int(k)),
            lambda: probability_bars([c.text for c in view.candidates], [c.prob for c in view.candidates],
                                     view.other_mass),
            key="ml_llm_bars",
        )
        st.caption(
            f"W is {head.weight_shape[0]:,} × {head.weight_shape[1]}: one row per token, {head.hidden_size} features in "
            f"(the Transformer's last hidden state{'' if head.has_bias else ', no bias'}). The grey bar is the other "
            f"{lm.vocab_size - len(view.candidates):,} classes together."
        )
if head is not None:
    st.success(
        f"**Checked live:** multiplying the model's last hidden state by its output matrix by hand (W h) gives the "
        f"model's own next-token scores for all {head.weight_shape[0]:,} tokens, to within {head.max_abs_diff:.1e}. "
        f"The LLM's last layer *is* a linear classifier; the {lm.info.layers} Transformer layers before it learn the features.",
        icon=":material/check_circle:",
    )

# ------------------------------------------------------------------------------------------------ 3. p(x) vs p(y|x)
st.header("3. p(y | x) versus p(x): the same model, two uses")
st.markdown(
    "A supervised model learns **p(y | x)**: a label given the input. A **generative** model learns **p(x)**: how "
    "likely the data itself is. An LLM learns p(next token | previous tokens); multiplying those along a sentence "
    "(the chain rule) gives **p(sentence)**. So the same model can score whole texts, and, with the right prompt, "
    "act as a classifier."
)
px_col, pyx_col = st.columns(2, gap="large")
with px_col:
    st.subheader("p(x): which sentence is more likely?")
    raw_a = st.text_input("Sentence A", value="The cat sat on the mat.", key="ml_a", bind="query-params",
                          max_chars=SENTENCE_LIMIT)
    raw_b = st.text_input("Sentence B", value="The mat sat on the cat.", key="ml_b", bind="query-params",
                          max_chars=SENTENCE_LIMIT)
    (sent_a, notes_a), (sent_b, notes_b) = clean_text(raw_a, SENTENCE_LIMIT), clean_text(raw_b, SENTENCE_LIMIT)
    for note in dict.fromkeys(notes_a + notes_b):
        st.caption(f":material/info: {note}")
    cmp = None
    if not sent_a.strip() or not sent_b.strip():
        empty_text_notice("two sentences")
    else:
        try:
            cmp = caches.sentence_comparison(lm.key, sent_a, sent_b)
        except InputError as err:
            show_error(err)
    if cmp is not None:
        c1, c2 = st.columns(2)
        c1.metric("log p(A)", f"{cmp.score_a.total_logprob:.2f}", help="Natural log; closer to 0 = more likely.")
        c2.metric("log p(B)", f"{cmp.score_b.total_logprob:.2f}", help="Natural log; closer to 0 = more likely.")
        if cmp.winner == "tie":
            st.info("The model gives both texts the same probability.", icon=":material/balance:")
        else:
            times = cmp.times_more_likely
            times_txt = f"{times:,.0f}" if times < 1e15 else f"e^{abs(cmp.log_ratio):.0f}"
            st.markdown(f"The model finds **sentence {cmp.winner.upper()}** about **{times_txt} times** more likely "
                        f"(a gap of {abs(cmp.log_ratio):.2f} nats).")
        cached_chart(("ml_px", lm.key, sent_a, sent_b), lambda: cumulative_logprob_figure(cmp),
                     key="ml_px_chart", height=320)
        st.caption(
            f"The first token is scored after `{text_start_name(lm)}`, the token that separates documents in the "
            "model's training text. Each step adds log p(token | the tokens before it); the last point is "
            "log p(sentence). Longer texts "
            "collect more negative terms, so compare sentences of similar length, or per-token loss "
            f"(A: {cmp.score_a.mean_loss:.2f}, B: {cmp.score_b.mean_loss:.2f} nats per token)."
        )
        rows = [
            {"sentence": name, "position": t.position, "token": token_label(t.text), "log p": t.logprob,
             "probability": t.prob, "rank": t.rank}
            for name, score in (("A", cmp.score_a), ("B", cmp.score_b))
            for t in score.tokens
        ]
        with folded("Token by token", "ml_px_tokens", ":material/table:") as is_open:
            if is_open:
                df = pd.DataFrame(rows)
                st.dataframe(df, hide_index=True, width="stretch", key="ml_px_table",
                             column_config={"log p": st.column_config.NumberColumn(format="%.3f"),
                                            "probability": st.column_config.NumberColumn(format="%.4f")})
                csv_download(df, "sentence_scores.csv", key="ml_px_csv")

with pyx_col:
    st.subheader("p(y | x): classification by prompting")
    raw_review = st.text_area("Review to classify", value="The food was cold and the waiter was rude.",
                              key="ml_review", bind="query-params", height=80, max_chars=REVIEW_LIMIT)
    review, notes_r = clean_text(raw_review, REVIEW_LIMIT)
    for note in notes_r:
        st.caption(f":material/info: {note}")
    few_shot = st.toggle("Show the model two labelled examples first (few-shot)", value=True, key="ml_fewshot",
                         bind="query-params")
    res = None
    if not review.strip():
        empty_text_notice("a review")
    else:
        try:
            res = caches.prompt_classification(lm.key, review, few_shot)
        except InputError as err:
            show_error(err)
    if res is not None:
        show_chart(
            class_bars(list(res.labels), list(res.probs), [CLASS_COLOURS[1], CLASS_COLOURS[0]],
                          title="p(label | review), over the two labels"),
            key="ml_pyx_chart",
        )
        st.markdown(
            f"Predicted: **{html_escape(res.predicted)}**. The model scored the next word after `Sentiment:` for each label "
            f"and we renormalised over the two. Before renormalising the labels hold **{res.label_mass:.1%}** of its "
            "next-token probability"
            + (": the examples taught it the format." if few_shot
               else ": without examples much of it goes to other words (try turning few-shot on).")
        )
        with folded("The exact prompt the model read", "ml_pyx_prompt", ":material/description:") as is_open:
            if is_open:
                st.code(res.prompt, language=None, wrap_lines=True)
        st.caption("No training happened here: the classifier is the same next-token model, steered by a prompt. "
                   "A small model can still be wrong; try a sarcastic review.")

# ------------------------------------------------------------------------------------------------ 4. generative toy
st.header("4. Generative models learn the data itself")
st.markdown(
    "Back to the 2-D points from section 1. The classifier learned **where the boundaries are**: it can label a "
    "point but cannot make one. A generative model learns **where the points are**, p(x), and can then *sample* new "
    "points that look like the data. Here it is a Gaussian mixture fitted by expectation-maximisation, labels ignored."
)
st.info(
    "**Where the post's map simplifies.** The map on the generative-AI page draws generative AI inside deep learning. "
    "This Gaussian mixture is a generative model with no neural network at all: generative models (Gaussian "
    "mixtures, naive Bayes, hidden Markov models) predate deep learning. Today's generative AI is mostly deep, "
    "which is what the map shows.",
    icon=":material/account_tree:",
)
g1, g2, g3 = st.columns(3)
components = g1.slider("Gaussians in the mixture", 1, 6, 3, key="ml_components", bind="query-params")
n_samples = g2.slider("New points to sample", 20, 500, 150, 10, key="ml_samples", bind="query-params")
seed = g3.number_input("Sampling seed", 0, 9999, 0, key="ml_seed", bind="query-params")
mix, samples = caches.mixture(float(spread), 0, int(components), int(n_samples), int(seed))
X_mix = X  # the same points the classifier was trained on
gen_left, gen_right = st.columns(2, gap="large")
with gen_left:
    st.subheader("Discriminative: p(y | x)")
    cached_chart(("ml_cls", float(spread), px, py), lambda: classifier_figure(X, labels, clf, (px, py)),
                 key="ml_gen_cls", height=380)
    st.caption("Boundaries between labels. Nothing here says how likely a point is, so nothing can be sampled.")
with gen_right:
    st.subheader("Generative: p(x), and new samples")
    cached_chart(("ml_mix", float(spread), int(components), int(n_samples), int(seed)),
                 lambda: mixture_figure(X_mix, mix, samples), key="ml_gen_mix", height=380)
    st.caption("Shading: the fitted density p(x). Orange crosses: brand-new points drawn from it.")
stats = pd.DataFrame(caches.mixture_stats(float(spread), 0, int(components), int(n_samples), int(seed)))
s1, s2 = st.columns([3, 2], gap="large")
with s1:
    st.dataframe(stats.round(3), hide_index=True, width="stretch", key="ml_gen_stats")
    csv_download(stats, "mixture_stats.csv", key="ml_gen_csv")
with s2:
    st.metric("Average log p(x) of the real points", f"{mix.avg_loglik:.2f} nats",
              help="Higher = the model explains the data better. More Gaussians always fit the training points at "
              "least as well, like a higher polynomial degree.")
    st.markdown(
        f"The sampled points have the statistics of the fitted model (up to sampling noise with {int(n_samples)} "
        "points). An LLM does the same with text: learn p(x), then sample from it, one token at a time."
    )

# ------------------------------------------------------------------------------------------------ 5. use vs train
st.header("5. Use, don't train: calling this model yourself")
st.markdown(
    "As a practitioner you rarely train an LLM: you **use** a pretrained one (through an API, or an open model with "
    "Hugging Face `transformers`) and then prompt it or fine-tune it. This is the code that computes what sections 2 "
    "and 3 showed, with your prompt and sentences filled in. It downloads the model's **original weights** from the "
    "Hugging Face hub; this app runs a **4-bit copy** of them (unpacked to float32, see the sidebar's model card), so "
    "your numbers will differ slightly from the page's."
)
code_prompt = text if text.strip() else "The capital of France is"
code_a = sent_a if sent_a.strip() else "The cat sat on the mat."
code_b = sent_b if sent_b.strip() else "The mat sat on the cat."
st.code(mb.usage_code(lm.spec.hub_id or lm.info.name, code_prompt, code_a, code_b, start_token=text_start_name(lm)),
        language="python")
expected = []
if head is not None:
    for c in head.dist.view(lm, 5).candidates:
        expected.append(f"next {c.text!r} {c.prob:.4f}")
if cmp is not None:
    expected += [f"logp_a {cmp.score_a.total_logprob:.4f}", f"logp_b {cmp.score_b.total_logprob:.4f}"]
if expected:
    st.markdown("What this page computed for the same inputs with the 4-bit weights (your run with the original "
                "weights should print close numbers, not the same ones):")
    st.code("\n".join(expected), language=None)
st.caption(
    "One known difference: the embedded copy of the model splits numbers into tokens differently from the hub "
    "tokenizer, so text with digits can score slightly differently."
)
st.markdown(
    "**Training** is the same loss you saw in section 1, cross-entropy, minimised by gradient descent, but over "
    "trillions of tokens: pretraining (predict the next token), then instruction tuning and RLHF."
)
present = {p.stem for p in available_pages()}
for stem, label in (("pretraining", "Pretraining: the loss and one gradient step, live"),
                    ("fine_tuning", "Fine-tuning: teach the model a fact on this CPU"),
                    ("next_token", "Next-token prediction, step by step")):
    if stem in present:
        st.page_link(f"pages/{stem}.py", label=label, icon=":material/arrow_forward:")

# ------------------------------------------------------------------------------------------------ 6. connections
st.header("6. How this connects to what you know")
st.markdown(
    "The post's summary: LLMs are **ML at scale + language data + deep architectures**. Each step of the ML workflow "
    "you know has an LLM counterpart. Here is each one measured by the model on your prompt from section 2, with the "
    "page that shows it live."
)
conn = None
if not text.strip():
    empty_text_notice()
else:
    try:
        conn = caches.ml_connections(lm.key, text)
    except InputError as err:
        show_error(err)
if conn is not None:
    mappings = (
        ("Data preprocessing", "→ tokenization", "Tokens in your prompt", f"{conn.n_tokens:,}",
         f"{conn.n_chars:,} characters became {conn.n_tokens:,} tokens: the model's rows and columns.",
         "tokenization", "Tokenization"),
        ("Training", "→ still gradient descent", "Its loss per token on your prompt", f"{conn.mean_loss:.2f} nats",
         "The cross-entropy that pretraining minimises by gradient descent, on enormous data; here averaged over "
         "your prompt's tokens.",
         "pretraining", "Pretraining"),
        ("Evaluation", "→ BLEU, perplexity", "Perplexity of your prompt", f"{conn.perplexity:,.1f}",
         f"exp({conn.mean_loss:.2f}): as unsure as a fair pick among about {conn.perplexity:,.0f} tokens.",
         "evaluation", "Evaluation"),
        ("Model serving", "→ APIs, chatbots", "Tokens as a chat request", f"{conn.chat_tokens:,}",
         f"Sent as one chat message, the template wraps your {conn.n_tokens:,} tokens into {conn.chat_tokens:,}.",
         "using_llms", "Using an LLM: APIs & serving"),
    )
    present = {p.stem for p in available_pages()}
    for col, (ml, llm_side, label, value, note, stem, title) in zip(st.columns(4, gap="medium"), mappings):
        with col:
            st.markdown(f"**{ml}**  \n{llm_side}")
            st.metric(label, value)
            st.caption(note)
            if stem in present:
                st.page_link(f"pages/{stem}.py", label=title, icon=":material/arrow_forward:")
illustration_note("The toy data in sections 1 and 4 is generated on this page (not model output); every LLM number "
                  "above was computed by the model for your inputs.")
