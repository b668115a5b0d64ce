"""Serving an LLM: a chat turn as a chat-completion API request and response, answered by the local model.

Hosted APIs (OpenAI, Anthropic) and open-model servers (vLLM, llama.cpp's ``llama-server``, Ollama) all take a list of
role/content messages plus a few settings and return the reply, a finish reason and a token count. Inside, every one
of them does the same four things this module does on the local model, with no network call:

1. the **chat template** turns the messages into one string;
2. the tokenizer turns it into **tokens** (their count is the ``prompt_tokens`` a provider bills);
3. the **generation loop** runs one forward pass over the whole prompt (the *prefill*, which fills the key/value
   cache), then one short pass per new token that reuses the cache, until the end-of-turn token or ``max_tokens``;
4. the new tokens are **detokenized** into the reply text.

The loop is :meth:`engine.lm.LanguageModel.generate_stream`, the app's one KV-cached generation loop.
"""

from __future__ import annotations

import json
import pprint
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from engine import prompting
from engine.lm import MAX_INPUT_TOKENS, MAX_NEW_TOKENS, InputError, LanguageModel, check_length

#: Where an OpenAI-compatible server started on your own machine usually listens (``llama-server``'s default port);
#: only used in the client code shown for running elsewhere.
LOCAL_SERVER_URL = "http://localhost:8080/v1"
#: Longest message accepted (characters), so one request stays bounded.
MAX_MESSAGE_CHARS = 2000

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ServedChat:
    """One chat-completion request answered by the local model, with what happened inside.

    Attributes:
        model: The model name (what the request's ``model`` field names).
        messages: The request's messages, ``(role, content)`` pairs in order.
        temperature: Sampling temperature (0 = greedy).
        max_tokens: Most tokens the reply may have.
        seed: Seed of the sampler (only matters when ``temperature > 0``).
        fast: Whether the 4-bit decoder generated the reply (else the float32 model).
        templated: The exact string the chat template made of the messages.
        default_system: The system text the template inserted on its own, or ``None``.
        prompt_ids: ``[P]`` token ids of ``templated`` (what the model reads).
        completion_ids: ``[C]`` generated token ids, the end-of-turn token included when it was produced.
        pieces: Readable text of each generated token.
        probs: Probability each generated token had when it was chosen.
        step_seconds: ``[C]`` wall time of each loop step; step 0 includes the prefill over the whole prompt.
        text: The reply: ``completion_ids`` detokenized, special tokens dropped.
        finish_reason: ``"stop"`` when the model produced its end-of-turn token, ``"length"`` when it hit
            ``max_tokens`` (or the end of the context window) first.
        eos_token: The end-of-turn token's text (``<|im_end|>`` for SmolLM2).
    """

    model: str
    messages: Messages
    temperature: float
    max_tokens: int
    seed: int
    fast: bool
    templated: str
    default_system: str | None
    prompt_ids: list[int]
    completion_ids: list[int]
    pieces: list[str]
    probs: list[float]
    step_seconds: list[float]
    text: str
    finish_reason: str
    eos_token: str

    @property
    def prompt_tokens(self) -> int:
        """Tokens the model read (the templated conversation)."""
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        """Tokens the model generated, the end-of-turn token included."""
        return len(self.completion_ids)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def prefill_seconds(self) -> float:
        """Time to the first token: one forward pass over the whole prompt, then the first pick."""
        return self.step_seconds[0] if self.step_seconds else 0.0

    @property
    def decode_seconds(self) -> list[float]:
        """Wall time of each step after the first: one forward pass over one new token, reusing the cache."""
        return self.step_seconds[1:]

    @property
    def per_token_seconds(self) -> float:
        """Mean time of one decode step (0 when only one token was generated)."""
        steps = self.decode_seconds
        return sum(steps) / len(steps) if steps else 0.0

    @property
    def total_seconds(self) -> float:
        return sum(self.step_seconds)

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of the decode steps (the rate a chat user watches; prefill excluded)."""
        steps = self.decode_seconds
        return len(steps) / sum(steps) if steps and sum(steps) > 0 else 0.0


def clean_messages(system: str, user: str) -> Messages:
    """The request's messages from an optional system prompt and the user's turn.

    Raises:
        InputError: When the user turn is empty or either text is longer than :data:`MAX_MESSAGE_CHARS`.
    """
    if not user.strip():
        raise InputError("The user message is empty: write the chat turn you want to send.")
    for name, text in (("system prompt", system), ("user message", user)):
        if len(text) > MAX_MESSAGE_CHARS:
            raise InputError(f"The {name} is {len(text):,} characters long; this page accepts at most "
                             f"{MAX_MESSAGE_CHARS:,}. Shorten it.")
    msgs = [("system", system)] if system.strip() else []
    return (*msgs, ("user", user))


def request_body(model: str, messages: Messages, temperature: float, max_tokens: int, seed: int = 0) -> dict:
    """The JSON body of an OpenAI-style ``POST /v1/chat/completions`` request for these settings."""
    body = {
        "model": model,
        "messages": [{"role": r, "content": c} for r, c in messages],
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
    }
    if temperature > 0:
        body["seed"] = int(seed)  # a fixed seed makes the sampled reply repeatable (supported by most servers)
    return body


def response_body(served: ServedChat) -> dict:
    """The JSON body an OpenAI-style server returns for ``served`` (only fields the local run really computed)."""
    return {
        "object": "chat.completion",
        "model": served.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": served.text},
                "finish_reason": served.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": served.prompt_tokens,
            "completion_tokens": served.completion_tokens,
            "total_tokens": served.total_tokens,
        },
    }


def serve_chat(lm: LanguageModel, messages: Messages, temperature: float = 0.0, max_tokens: int = 64,
               seed: int = 0, fast: bool = False) -> ServedChat:
    """Answer a chat-completion request with the local model: template → tokens → KV-cached loop → detokenize.

    Args:
        lm: The shared model (read only).
        messages: ``(role, content)`` pairs; blank ones are skipped by the template step.
        temperature: 0 for greedy decoding, above 0 to sample (with ``seed``).
        max_tokens: Most tokens to generate (clipped to :data:`engine.lm.MAX_NEW_TOKENS`).
        seed: Sampler seed.
        fast: Generate with the 4-bit decoder (see :meth:`LanguageModel.generate_stream`).

    Raises:
        InputError: No usable message, or a conversation longer than :data:`engine.lm.MAX_INPUT_TOKENS` tokens.
    """
    try:
        rendered = prompting.render_chat(lm, [{"role": r, "content": c} for r, c in messages])
    except InputError:
        raise
    except ValueError as err:  # no message left after cleaning
        raise InputError(str(err)) from err
    ids = check_length(rendered.ids, MAX_INPUT_TOKENS, "conversation")  # [P]
    max_tokens = max(1, min(int(max_tokens), MAX_NEW_TOKENS))
    eos = lm.info.eos_token_id
    completion, probs, stamps = [], [], []
    for step in lm.generate_stream(ids, max_tokens, temperature=float(temperature), seed=int(seed), fast=fast):
        completion.append(step.token_id)
        probs.append(step.prob)
        stamps.append(step.elapsed_s)  # seconds since the loop started, after this token was chosen
    steps = [b - a for a, b in zip([0.0, *stamps[:-1]], stamps)]
    finish = "stop" if completion and completion[-1] == eos else "length"
    return ServedChat(
        model=lm.info.name,
        messages=tuple(messages),
        temperature=float(temperature),
        max_tokens=max_tokens,
        seed=int(seed),
        fast=bool(fast),
        templated=rendered.text,
        default_system=rendered.default_system,
        prompt_ids=list(ids),
        completion_ids=completion,
        pieces=lm.token_texts(completion),
        probs=probs,
        step_seconds=steps,
        text=lm.decode(completion, skip_special_tokens=True),
        finish_reason=finish,
        eos_token=lm.info.eos_token or "",
    )


def client_code(body: dict, base_url: str = LOCAL_SERVER_URL) -> dict[str, str]:
    """The same request as code to run elsewhere against an OpenAI-compatible server: ``{"curl": …, "python": …}``.

    The body is quoted for the shell (``shlex.quote``) and written as a Python literal (``pprint``), so any text the
    learner typed stays data, never code.
    """
    url = base_url.rstrip("/") + "/chat/completions"
    curl = (
        f"curl {shlex.quote(url)} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}"
    )
    extra = "".join(f",\n    {k}={v!r}" for k, v in body.items() if k not in ("model", "messages"))
    messages = pprint.pformat(body["messages"], indent=4, width=100, sort_dicts=False)
    python = (
        "from openai import OpenAI  # pip install openai\n\n"
        f"client = OpenAI(base_url={base_url!r}, api_key='not-needed-locally')\n"
        "reply = client.chat.completions.create(\n"
        f"    model={body['model']!r},\n"
        f"    messages={messages}{extra},\n"
        ")\n"
        "print(reply.choices[0].message.content)\n"
        "print(reply.choices[0].finish_reason, reply.usage)\n"
    )
    return {"curl": curl, "python": python}


def step_rows(served: ServedChat, limit: int = MAX_NEW_TOKENS) -> list[dict]:
    """One row per loop step for a table: what the step read, the token it chose, its probability and its time."""
    rows = []
    for i, (piece, tid, p, s) in enumerate(zip(served.pieces, served.completion_ids, served.probs,
                                              served.step_seconds)):
        if i >= limit:
            break
        rows.append({
            "step": i + 1,
            "forward pass over": f"{served.prompt_tokens} prompt tokens (prefill)" if i == 0 else "1 new token",
            "token chosen": piece,
            "token id": tid,
            "probability": p,
            "milliseconds": 1000 * s,
        })
    return rows


def as_pairs(messages: Sequence[dict[str, str]]) -> Messages:
    """``[{"role", "content"}]`` → ``((role, content), …)`` (hashable, for caching)."""
    return tuple((str(m["role"]), str(m["content"])) for m in messages)
