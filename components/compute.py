"""Cached model computations shared by pages and sessions.

``st.cache_resource`` keeps one result per (model, input) for every session, so 30 students opening the same example
cost one forward pass. Results are returned as-is to every caller: never modify them in place.
"""

from __future__ import annotations

import streamlit as st
import torch

from components.model import require_lm, selected_key
from engine.lm import MAX_INPUT_TOKENS


@st.cache_resource(show_spinner=False, max_entries=512)
def _next_token_logits(model_key: str, text: str) -> torch.Tensor:
    from components.model import load_model

    lm = load_model(model_key)
    ids = lm.encode(text)
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(
            f"The prompt is {len(ids):,} tokens long; this page reads at most {MAX_INPUT_TOKENS:,}. Shorten it."
        )
    return lm.next_token_logits(ids)


def next_token_logits(text: str) -> torch.Tensor:
    """``[V]`` logits for the token after ``text`` on the session's model (cached across sessions).

    Raises:
        ValueError: If the text is empty or too long; the message is ready to show.
    """
    require_lm()
    if not text.strip():
        raise ValueError("The prompt is empty.")
    return _next_token_logits(selected_key(), text)


def next_token_probs(text: str) -> torch.Tensor:
    """``[V]`` next-token probabilities for ``text`` (cached logits, softmax on the fly)."""
    return torch.softmax(next_token_logits(text).double(), dim=-1).float()
