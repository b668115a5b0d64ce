"""RLHF live: rate the model's answers (one shared set per server), train a reward model, tune the model with DPO."""

import streamlit as st

from components import caches
from components.display import empty_text_notice, folded, show_chart, show_error
from components.figures.preference import (
    answers_table,
    best_of_n_figure,
    dpo_curves_figure,
    gaming_table,
    reward_pairs_figure,
    reward_table,
)
from components.frame import ensure_frame, fragment, page_links
from components.inputs import prompt_input
from components.model import require_lm
from components.state import (
    RL_SEED,
    RL_VOTES,
    cast_vote,
    current_dpo,
    drop_dpo,
    next_rating_pair,
    reset_votes,
    show_rating_pair,
    start_dpo,
    use_rating_prompt,
    want_best_of_n,
    wants_best_of_n,
)
from engine.lm import InputError
from engine.loader import ModelLoadError
from engine.preference import (
    FLATTERY,
    MAX_VOTES,
    PADDING,
    SOURCES,
    builtin_set,
    choose_pairs,
    pair_rows,
    pairs_summary,
)
from engine.registry import ENCODER_DEFAULT_KEY
from engine.text import md_escape
from engine.training import BusyError

BETAS = (0.05, 0.1, 0.2, 0.5)
ENC = ENCODER_DEFAULT_KEY
DPO_LRS = (1e-3, 2e-3, 5e-3)

ensure_frame()
st.title("RLHF: learning from human preferences")
st.markdown(
    "> The post: after fine-tuning, models may go through **RLHF** (reinforcement learning from human feedback) to "
    "align their behaviour with human preferences."
)
st.markdown(
    "The path so far: **pretraining** taught the model to continue text, **fine-tuning** on conversations taught it "
    "to answer. RLHF adds a third step: people compare answers, and the model is pushed towards the ones they prefer. "
    "Everything below runs live on this computer with the real model (SmolLM2-135M-Instruct)."
)
page_links(("pretraining", "fine_tuning"))

lm = require_lm()
key = lm.key
builtin = builtin_set()
store = caches.preference_store(key)

# ------------------------------------------------------------------------------------------------ 1. rate
st.subheader("1. Be the rater")
st.markdown(
    "The model writes two answers to a prompt (sampled through its chat template at temperature 1, top-p 0.95, at most "
    "32 tokens each, so they differ; written by the fast 4-bit decoder, so a busy class does not wait). "
    "Pick the better one. That verdict is one row of preference data: *(prompt, chosen answer, rejected answer)*."
)
st.pills("Example prompts", builtin.rating_prompts[:6], key="rl_pick", on_change=use_rating_prompt,
         args=("rl_pick", "rl_prompt"))
prompt = prompt_input("Prompt", key="rl_prompt", default=builtin.rating_prompts[0], height=68)
if not prompt.strip():
    empty_text_notice("a prompt")
else:
    seed = int(st.session_state.get(RL_SEED, 0))
    try:
        answer_a, answer_b = caches.rating_pair(key, prompt, seed)
    except InputError as err:
        show_error(err)
    else:
        show_rating_pair(key, prompt, answer_a, answer_b)
        col_a, col_b = st.columns(2)
        for col, name, text in ((col_a, "A", answer_a), (col_b, "B", answer_b)):
            with col.container(border=True):
                st.markdown(f"**Answer {name}**")
                st.text(text or "(empty answer)")
        b1, b2, b3, b4, b5 = st.columns(5)
        b1.button("A is better", key="rl_vote_a", on_click=cast_vote, args=("A",), type="primary")
        b2.button("B is better", key="rl_vote_b", on_click=cast_vote, args=("B",), type="primary")
        b3.button("Tie", key="rl_vote_tie", on_click=cast_vote, args=("tie",))
        b4.button("Skip", key="rl_vote_skip", on_click=cast_vote, args=("skip",))
        b5.button("Other answers", key="rl_next", on_click=next_rating_pair, icon=":material/refresh:")
