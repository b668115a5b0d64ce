"""Fine-tuning live on this CPU (a per-session LoRA adapter), instruction tuning, and a preference pair."""

import math
import time

import streamlit as st

from components import caches
from components.display import empty_text_notice, show_chart, show_error
from components.figures.bars import compare_distributions_figure, preference_figure
from components.figures.lines import loss_curve_figure
from components.frame import ensure_frame
from components.inputs import prompt_input
from components.model import require_lm
from components.state import FT_STATE, FineTuneRun, current_run, reset_run
from engine.lm import InputError, input_problem
from engine.predict import union_top_ids
from engine.text import md_escape
from engine.training import (
    DEFAULT_LAYERS,
    DEFAULT_RANK,
    MAX_TRAIN_STEPS,
    MAX_TRAIN_TOKENS,
    BusyError,
    new_adapter,
    probe_target,
    run_fine_tune,
)

DEFAULT_FACT = "Our class mascot is a purple owl."
DEFAULT_PROBE = "Our class mascot is a"
DEFAULT_CONTROL = "The capital of France is"
DEFAULT_INSTRUCTION = "Give me three tips for studying."
DEFAULT_Q = "What is the capital of France?"
DEFAULT_A = "The capital of France is Paris."
DEFAULT_B = "I don't know. Look it up yourself."
LEARNING_RATES = (0.001, 0.003, 0.01)

ensure_frame()
st.title("Fine-tuning, instruction tuning and RLHF")
st.markdown(
    "After pretraining, a model is **fine-tuned**: trained a little more, with the same next-token loss, on a small "
    "set of chosen text (questions and answers, instructions, your company's documents). As a practitioner you "
    "rarely pretrain an LLM: you **use** one and sometimes fine-tune it. Here you fine-tune the real model, live, "
    "on this computer."
)

lm = require_lm()
key = lm.key

# ------------------------------------------------------------------------------------------------ live fine-tune
st.subheader("1. Teach the model a fact")
st.markdown(
    f"Write a short fact. The page trains a **LoRA adapter** (low-rank adaptation, the most common way to fine-tune "
    f"today): instead of changing a weight matrix W, it learns a small update ΔW = B·A of rank {DEFAULT_RANK} for the "
    f"MLP output weights of the last {DEFAULT_LAYERS} layers. The adapter belongs to your browser session only; "
    "everyone else keeps using the original model, and **Reset** throws the adapter away."
)
fact = prompt_input("Fact to teach", key="ft_text", default=DEFAULT_FACT, height=68,
                    help=f"A sentence or two (at most {MAX_TRAIN_TOKENS} tokens).")
probe = prompt_input("Probe prompt (what we ask afterwards)", key="ft_probe", default=DEFAULT_PROBE, height=68,
                     help="The page shows the model's next-token prediction for this prompt before and after.")
c1, c2 = st.columns(2)
steps = c1.slider("Training steps", 5, MAX_TRAIN_STEPS, 20, step=5, key="ft_steps", bind="query-params")
lr = c2.select_slider("Learning rate (Adam)", options=list(LEARNING_RATES), value=0.003, key="ft_lr",
                      bind="query-params", help="Too small: nothing is learned in time. Too large: the model forgets "
                      "other things (watch the control prompt below).")

probe_problem = input_problem(lm, probe, MAX_TRAIN_TOKENS, "probe prompt")
problem = input_problem(lm, fact, MAX_TRAIN_TOKENS, "fact", at_least=2, why=" so training stays quick") or probe_problem
probe_ok = probe_problem is None
fact_ids = lm.encode(fact) if problem is None else []

b1, b2, _ = st.columns([1, 1, 2])
train_clicked = b1.button(f"Fine-tune {steps} steps", type="primary", icon=":material/model_training:",
                          disabled=problem is not None, key="ft_train")
reset_clicked = b2.button("Reset", icon=":material/restart_alt:", key="ft_reset", disabled=current_run(key) is None,
                          help="Throw your adapter away and go back to the original model.")
if problem:
    st.info(problem, icon=":material/edit:")
if reset_clicked:
    reset_run()
    st.toast("Adapter removed: you are back to the original model.")

