"""Per-session state that a page keeps between reruns, and the widget callbacks that change it.

Nothing here is shared between sessions (that is :mod:`components.caches`); the computations are the engine's.
"""

from __future__ import annotations

import streamlit as st
import torch

from components.frame import PROMPT_KEY, set_shared_prompt
from components.model import load_model
from engine.predict import take_step
from engine.training import (
    DatasetRun,
    FineTuneSettings,
    LoraAdapter,
    ProbeOutput,
    peft_zip,
    probe_output,
    start_dataset_run,
)

# --- the next-token walk: tokens appended by hand to the prompt ---
WALK = "nt_state"  # {"prompt": str, "steps": [engine.predict.Step], "draws": int}
WALK_DIST = "_nt_dist"  # (model key, context ids, probs [V], entropy) on screen, for the step callbacks
WALK_PICK = "nt_pick"
MAX_STEPS = 64


def walk(prompt: str) -> dict:
    """The session's walk; a new prompt starts a new one."""
    state = st.session_state.setdefault(WALK, {"prompt": None, "steps": [], "draws": 0})
    if state["prompt"] != prompt:
        state.update(prompt=prompt, steps=[], draws=0)
    return state


def show_walk_distribution(model_key: str, ids: tuple[int, ...], probs: torch.Tensor, entropy: float) -> None:
    """Remember the distribution on screen: the step buttons choose from it."""
    st.session_state[WALK_DIST] = (model_key, ids, probs, entropy)


def append_step(token_id: int | None, how: str) -> None:
    """Button/pill callback: append one token, recording its probability, rank and the entropy before it."""
    state, dist = st.session_state.get(WALK), st.session_state.get(WALK_DIST)
    if state is None or dist is None or len(state["steps"]) >= MAX_STEPS:
        return
    model_key, _ids, probs, entropy = dist
    if how == "picked" and token_id is None:
        return
    step = take_step(load_model(model_key), probs, entropy, how, token_id, draw=state["draws"])
    if how == "sampled":
        state["draws"] += 1  # draw 0, 1, 2…: a fresh start replays the same draws
    state["steps"].append(step)


def pick_step() -> None:
    """Pills callback: append the candidate clicked."""
    choice = st.session_state.get(WALK_PICK)
    st.session_state[WALK_PICK] = None
    if choice is not None:
        append_step(int(choice), "picked")


def undo_step() -> None:
    state = st.session_state.get(WALK)
    if state and state["steps"]:
        state["steps"].pop()


def reset_walk() -> None:
    state = st.session_state.get(WALK)
    if state:
        state["steps"] = []
        state["draws"] = 0


# --- the tokenizer page's prompt box ---
def use_example(texts: dict[str, str], pill_key: str, multi_key: str) -> None:
    """Pills callback: put the chosen example into the shared prompt (a multi-line one opens the multi-line box)."""
    name = st.session_state.get(pill_key)
    if name in texts:
        if "\n" in texts[name]:
            st.session_state[multi_key] = True
        set_shared_prompt(texts[name])
    st.session_state[pill_key] = None  # a pill is an action, not a state: un-highlight it


def switch_box(multi_key: str) -> None:
    """Toggle callback: carry the prompt into the other kind of box (a one-line box cannot hold line breaks)."""
    text = str(st.session_state.get(PROMPT_KEY, ""))
    if not st.session_state.get(multi_key):
        text = " ".join(text.splitlines())
    set_shared_prompt(text)


# --- answers and choices ---
def clear_choices(keys: tuple[str, ...]) -> None:
    """Button callback: un-answer every widget in ``keys`` (a quiz's "start again")."""
    for key in keys:
        st.session_state[key] = None


# --- the fine-tune: one session's adapter ---
FT_STATE = "ft_state"
#: Most probes whose fine-tuned outputs one session keeps.
_PROBE_MEMO = 12


