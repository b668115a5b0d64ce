"""Per-session state that a page keeps between reruns, and the widget callbacks that change it.

Nothing here is shared between sessions (that is :mod:`components.caches`); the computations are the engine's.
"""

from __future__ import annotations

import streamlit as st
import torch

from components.frame import PROMPT_KEY, set_shared_prompt
from components.model import load_model
from engine.predict import take_step
from engine.training import LoraAdapter, adapted_outputs

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
#: Most prompts whose fine-tuned outputs one session keeps (each is a [V] tensor plus a few ids).
_PROBE_MEMO = 8


class FineTuneRun:
    """One session's fine-tune: its adapter, its loss curve, and memoised outputs of the fine-tuned model.

    Lives in ``st.session_state[FT_STATE]`` only: the shared model is never changed, and "reset" just drops this.
    """

    def __init__(self, model_key: str, text: str, steps: int, lr: float, adapter: LoraAdapter, seconds: float):
        self.model_key = model_key
        self.text = text
        self.steps = steps
        self.lr = lr
        self.adapter = adapter
        self.seconds = seconds
        self._memo: dict[str, tuple[torch.Tensor, list[int]]] = {}

    @property
    def losses(self) -> list[float]:
        return list(self.adapter.losses or [])

    def outputs(self, prompt: str, new_tokens: int = 10) -> tuple[torch.Tensor, list[int]]:
        """:func:`engine.training.adapted_outputs` for ``prompt``, memoised for this session."""
        if prompt not in self._memo:
            lm = load_model(self.model_key)
            if len(self._memo) >= _PROBE_MEMO:
                self._memo.pop(next(iter(self._memo)))
            self._memo[prompt] = adapted_outputs(lm, self.adapter, lm.encode(prompt), new_tokens)
        return self._memo[prompt]


def current_run(model_key: str) -> FineTuneRun | None:
    """The session's fine-tune for this model, if any (a run on another model is dropped)."""
    run = st.session_state.get(FT_STATE)
    if run is not None and run.model_key != model_key:
        st.session_state.pop(FT_STATE, None)
        return None
    return run


def reset_run() -> None:
    """Throw the session's adapter away."""
    st.session_state.pop(FT_STATE, None)
