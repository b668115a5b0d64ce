"""Pretraining: the next-token loss on any text (surprise view, chart, perplexity), baselines, and one gradient step."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import csv_download, empty_text_notice, folded, show_chart, show_error
from components.figures.bars import baseline_figure, before_after_tokens_figure, token_loss_figure
from components.figures.html import surprise_html, surprise_legend_html
from components.figures.lines import step_sweep_figure
from components.frame import ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from engine import weights
from engine.lm import MAX_INPUT_TOKENS, InputError
from engine.scoring import CONDITIONING_TOKENS, extremes, lowest, text_start_name
from engine.training import MAX_TRAIN_TOKENS, STEP_LRS

DEFAULT_TEXT = (
    "Large language models are trained to predict the next word. After reading huge amounts of text from books "
    "and websites, they learn grammar, facts and a little reasoning."
)
DEFAULT_STEP_TEXT = "The Eiffel Tower is in Paris, the capital of France."

ensure_frame()
st.title("Pretraining: learning to predict the next token")
st.markdown(
    "Training an LLM happens in two stages. **Pretraining** comes first: the model reads a huge amount of text "
    "(books, websites, Wikipedia) and, at every position, is asked *what comes next?* Its **loss** for one token is "
    "**−log p(the token that really came next)**: near 0 when the model was confident and right, large when it was "
    "surprised. Training is ordinary gradient descent on the average of that loss, the same cross-entropy you use "
    "for a classifier, with one class per token in the vocabulary."
)

lm = require_lm()
key = lm.key
if "instruct" in lm.info.name.lower():
    st.info(
        f"**The model here is instruction-tuned.** {lm.info.name} is the pretrained model *after* fine-tuning on "
        "instructions and preference tuning: its pretraining-only version is not installed. So the losses below are "
        "a chat model's view of plain text (it leans towards helpful-assistant wording); a base model, straight out "
        "of pretraining, would score the same text somewhat differently. The Fine-tuning page compares the model "
        "with and without its chat template.",
        icon=":material/info:",
    )

# ------------------------------------------------------------------------------------------------ surprise view
st.subheader("1. How surprised is the model by your text?")
text = prompt_input(
    "Text to score", key="pt_text", default=DEFAULT_TEXT, height=100,
    help=f"Any text. The model reads at most {MAX_INPUT_TOKENS:,} tokens here.",
)
score = None
if not text.strip():
    empty_text_notice("some text")
else:
    try:
        score = caches.text_score(key, text)
    except InputError as err:
        show_error(err)

if score is not None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Tokens scored", f"{len(score.tokens):,}")
    c2.metric("Average loss", f"{score.mean_loss:.2f} nats",
              help="Mean of −log p over the tokens: the pretraining loss. Nats: the loss measured with the natural "
              "log (bits = nats / ln 2).")
    c3.metric("Perplexity", f"{score.perplexity:,.1f}", help="exp(average loss).")
    st.markdown(
        f"**Perplexity = exp(average loss) = exp({score.mean_loss:.2f}) = {score.perplexity:,.1f}.** On average the "
        f"model was as unsure as if it had to pick among about {score.perplexity:,.0f} equally likely tokens "
        f"(out of {lm.vocab_size:,}). Redder tokens surprised it more."
    )
    st.html(surprise_legend_html())
    st.html(surprise_html(score, max_tokens=400))
    show_chart(token_loss_figure(score), key="pt_token_loss")
    worst, best = extremes(score)
    st.caption(
        f"Most surprising: '{worst.text}' (p = {worst.prob:.1e}, ranked {worst.rank:,}). Least: '{best.text}' "
        f"(p = {best.prob:.1%}). The first token is predicted from `{text_start_name(lm)}` alone: the token that "
        "separates documents in the training text, so the model reads yours as the start of a new document."
    )
    with folded("Why that token? The first token's loss with each choice", "pt_why_open", ":material/compare:") as is_open:
        if is_open:
            st.markdown(
                "SmolLM2's tokenizer calls `<|im_start|>` its *beginning* token, but that token opens a **chat turn** "
                "(a role name such as `user` follows it). Plain text in the training data follows `<|endoftext|>`. "
                f"Here is your text (its first {CONDITIONING_TOKENS} tokens at most) scored after each, and after "
                "nothing (then its first token cannot be scored):"
            )
            try:
                cond = caches.conditioning(key, text)
            except InputError as err:
                show_error(err)
            else:
                st.dataframe(pd.DataFrame([
                    {"before the text": r.choice, "first token's loss (nats)": r.first_loss,
                     "perplexity (all scored tokens)": r.perplexity,
                     "perplexity (tokens 2, 3, …: same for all)": r.rest_perplexity} for r in cond
                ]), hide_index=True, width="stretch",
                    column_config={c: st.column_config.NumberColumn(format="%.2f") for c in (
                        "first token's loss (nats)", "perplexity (all scored tokens)",
                        "perplexity (tokens 2, 3, …: same for all)")})
                st.caption("Lower is better. The pages that score plain text (this one, Evaluation, From ML to LLMs) "
                           "all use the first row's token.")
    table = pd.DataFrame(
        {
            "position": [t.position for t in score.tokens],
            "token": [t.text for t in score.tokens],
            "token_id": [t.token_id for t in score.tokens],
            "probability": [t.prob for t in score.tokens],
            "loss_nats": [t.loss for t in score.tokens],
            "rank": [t.rank for t in score.tokens],
        }
    )
    with folded("Every token's numbers", "pt_table_open", ":material/table:") as is_open:
        if is_open:
            st.dataframe(table, hide_index=True, width="stretch")
            csv_download(table, "token_losses.csv", key="pt_csv")

    # -------------------------------------------------------------------------------------------- baselines
    st.subheader("2. Natural text vs the same words shuffled vs random tokens")
    st.markdown(
        "What has pretraining taught the model? Compare your text with **the same words in a random order** (same "
        "vocabulary, no grammar) and with **random tokens** from the vocabulary (the same number of tokens)."
    )
    seed = st.number_input("Shuffle seed", min_value=0, max_value=9999, value=0, step=1, key="pt_seed",
                           bind="query-params", help="Change it for another random order and other random tokens.")
    variants = caches.baseline_scores(key, text, int(seed))
    show_chart(baseline_figure(list(variants), [s for _t, s in variants.values()], lm.vocab_size), key="pt_baselines")
    cols = st.columns(3)
    for col, (name, (_shown, sc)) in zip(cols, variants.items()):
        with col:
            st.metric(f"{name}: perplexity", f"{sc.perplexity:,.1f}")
            st.caption(f"average loss {sc.mean_loss:.2f} nats over {len(sc.tokens)} tokens")
            st.html(surprise_html(sc, max_tokens=60))
    nat, shuf, rand = (s for _t, s in variants.values())
    st.markdown(
        f"Shuffling keeps every word but raises the perplexity from **{nat.perplexity:,.1f}** to "
        f"**{shuf.perplexity:,.1f}**: the model learned word order and grammar, not just which words are common. "
        + (
            f"Random tokens reach **{rand.perplexity:,.0f}**, *worse* than guessing every token uniformly "
            f"({lm.vocab_size:,}): the model confidently expects language and is wrong every time."
            if rand.perplexity > lm.vocab_size
            else f"Random tokens reach **{rand.perplexity:,.0f}**, near the {lm.vocab_size:,} of a uniform guess."
        )
    )

# ------------------------------------------------------------------------------------------------ one gradient step
st.subheader("3. One step of gradient descent, made visible")
st.markdown(
    "Training repeats one move over and over: compute the loss on a batch of text, compute its **gradient** (which "
    "way each weight should move to lower the loss), and step the weights a little that way: "
    "**W ← W − learning rate × ∇loss**. Here is a single step on one sentence, computed live. To keep it quick, the "
    "step changes only the MLP output weights of the last 4 layers; real pretraining updates every weight, on a "
    "batch of many sequences per step. The shared model is not changed: the stepped weights are used for these "
    "numbers only."
)
scale = weights.pretraining_scale(key, len(score.tokens) if score is not None else 0, lm.info.parameters)
if scale is not None:
    f = scale.facts
    st.markdown(
        f"**At real scale.** {lm.info.name}'s pretraining read about **{weights.in_words(f.tokens)} tokens** "
        f"(source: [{f.source}]({f.url})): that is about **{weights.in_words(scale.copies)} copies** of your {scale.text_tokens:,}-token "
        f"text above, and about **{weights.in_words(scale.tokens_per_parameter)} tokens for each of its "
        f"{lm.info.parameters:,} parameters**. Steps: "
        + (f"{f.steps:,}" if f.steps else "not stated in the source")
        + "; batch size: "
        + (f"{f.batch_tokens:,} tokens" if f.batch_tokens else "not stated in the source")
        + f". The [SmolLM2 paper]({weights.SMOLLM2_PAPER}) describes the family's multi-stage training (its 1.7B "
        "model read about 11 trillion tokens)."
    )
elif score is not None:
    st.caption(f"No published pretraining figures are recorded for {lm.info.name}.")
step_text = prompt_input(
    "Sentence to train on", key="pt_step", default=DEFAULT_STEP_TEXT, height=68,
    help=f"Short: at most {MAX_TRAIN_TOKENS - 1} tokens.",
)
if not step_text.strip():
    empty_text_notice("a sentence")
else:
    try:
        gs = caches.one_step(key, step_text)
    except InputError as err:
        show_error(err)
    else:
        lr = st.select_slider("Learning rate", options=list(STEP_LRS), value=0.1, key="pt_lr", bind="query-params",
                              help="Moving this only reads the pre-computed results: the model does not run again.")
        i = list(STEP_LRS).index(lr) if lr in STEP_LRS else 2
        after = gs.loss_after[i]
        c1, c2, c3 = st.columns(3)
        c1.metric("Loss before", f"{gs.loss_before:.3f}")
        c2.metric("Loss after one step", f"{after:.3f}", delta=f"{after - gs.loss_before:+.3f}", delta_color="inverse")
        c3.metric("Weights updated", f"{gs.num_params:,}", help=f"of {gs.total_params:,} in the model")
        show_chart(step_sweep_figure(gs, i), key="pt_step_sweep")
        best = lowest(gs.loss_after)
        overshoot = (
            f"a step that is too large **overshoots** and the loss goes up instead (learning rate {STEP_LRS[-1]:g}: "
            f"{gs.loss_after[-1]:.1f}). That is why training takes small steps, many times over."
            if gs.loss_after[-1] > gs.loss_before
            else "on this sentence even the largest step tried still helped; try a longer sentence to see a step "
            "overshoot."
        )
        st.markdown(
            f"The gradient's size (L2 norm) is {gs.grad_norm:.2f}. A small step lowers the loss a little; the best "
            f"step here is learning rate **{STEP_LRS[best]:g}** (loss {gs.loss_after[best]:.2f}); " + overshoot
        )
        pieces = [lm.token_text(t) for t in gs.ids[1:]]
        show_chart(before_after_tokens_figure(pieces, gs.token_loss_before, gs.token_loss_after[i]),
                   key="pt_step_tokens")
        st.caption("Per-token loss on the sentence before and after the step at the chosen learning rate.")