class FineTuneRun:
    """One session's fine-tune: the live :class:`engine.training.DatasetRun` (its thread trains the adapter) and
    memoised outputs of the fine-tuned model.

    Lives in ``st.session_state[FT_STATE]`` only: the shared model is never changed, and "reset" just drops this.
    """

    def __init__(self, model_key: str, dataset: str, kind: str, run: DatasetRun):
        self.model_key = model_key
        self.dataset = dataset
        self.kind = kind
        self.run = run
        self._memo: dict[tuple, ProbeOutput] = {}
        self._zip: bytes | None = None

    @property
    def adapter(self) -> LoraAdapter:
        return self.run.adapter

    @property
    def losses(self) -> list[float]:
        return list(self.run.train_losses)

    def peft_zip(self) -> bytes:
        """The adapter in PEFT's format, zipped (:func:`engine.training.peft_zip`), built once."""
        if getattr(self, "_zip", None) is None:
            self._zip = peft_zip(load_model(self.model_key), self.run.adapter)
        return self._zip

    def probe(self, prompt: str, reference: str | None = None) -> ProbeOutput:
        """:func:`engine.training.probe_output` of the fine-tuned model, memoised for this session."""
        key = (prompt, reference)
        if key not in self._memo:
            lm = load_model(self.model_key)
            if len(self._memo) >= _PROBE_MEMO:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = probe_output(lm, self.run.adapter, prompt, self.kind, reference)
        return self._memo[key]


def current_run(model_key: str) -> FineTuneRun | None:
    """The session's fine-tune for this model, if any (a run on another model is stopped and dropped)."""
    run = st.session_state.get(FT_STATE)
    if run is not None and run.model_key != model_key:
        reset_run()
        return None
    return run


def start_run(model_key: str, dataset: str, kind: str, train: list, val: list, settings: FineTuneSettings) -> None:
    """Button callback body: queue a fine-tune for this session (any previous one is stopped first).

    Raises:
        BusyError: When the server's line is full.
    """
    reset_run()
    run = start_dataset_run(load_model(model_key), train, val, settings)
    st.session_state[FT_STATE] = FineTuneRun(model_key, dataset, kind, run)


def first_time_finished(run: FineTuneRun) -> bool:
    """True once per run, the first time the live view sees it finished (then the whole page reruns to show the
    results)."""
    if run.run.finished and st.session_state.get("_ft_drawn") is not run:
        st.session_state["_ft_drawn"] = run
        return True
    return False


def stop_run() -> None:
    """Stop button callback: the training thread ends after its current step (or leaves the line)."""
    run = st.session_state.get(FT_STATE)
    if run is not None:
        run.run.stop.set()


def reset_run() -> None:
    """Throw the session's adapter away (stopping its training first)."""
    run = st.session_state.pop(FT_STATE, None)
    if run is not None:
        run.run.stop.set()


# --- summarization: the example pills ---
def use_summary_example(examples: dict[str, tuple[str, str]], pill_key: str, text_key: str, ref_key: str) -> None:
    """Pills callback: put the chosen example's text and our reference summary into the two boxes."""
    from components.frame import forget_link_value

    name = st.session_state.get(pill_key)
    if name in examples:
        text, reference = examples[name]
        for key, value in ((text_key, text), (ref_key, reference)):
            st.session_state[key] = value
            forget_link_value(key)  # the link the page was opened with must not refill the box
    st.session_state[pill_key] = None  # a pill is an action, not a state: un-highlight it


# --- rlhf: the vote buttons and the session's DPO run ---
RL_NONCE = "_rl_nonce"  # a random token per session: only to count its vote on a pair once (never shown or stored)
RL_SEED = "_rl_seed"  # which pair of sampled answers is on screen; a vote moves on to the next one
RL_SHOWN = "_rl_shown"  # (model key, prompt, answer A, answer B) on screen, for the vote buttons
RL_DONE = "_rl_done"  # the last pair this session acted on: a second click on the same pair does nothing
RL_VOTES = "_rl_votes"  # how many votes this session cast (shown to the learner)
RL_RUN = "rl_run"


