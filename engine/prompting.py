"""Prompts on the real model: the chat template, label probabilities for zero-/few-shot prompts, and chat turns.

A chat model still only continues one string of tokens. The chat template turns role/content messages into that
string, with special tokens (``<|im_start|>``, ``<|im_end|>``) marking who speaks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.lm import LanguageModel

ROLES = ("system", "user", "assistant")


#: Few-shot examples for the sentiment task (hand-written; the model never saw them as a set).
SENTIMENT_EXAMPLES = (
    ("I loved every minute of this film.", "positive"),
    ("The battery died after one day.", "negative"),
    ("Friendly staff and great coffee.", "positive"),
)
SENTIMENT_LABELS = (" positive", " negative", " Positive", " Negative")
#: The one instruction every sentiment prompt starts with, zero-shot and few-shot alike (the Prompts page and the
#: ML → LLM page), so few-shot differs from zero-shot only by its examples and its gain is not overstated.
SENTIMENT_INSTRUCTION = "Is the sentiment of the review positive or negative?"
#: The chat keeps at most this many user turns before asking for a reset (bounded memory and run time).
MAX_CHAT_TURNS = 8
#: The templated conversation is cut (oldest turns first) to fit this many tokens.
MAX_CHAT_TOKENS = 768

@dataclass(frozen=True)
class ChatRender:
    """What the model really reads for a list of messages.

    Attributes:
        text: The exact templated string.
        ids: Its token ids.
        special: Per-token flag, ``True`` for special (control) tokens.
        default_system: The system text the template inserted because the messages had none (``None`` otherwise).
    """

    text: str
    ids: list[int]
    special: list[bool]
    default_system: str | None

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


def clean_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Keep only messages with a known role and non-blank content (the template would render blanks as noise)."""
    out = []
    for m in messages:
        role, content = str(m.get("role", "")), str(m.get("content", ""))
        if role in ROLES and content.strip():
            out.append({"role": role, "content": content})
    return out


def render_chat(lm: LanguageModel, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> ChatRender:
    """Apply the model's chat template and tokenize the result.

    Args:
        lm: The model (its tokenizer holds the template).
        messages: Role/content dicts; blank ones are skipped.
        add_generation_prompt: End with the opening of an assistant turn, so the model's next tokens are its reply.

    Raises:
        ValueError: If no message is left (the template cannot render an empty conversation).
    """
    msgs = clean_messages(messages)
    if not msgs:
        raise ValueError("There are no messages to put in the template: write at least one.")
    text = lm.chat_prompt(msgs, add_generation_prompt=add_generation_prompt)
    ids = lm.encode(text)
    default_system = None
    if msgs[0]["role"] != "system":
        default_system = _inserted_system(text)
    return ChatRender(text, ids, [lm.is_special(i) for i in ids], default_system)


def _inserted_system(text: str) -> str | None:
    """The system message the template added on its own: the first turn of the rendered text, if it is a system turn."""
    start = "<|im_start|>system\n"
    if not text.startswith(start):
        return None
    end = text.find("<|im_end|>", len(start))
    return text[len(start) : end] if end > 0 else None


# ------------------------------------------------------------------------------------------ label probabilities
@dataclass(frozen=True)
class LabelScore:
    """How likely the model is to continue a prompt with one label.

    Attributes:
        label: The label text as scored (e.g. ``" positive"``; the leading space is part of the token).
        prob: p(label | prompt), the product over the label's tokens.
        share: ``prob`` renormalised over the labels compared (sums to 1 across them).
        n_tokens: Number of tokens in the label.
    """

    label: str
    prob: float
    share: float
    n_tokens: int


def label_probabilities(
    lm: LanguageModel, prompt: str, labels: Sequence[str], next_logits: torch.Tensor | None = None
) -> list[LabelScore]:
    """p(label | prompt) for each label, over the full vocabulary (multi-token labels: chain rule).

    Single-token labels share one forward pass over the prompt; a multi-token label costs one more pass.

    Args:
        lm: The model.
        prompt: The prompt text (non-empty).
        labels: Candidate continuations, each non-empty.
        next_logits: The ``[V]`` next-token logits after ``prompt`` if already computed (saves one forward pass).

    Raises:
        ValueError: On an empty prompt, no labels, or a label with no tokens.
    """
    prompt_ids = lm.encode(prompt)
    if not prompt_ids:
        raise ValueError("The prompt is empty.")
    if not labels:
        raise ValueError("There are no labels to compare.")
    label_ids = [lm.encode(label) for label in labels]
    if any(not ids for ids in label_ids):
        raise ValueError("Every label needs at least one token.")
    if next_logits is None:
        next_logits = lm.forward(prompt_ids).logits[-1]
    next_logp = torch.log_softmax(next_logits.double(), dim=-1)  # [V]
    probs = []
    for ids in label_ids:
        if len(ids) == 1:
            probs.append(math.exp(float(next_logp[ids[0]])))
            continue
        logits = lm.forward(prompt_ids + ids).logits  # [T, V]; position t predicts token t+1
        logp = torch.log_softmax(logits.double(), dim=-1)
        total = sum(float(logp[len(prompt_ids) - 1 + k, tok]) for k, tok in enumerate(ids))
        probs.append(math.exp(total))
    mass = sum(probs)
    return [
        LabelScore(label, p, p / mass if mass > 0 else 0.0, len(ids)) for label, p, ids in zip(labels, probs, label_ids)
    ]


def label_summary(scores: Sequence[LabelScore]) -> tuple[LabelScore, float]:
    """The most likely label and the probability all the labels hold together (the rest went to other tokens)."""
    if not scores:
        raise ValueError("There are no label scores.")
    return max(scores, key=lambda s: s.prob), float(sum(s.prob for s in scores))


def few_shot_prompt(
    examples: Sequence[tuple[str, str]], query: str, input_name: str = "Review", label_name: str = "Sentiment",
    instruction: str = SENTIMENT_INSTRUCTION,
) -> str:
    """A plain-text prompt: the instruction, ``k`` solved examples, then the query with its label left for the model.

    With no examples this is the zero-shot prompt (instruction + input), so both prompts differ only in the examples.
    """
    blocks = [instruction] if instruction else []
    blocks += [f"{input_name}: {x}\n{label_name}: {y}" for x, y in examples]
    blocks.append(f"{input_name}: {query}\n{label_name}:")
    return "\n\n".join(blocks)


def trim_history(
    lm: LanguageModel, messages: Sequence[dict[str, str]], max_tokens: int, keep_system: bool = True
) -> tuple[list[dict[str, str]], int]:
    """Drop the oldest turns until the templated conversation fits ``max_tokens`` (the system message stays).

    This is what chat apps do when a conversation outgrows the context window: the model forgets the start.

    Returns:
        The kept messages and how many were dropped.

    Raises:
        ValueError: If even the system message and the last message do not fit.
    """
    msgs = clean_messages(messages)
    system = [m for m in msgs[:1] if m["role"] == "system" and keep_system]
    rest = msgs[len(system):]
    dropped = 0
    while rest:
        if len(render_chat(lm, system + rest).ids) <= max_tokens:
            return system + rest, dropped
        rest = rest[1:]
        dropped += 1
    raise ValueError(f"The last message alone is longer than {max_tokens:,} tokens: shorten it.")
