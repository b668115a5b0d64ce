"""Cached model computations shared by pages and sessions.

``st.cache_resource`` keeps one result per (model, input) for every session, so 30 students opening the same example
cost one forward pass, and its summaries (softmax, entropy, top candidates) are computed once too. Results are
returned as-is to every caller: never modify them in place.

The chain is text → token ids → logits → :class:`engine.predict.Distribution`, each step cached by plain values.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st
import torch

from components.model import load_model, require_lm, selected_key
from engine.lm import MAX_INPUT_TOKENS
from engine.predict import Distribution, distribution


@st.cache_resource(show_spinner=False, max_entries=512)
def _ids(model_key: str, text: str) -> tuple[int, ...]:
    return tuple(load_model(model_key).encode(text))


@st.cache_resource(show_spinner=False, max_entries=128)
def _logits(model_key: str, ids: tuple[int, ...]) -> torch.Tensor:
    return load_model(model_key).next_token_logits(list(ids))  # [V]


@st.cache_resource(show_spinner=False, max_entries=128)
def _distribution(model_key: str, ids: tuple[int, ...]) -> Distribution:
    return distribution(load_model(model_key), _logits(model_key, ids))


def _checked_ids(model_key: str, text: str) -> tuple[int, ...]:
    if not text.strip():
        raise ValueError("The prompt is empty.")
    ids = _ids(model_key, text)
    if not ids:
        raise ValueError("The prompt has no tokens.")
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(
            f"The prompt is {len(ids):,} tokens long; this page reads at most {MAX_INPUT_TOKENS:,}. Shorten it."
        )
    return ids


def _checked(ids: Sequence[int]) -> tuple[int, ...]:
    ids = tuple(int(i) for i in ids)
    if not ids:
        raise ValueError("The prompt is empty.")
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"The text is now {len(ids):,} tokens; this page reads at most {MAX_INPUT_TOKENS:,}.")
    return ids


def prompt_ids(text: str, model_key: str | None = None) -> tuple[int, ...]:
    """Token ids of a prompt (cached), or a ``ValueError`` whose message is ready to show."""
    return _checked_ids(model_key or selected_key(), text)


def logits_for_text(model_key: str, text: str) -> torch.Tensor:
    """``[V]`` next-token logits after ``text`` on the model ``model_key`` (cached across sessions).

    Raises:
        ValueError: If the text is empty or too long; the message is ready to show.
    """
    return _logits(model_key, _checked_ids(model_key, text))


def next_token_logits(text: str) -> torch.Tensor:
    """``[V]`` logits for the token after ``text`` on the session's model (cached across sessions).

    Raises:
        ValueError: If the text is empty or too long; the message is ready to show.
    """
    require_lm()
    return logits_for_text(selected_key(), text)


def next_token_distribution(text: str) -> Distribution:
    """The next-token :class:`Distribution` after ``text`` (probabilities, entropy, top candidates; cached)."""
    require_lm()
    key = selected_key()
    return _distribution(key, _checked_ids(key, text))


def next_token_probs(text: str) -> torch.Tensor:
    """``[V]`` next-token probabilities for ``text`` (cached; shared, read-only)."""
    return next_token_distribution(text).probs


def logits_for_ids(ids: Sequence[int]) -> torch.Tensor:
    """``[V]`` next-token logits after ``ids`` (cached across reruns and sessions).

    Raises:
        ValueError: If ``ids`` is empty or longer than :data:`engine.lm.MAX_INPUT_TOKENS`.
    """
    return _logits(selected_key(), _checked(ids))


def distribution_for_ids(ids: Sequence[int]) -> Distribution:
    """The next-token :class:`Distribution` after ``ids`` (cached across reruns and sessions)."""
    return _distribution(selected_key(), _checked(ids))