def show_rating_pair(model_key: str, prompt: str, a: str, b: str) -> None:
    """Remember the pair on screen: the vote buttons record a verdict on exactly this pair."""
    st.session_state[RL_SHOWN] = (model_key, prompt, a, b)


def cast_vote(choice: str) -> None:
    """Vote-button callback: add the verdict to the server's shared set once, then show the next pair.

    ``choice`` is "A", "B", "tie" or "skip" (a skip records nothing). A rerun or a double click on the same pair
    does nothing more: this session remembers the pair it acted on, and the store counts each key once.
    """
    from uuid import uuid4

    from components import caches
    from engine.preference import vote_key

    shown = st.session_state.get(RL_SHOWN)
    if shown is None or st.session_state.get(RL_DONE) == shown:
        return
    st.session_state[RL_DONE] = shown
    model_key, prompt, a, b = shown
    if choice != "skip":
        nonce = st.session_state.setdefault(RL_NONCE, uuid4().hex)
        if caches.preference_store(model_key).add(vote_key(nonce, prompt, a, b), prompt, a, b, choice):
            st.session_state[RL_VOTES] = st.session_state.get(RL_VOTES, 0) + 1
    st.session_state[RL_SEED] = st.session_state.get(RL_SEED, 0) + 1


def next_rating_pair() -> None:
    """Button callback: other answers to the same prompt."""
    st.session_state[RL_SEED] = st.session_state.get(RL_SEED, 0) + 1


def reset_votes(model_key: str) -> None:
    """The teacher's button: clear the server's shared preference set for every session."""
    from components import caches

    caches.preference_store(model_key).reset()
    st.session_state.pop(RL_VOTES, None)


def current_dpo(model_key: str):
    """The session's DPO run (:class:`engine.preference.DpoRun`) for this model, if any."""
    held = st.session_state.get(RL_RUN)
    if held is None:
        return None
    key, run = held
    if key != model_key:
        drop_dpo()
        return None
    return run


def start_dpo(lm, pairs, held_out, prompts, steps: int, beta: float, lr: float) -> None:
    """Start this session's DPO run in its own thread (it waits its turn in the server's training line)."""
    from engine.preference import start_dpo_run

    drop_dpo()
    st.session_state[RL_RUN] = (lm.key, start_dpo_run(lm, pairs, held_out, prompts, steps, beta, lr))


def drop_dpo() -> None:
    """Stop the session's DPO run (if it still runs or waits) and throw its adapter away."""
    held = st.session_state.pop(RL_RUN, None)
    if held is not None:
        held[1].stop.set()


def use_rating_prompt(pill_key: str, text_key: str) -> None:
    """Pills callback: put the chosen example prompt into the rating prompt box."""
    from components.frame import forget_link_value

    choice = st.session_state.get(pill_key)
    if choice:
        st.session_state[text_key] = choice
        forget_link_value(text_key)
    st.session_state[pill_key] = None  # a pill is an action, not a state


# --- attention: choices that depend on the prompt ---
def keep_choice(key: str, options: list, default) -> None:
    """Reset a widget's value to ``default`` when it is not one of ``options`` (the prompt changed, or a shared link
    named a token the prompt does not have)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def default_once(key: str, value) -> None:
    """Give a widget its first value without overriding what the learner (or the link) chose since."""
    if key not in st.session_state:
        st.session_state[key] = value


RL_BON = "_rl_bon_on"  # best-of-n samples only once asked (n generations are the slowest part of the page)


def want_best_of_n() -> None:
    """Button callback: from now on this session samples and ranks best-of-n answers."""
    st.session_state[RL_BON] = True


def wants_best_of_n() -> bool:
    return bool(st.session_state.get(RL_BON))