counts = store.counts()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Votes on this server", f"{counts['total']:,}")
m2.metric("A / B preferred", f"{counts['A']} / {counts['B']}")
m3.metric("Ties", counts["tie"])
m4.metric("Your votes", st.session_state.get(RL_VOTES, 0))
st.caption(
    f":material/groups: **Shared:** every session on this server adds to one preference set. It lives **in memory** "
    f"only, keeps at most the latest {MAX_VOTES} votes, stores no names, and is cleared by the reset below or when the "
    "server restarts. Skips are not stored; ties train the reward model as 50/50 and are left out of DPO."
)
with st.popover("Teacher: clear the class's votes", icon=":material/delete:"):
    st.markdown("This removes **every** vote on this server, for everyone.")
    st.button("Clear all votes", key="rl_reset_votes", on_click=reset_votes, args=(key,), type="primary")

# ------------------------------------------------------------------------------------------------ 2. reward model
st.subheader("2. A reward model learns the preferences")
st.markdown(
    "A **reward model** turns an answer into one number r(answer). It is trained on the pairs with the "
    "**Bradley–Terry** model: p(A preferred over B) = σ(r(A) − r(B)), where σ squashes a difference into a "
    "probability; training raises that probability for the answers raters chose.\n\n"
    "Here r is a small linear head on **frozen features**: the sentence vector of the answer from the encoder of the "
    "*Encoders* page (all-MiniLM-L6-v2, 384 numbers), plus how close that vector is to the prompt's (is the answer "
    "on topic?). Real reward models are usually the language model itself with a score head; we use the small "
    "encoder because it reads text about 20 times faster than the decoder, so the whole reward model trains in "
    "seconds on two CPU cores. Only the head (385 numbers) is trained."
)
st.caption(
    f":material/edit_note: The built-in pairs (*{builtin.name}*: {len(builtin.train)} for training, "
    f"{len(builtin.held_out)} held out) were **written by hand for this app**, not collected from real raters. "
    "Their preference is deliberately clear: a short, kind, helpful answer beats a dismissive or rude one."
)
source = st.segmented_control("Train on", SOURCES, default=SOURCES[0], key="rl_source", bind="query-params") or SOURCES[0]
pairs, ties = choose_pairs(source, builtin.train, store.votes())
train_rows, tie_rows = pair_rows(pairs), pair_rows(ties)
report = None
if len(train_rows) < 2:
    st.info(f"{pairs_summary(pairs, ties)} A reward model needs at least two pairs with a winner: vote above, or "
            "train on the built-in pairs.", icon=":material/how_to_vote:")
else:
    try:
        report = caches.reward_report(ENC, train_rows, tie_rows)
    except (InputError, ModelLoadError) as err:
        show_error(err)
if report is not None:
    r1, r2, r3 = st.columns(3)
    r1.metric("Accuracy on held-out pairs", f"{report.test_accuracy:.0%}",
              help="Fraction of the built-in held-out pairs where the chosen answer gets the higher reward. "
                   "Guessing gives 50%.")
    r2.metric("Training pairs", f"{report.train_pairs}", help=pairs_summary(pairs, ties))
    r3.metric("Time (features + training)", f"{report.seconds:.1f} s")
    show_chart(reward_pairs_figure(report), key="rl_reward_pairs")
    right = sum(1 for row in report.test_rows if row[3] > row[4])
    versus_lm = st.toggle(
        "Compare with the language model's own likelihood", key="rl_likelihood", bind="query-params",
        help=f"Scores the {2 * len(builtin.held_out)} held-out answers with the language model: about two seconds, "
             "then shared by everyone using this server.",
    )
    likelihoods = caches.pair_likelihoods(key, pair_rows(builtin.held_out)) if versus_lm else None
    verdict = f"On the {report.test_pairs} held-out pairs the reward model ranks **{right}** the right way round."
    if likelihoods is not None:
        likelier = sum(1 for lc, lr in likelihoods if lc > lr)
        verdict += (
            " The language model's own likelihood (how probable it finds each answer word for word, the last column "
            f"below) prefers the chosen answer on **{likelier}**: a likelihood says what the model *would* write, a "
            "reward says what raters *want*. Short answers get higher likelihoods simply because they have fewer "
            "tokens."
        )
    st.markdown(verdict)
    with folded("Every held-out pair, its rewards" + (" and its likelihoods" if likelihoods else ""),
                "rl_pairs_open", ":material/table:") as is_open:
        if is_open:
            st.dataframe(reward_table(report, likelihoods), hide_index=True)

    st.markdown(
        f"**How a reward model can be gamed.** It only learned what separated the training pairs. Below, answers get "
        f"flattery in front (*{md_escape(FLATTERY.strip())}*) or polite padding after (*{md_escape(PADDING.strip())}*): "
        "neither makes an answer more helpful."
    )
    try:
        gaming = caches.reward_gaming(ENC, train_rows, tie_rows)
    except InputError as err:
        show_error(err)
    else:
        st.dataframe(gaming_table(gaming), hide_index=True)
        raised = sum(1 for g in gaming if g.variant_reward > g.reward)
        st.markdown(
            f"The trick raised the reward in **{raised} of {len(gaming)}** cases. A model optimised hard against this "
            "reward would learn to flatter and pad: **reward hacking**. That is why RLHF keeps the tuned model close "
            "to the original (the KL penalty and β below) and why real reward models need far more, and more varied, "
            "data."
        )