if train_clicked and problem is None:
    bar = st.progress(0.0, text="Waiting for the model…")
    live = st.empty()
    try:
        adapter = new_adapter(lm)  # each run starts again from the original model

        def show_step(s) -> None:
            bar.progress(s.step / steps, text=f"Step {s.step} of {steps}: loss {s.loss:.3f}")
            with live.container():
                show_chart(loss_curve_figure(adapter.losses, steps), key=f"ft_live_{s.step}")

        start = time.perf_counter()
        run_fine_tune(lm, adapter, fact_ids, steps, lr, on_step=show_step)
        st.session_state[FT_STATE] = FineTuneRun(key, fact, steps, lr, adapter, time.perf_counter() - start)
    except BusyError as err:
        bar.empty()
        st.warning(f"**Busy:** {err} Only one fine-tune runs at a time on this server so each one stays fast.",
                   icon=":material/hourglass_top:")
    else:
        st.rerun()

run = current_run(key)
before = caches.text_distribution(key, probe).probs if probe_ok else None  # checked above
target = probe_target(lm, fact, probe) if probe_ok else None

if run is None:
    if before is not None:
        st.markdown("**Before fine-tuning**, the model's next-token prediction for the probe prompt:")
        shown = union_top_ids(before, before, 6, target)
        show_chart(compare_distributions_figure([lm.token_text(i) for i in shown], before[shown], before[shown],
                                                [i == target for i in shown]), key="ft_before_only")
        if target is not None:
            st.caption(f"★ = '{lm.token_text(target)}', the word your fact puts next: "
                       f"p = {float(before[target]):.2e} now. Press **Fine-tune** and watch it change.")
else:
    losses = run.losses
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Loss on the fact", f"{losses[-1]:.3f}", delta=f"{losses[-1] - losses[0]:+.3f} from {losses[0]:.2f}",
              delta_color="inverse")
    m2.metric("Training time", f"{run.seconds:.1f} s", help=f"{run.steps} Adam steps at learning rate {run.lr:g}")
    m3.metric("Weights trained", f"{run.adapter.num_params:,}",
              help=f"{run.adapter.num_params / lm.info.parameters:.3%} of {lm.info.parameters:,}")
    m4.metric("Adapter size", f"{run.adapter.nbytes / 1024:.0f} KB")
    if run.text != fact:
        st.caption(":material/info: The adapter below was trained on this text (press Fine-tune to train on yours):")
        st.code(run.text, language=None, wrap_lines=True)
    show_chart(loss_curve_figure(losses), key="ft_loss_curve")
    if before is not None:
        after, cont = run.outputs(probe)
        shown = union_top_ids(before, after, 6, target)
        show_chart(compare_distributions_figure([lm.token_text(i) for i in shown], before[shown], after[shown],
                                                [i == target for i in shown]), key="ft_before_after")
        if target is not None:
            st.markdown(
                f"p('{md_escape(lm.token_text(target))}' | probe) went from **{float(before[target]):.2e}** to "
                f"**{float(after[target]):.1%}**."
            )
        orig = caches.base_continuation(key, probe)
        st.markdown("**Greedy continuation of the probe prompt**")
        g1, g2 = st.columns(2)
        with g1:
            st.caption("Original model")
            st.code(probe + lm.decode(orig, skip_special_tokens=True), language=None, wrap_lines=True)
        with g2:
            st.caption("After fine-tuning")
            st.code(probe + lm.decode(cont, skip_special_tokens=True), language=None, wrap_lines=True)

    st.markdown("**Did it forget anything?** A control prompt unrelated to your fact:")
    control = prompt_input("Control prompt", key="ft_control", default=DEFAULT_CONTROL, height=68)
    control_problem = input_problem(lm, control, MAX_TRAIN_TOKENS, "control prompt")
    if control_problem:
        if control.strip():
            show_error(InputError(control_problem))
    else:
        c_before = caches.text_distribution(key, control).probs
        c_after, _ = run.outputs(control)
        top = int(c_before.argmax())
        st.markdown(
            f"p('{md_escape(lm.token_text(top))}' | control) was **{float(c_before[top]):.1%}** and is "
            f"**{float(c_after[top]):.1%}** after fine-tuning. A large drop is *catastrophic forgetting*: try the "
            "largest learning rate."
        )

