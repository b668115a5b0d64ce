"""Cached computations and figures for the prompts & chat page.

Cached functions are keyed by plain values (model key, strings, tuples), so a class opening the same example runs the
model once. Results are shared between sessions: never modify them.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from components.charts import ACCENT, HIGHLIGHT, MUTED
from components.compute import logits_for_text
from components.model import load_model
from engine import prompting
from engine.lm import MAX_INPUT_TOKENS

#: Few-shot examples for the sentiment task (hand-written; the model never saw them as a set).
SENTIMENT_EXAMPLES = (
    ("I loved every minute of this film.", "positive"),
    ("The battery died after one day.", "negative"),
    ("Friendly staff and great coffee.", "positive"),
)
SENTIMENT_LABELS = (" positive", " negative", " Positive", " Negative")
#: The chat keeps at most this many user turns before asking for a reset (bounded memory and run time).
MAX_CHAT_TURNS = 8
#: The templated conversation is cut (oldest turns first) to fit this many tokens.
MAX_CHAT_TOKENS = 768

Messages = tuple[tuple[str, str], ...]


def as_messages(messages: Messages) -> list[dict[str, str]]:
    """``((role, content), …)`` → the role/content dicts the template takes."""
    return [{"role": r, "content": c} for r, c in messages]


@st.cache_resource(show_spinner=False, max_entries=256)
def render(model_key: str, messages: Messages, add_generation_prompt: bool = True) -> prompting.ChatRender:
    """The templated string and its tokens (no forward pass)."""
    return prompting.render_chat(load_model(model_key), as_messages(messages), add_generation_prompt)


@st.cache_resource(show_spinner=False, max_entries=256)
def token_pieces(model_key: str, ids: tuple[int, ...]) -> tuple[str, ...]:
    """Readable text of each token."""
    return tuple(load_model(model_key).token_texts(ids))


@st.cache_resource(show_spinner="Scoring the labels…", max_entries=256)
def label_scores(model_key: str, prompt: str, labels: tuple[str, ...]) -> list[prompting.LabelScore]:
    """p(label | prompt) for each label on the real model."""
    # The next-token logits come from the shared cache of components.compute (the same forward pass that the
    # next-token charts use), so scoring single-token labels costs no extra pass.
    logits = logits_for_text(model_key, prompt)  # raises ValueError past MAX_INPUT_TOKENS
    return prompting.label_probabilities(load_model(model_key), prompt, labels, next_logits=logits)


@st.cache_resource(show_spinner="Generating…", max_entries=256)
def greedy(model_key: str, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy continuation of ``prompt`` (deterministic, so it can be cached and shared)."""
    lm = load_model(model_key)
    ids = lm.encode(prompt)
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"The prompt is longer than {MAX_INPUT_TOKENS:,} tokens: shorten it.")
    return prompting.greedy_continuation(lm, ids, max_new_tokens)


def label_figure(columns: dict[str, list[prompting.LabelScore]]) -> go.Figure:
    """Grouped bars: p(label) for each label under each prompt, side by side."""
    colours = (MUTED, ACCENT, HIGHLIGHT)
    fig = go.Figure()
    for (name, scores), colour in zip(columns.items(), colours):
        fig.add_trace(
            go.Bar(
                x=[f"'{s.label}'" for s in scores],
                y=[s.prob for s in scores],
                name=name,
                marker_color=colour,
                text=[f"{s.prob:.1%}" for s in scores],
                textposition="outside",
                hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "p(label | prompt)", "tickformat": ".0%", "rangemode": "tozero"},
        xaxis={"title": "label (the leading space is part of the token)", "type": "category"},
        height=340,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