# ------------------------------------------------------------------------------------------------ 3. DPO
st.subheader("3. Preference tuning on the live model: DPO")
st.markdown(
    "**DPO** (direct preference optimisation, Rafailov et al. 2023) skips the separate reward model: it raises the "
    "model's log-probability of each chosen answer and lowers that of the rejected one, measured *relative to the "
    "original model* π_ref:\n\n"
    "loss = −log σ(β · [(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])\n\n"
    "β·(log π − log π_ref) is the answer's **implicit reward**. A small β lets the model move further from the "
    "original; the **KL** curve measures how far its next-token distributions have moved. The update is a LoRA "
    "adapter for your session only (as on the fine-tuning page); everyone else keeps the original model."
)
c1, c2, c3, c4 = st.columns(4)
n_pairs = c1.slider("Pairs", 4, 24, 16, step=4, key="rl_pairs", bind="query-params",
                    help="How many pairs DPO trains on, taken from the set picked under **Train on** in section 2.")
steps = c2.slider("Steps", 5, 40, 30, step=5, key="rl_steps", bind="query-params")
beta = c3.select_slider("β", options=list(BETAS), value=0.1, key="rl_beta", bind="query-params")
lr = c4.select_slider("Learning rate", options=list(DPO_LRS), value=DPO_LRS[1], key="rl_lr", bind="query-params",
                      help="Adam's step size. The largest one over-optimises: the margin keeps growing by crushing the "
                           "rejected answers while the KL explodes and the answers degrade.")
dpo_pairs = list(pairs)[:n_pairs]
run = current_dpo(key)
d1, d2, _ = st.columns([1, 1, 2])
run_clicked = d1.button(f"Run DPO: {len(dpo_pairs)} pairs, {steps} steps", key="rl_run_dpo", type="primary",
               icon=":material/model_training:", disabled=len(dpo_pairs) < 1 or (run is not None and not run.finished))
d2.button("Reset", key="rl_reset_dpo", on_click=drop_dpo, icon=":material/restart_alt:", disabled=run is None,
          help="Stop your run (or leave the line) and throw your adapter away.")
if run_clicked:
    try:
        start_dpo(lm, dpo_pairs, builtin.held_out, builtin.held_out_prompts[:3], steps, beta, lr)
    except (BusyError, ValueError, InputError) as err:
        show_error(err)
    run = current_dpo(key)