# ------------------------------------------------------------------------------------------------ instruction tuning
st.subheader("2. Instruction tuning: continuing text vs answering")
st.markdown(
    "A pretrained model only *continues* text. **Instruction tuning** fine-tunes it on conversations written in a "
    "fixed **chat template**, so that after the marker for the assistant's turn it answers. This model "
    "(SmolLM2-135M-**Instruct**) went through that. Give it the same request with and without its template:"
)
instruction = prompt_input("Request", key="ft_instr", default=DEFAULT_INSTRUCTION, height=68)
if not instruction.strip():
    empty_text_notice("a request")
else:
    try:
        raw_out = caches.generation(key, instruction, False)
        chat_out = caches.generation(key, instruction, True)
    except InputError as err:
        show_error(err)
    else:
        g1, g2 = st.columns(2)
        with g1:
            st.markdown("**Raw text** (continuation)")
            st.code(instruction + raw_out if raw_out.strip() else instruction + " ⟨the model ended the text here⟩",
                    language=None, wrap_lines=True)
        with g2:
            st.markdown("**With the chat template** (answer)")
            st.code(chat_out if chat_out.strip() else "⟨empty answer⟩", language=None, wrap_lines=True)
        st.caption("Greedy decoding, at most 40 new tokens each, computed live by the model.")
        with st.expander("What the chat template turns your request into", icon=":material/code:"):
            st.code(lm.chat_prompt([{"role": "user", "content": instruction}]), language=None, wrap_lines=True)

# ------------------------------------------------------------------------------------------------ preferences
st.subheader("3. RLHF: learning from human preferences")
st.markdown(
    "**RLHF** (reinforcement learning from human feedback) starts from pairs of answers to the same prompt and a "
    "human's choice of the better one. A separate **reward model** is trained to predict those choices, and the LLM is "
    "then trained to produce answers that score high. Methods such as DPO skip the reward model and directly raise "
    "the model's likelihood of the chosen answer relative to the rejected one. Below, you write the pair and say which "
    "one a human would pick; the chart shows which answer **this model finds more likely**. That is the model's "
    "likelihood, not a reward model's score: no reward model runs here."
)
question = prompt_input("Prompt", key="ft_pq", default=DEFAULT_Q, height=68)
pa, pb = st.columns(2)
with pa:
    ans_a = prompt_input("Answer A", key="ft_pa", default=DEFAULT_A, height=90)
with pb:
    ans_b = prompt_input("Answer B", key="ft_pb", default=DEFAULT_B, height=90)
pick = st.radio("Which answer would you (the human rater) choose?", ["A", "B"], horizontal=True, key="ft_pick",
                bind="query-params")
if not (question.strip() and ans_a.strip() and ans_b.strip()):
    empty_text_notice("a prompt and two answers")
else:
    try:
        sa, sb = caches.answer_score(key, question, ans_a), caches.answer_score(key, question, ans_b)
    except InputError as err:
        show_error(err)
    else:
        show_chart(preference_figure(["Answer A", "Answer B"], [sa, sb]), key="ft_pref")
        diff = sa.total_logprob - sb.total_logprob
        likelier = "A" if diff >= 0 else "B"
        agree = "agrees" if likelier == pick else "disagrees"
        st.markdown(
            f"The model finds **answer {likelier}** more likely: log p differs by {abs(diff):.1f} nats, so it is "
            f"e^{abs(diff):.1f} ≈ {math.exp(min(abs(diff), 700)):.3g} times as likely to produce it word for word. Its likelihood **{agree}** with your choice. "
            "Longer answers get lower totals simply because they have more tokens; per token, A scores "
            f"{-sa.mean_loss:.2f} and B {-sb.mean_loss:.2f}. Each answer is scored up to and including the "
            "end-of-turn token."
        )
        st.caption("A pair like this, with your choice, is exactly one row of RLHF or DPO training data.")