@fragment(run_every=1.0 if run is not None and not run.finished else None)
def dpo_progress():
    """Live view of this session's DPO run (polled; the training thread never touches Streamlit)."""
    live = current_dpo(key)
    if live is None:
        st.caption("No DPO run yet in this session: press **Run DPO**. Its curves appear here as it trains.")
        return
    if live.status == "queued":
        st.info(f"Waiting for the server's training slot: {live.ahead} training(s) ahead of yours. Only one "
                "training runs at a time so each stays fast.", icon=":material/hourglass_top:")
    elif live.status == "preparing":
        st.info("Reading the pairs with the original model (the reference log-probabilities)…",
                icon=":material/hourglass_top:")
    elif not live.finished and live.status in ("running", "answering"):
        done = max(0, len(live.history) - 1)
        text = (f"Step {done} of {live.steps}" if live.status == "running"
                else "Trained. The tuned model is answering the held-out prompts…")
        st.progress(live.fraction, text=text)
    if live.status == "failed":
        st.error(f"The run failed: {live.error}", icon=":material/error:")
    if live.history:
        show_chart(dpo_curves_figure(live.history, live.steps), key=f"rl_curves_{len(live.history)}")
        first, last = live.history[0], live.history[-1]
        e1, e2, e3, e4 = st.columns(4)
        e1.metric("DPO loss", f"{last.loss:.3f}", delta=f"{last.loss - first.loss:+.3f}", delta_color="inverse")
        e2.metric("Margin (nats)", f"{last.margin:+.2f}", delta=f"{last.margin - first.margin:+.2f}")
        e3.metric("KL from the reference", f"{last.kl:.4f}", help=f"Before training: {first.kl:.4f}")
        e4.metric("Pairs ranked right (implicit reward)", f"{last.accuracy:.0%}")
    if live.finished and live.status != "failed" and live.history:
        if live.held_out_accuracy is not None:
            st.markdown(
                f"Trained in **{live.seconds:.0f} s**. On the {len(live.held_out)} built-in held-out pairs it never "
                f"saw, the tuned model's implicit reward ranks **{live.held_out_accuracy:.0%}** the right way round "
                f"(its chosen-minus-rejected log-prob moved by {live.held_out_margin:+.2f} nats relative to the "
                "original)."
            )
        if live.after_answers:
            before = [caches.original_answer(key, p) for p in live.prompts[: len(live.after_answers)]]
            st.markdown("**Before and after, on prompts that were not in the training pairs** (greedy answers):")
            st.dataframe(answers_table(live.prompts[: len(live.after_answers)], before, live.after_answers),
                         hide_index=True)
    if live.finished and st.session_state.get("_rl_seen_done") != id(live):
        st.session_state["_rl_seen_done"] = id(live)
        st.rerun()  # stop polling: the full page reruns with run_every off


dpo_progress()

# ------------------------------------------------------------------------------------------------ 4. best-of-n
st.subheader("4. Best-of-n: using a reward model without training")
st.markdown(
    "The cheapest way to use a reward model: sample **n** answers and keep the one it scores highest. The model is "
    "not changed at all; you pay with n times the generation."
)
if report is None:
    st.info("Train a reward model in section 2 first.", icon=":material/info:")
else:
    e1, e2 = st.columns([3, 1])
    bon_prompt = e1.selectbox("Prompt", builtin.held_out_prompts, key="rl_bon_prompt", bind="query-params")
    n = e2.slider("n", 2, 8, 4, key="rl_n", bind="query-params")
    st.button(f"Sample {n} answers and pick the best", key="rl_bon_go", on_click=want_best_of_n,
              icon=":material/casino:", disabled=wants_best_of_n())
    bon = None
    if wants_best_of_n():
        try:
            bon = caches.best_of_n(key, ENC, train_rows, tie_rows, bon_prompt, n, 0)
        except InputError as err:
            show_error(err)
    if bon is not None:
        show_chart(best_of_n_figure(bon), key="rl_best_of_n")
        st.markdown(f"**Picked by the reward model** (reward {bon.rewards[0]:+.2f}):")
        st.text(bon.answers[0])
        likeliest = max(range(len(bon.answers)), key=lambda i: bon.logprob[i] / max(1, bon.tokens[i]))
        st.caption(
            "The same answer is also the language model's likeliest per token." if likeliest == 0 else
            f"The language model itself finds answer #{likeliest + 1} likeliest per token: the reward model and the "
            "model's own likelihood disagree."
        )

# ------------------------------------------------------------------------------------------------ 5. PPO
st.subheader("5. PPO-style RLHF (described, not run here)")
st.markdown(
    ":material/menu_book: **Described, not run on this page.** The original RLHF recipe (InstructGPT, 2022) trains the "
    "reward model as in section 2, then treats the language model as a *policy*: it samples answers to many prompts, "
    "the reward model scores each, and a reinforcement-learning algorithm (**PPO**, proximal policy optimisation) "
    "updates the model to make high-scoring answers more likely. The objective is the reward **minus a KL penalty**, "
    "r(x, y) − β·log(π(y|x) / π_ref(y|x)), so the model cannot drift far from the original just to please the reward "
    "model (the reward hacking of section 2). PPO needs the policy, a frozen reference copy, the reward model and a "
    "value model in memory and many sampling rounds: too heavy for two CPU cores and a classroom. DPO (section 3) "
    "optimises the same KL-regularised objective in closed form from the pairs directly, which is why it is popular."
)
