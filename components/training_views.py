"""Cached computations and views for the pretraining and fine-tuning pages (also the perplexity part of evaluation).

Heavy work is cached with ``st.cache_resource`` keyed by ``(model_key, plain inputs)`` so identical requests from
many sessions cost one model run, and widgets that only change the display never re-run the model. Cached results
are shared: never modify them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st
import torch

from components.charts import ACCENT, HIGHLIGHT, MUTED, token_label, unique_labels
from components.model import load_model
from components.ui import esc
from engine.lm import MAX_INPUT_TOKENS
from engine.scoring import TextScore, random_token_ids, score_completion, score_ids, shuffled_words
from engine.training import MAX_TRAIN_TOKENS, GradientStep, gradient_step

#: Loss (nats) at which the surprise colour is fully saturated.
SURPRISE_MAX = 10.0
#: The learning rates the one-step demo tries (plain SGD).
STEP_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


# ------------------------------------------------------------------------------------------------ cached compute
def _bos(lm) -> list[int]:
    return [lm.info.bos_token_id] if lm.info.bos_token_id is not None else []


@st.cache_resource(show_spinner="Scoring the text with the model…", max_entries=256)
def text_score(model_key: str, text: str) -> TextScore:
    """Per-token scores of ``text`` (every token scored; the first one given only the start-of-text token).

    Raises:
        ValueError: Empty text, or more than :data:`engine.lm.MAX_INPUT_TOKENS` tokens (message ready to show).
    """
    lm = load_model(model_key)
    ids = lm.encode(text)
    if not ids:
        raise ValueError("The text is empty.")
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"The text is {len(ids):,} tokens; this page scores at most {MAX_INPUT_TOKENS:,}. Shorten it.")
    return score_ids(lm, _bos(lm) + ids)


@st.cache_resource(show_spinner=False, max_entries=64)
def baseline_scores(model_key: str, text: str, seed: int) -> dict[str, tuple[str, TextScore]]:
    """The text, the same words shuffled, and as many uniformly random tokens: label → (shown text, score)."""
    lm = load_model(model_key)
    natural = text_score(model_key, text)
    shuffled_text = shuffled_words(text, seed)
    shuffled = text_score(model_key, shuffled_text)
    rand_ids = random_token_ids(lm, len(natural.tokens), seed)
    rand = score_ids(lm, _bos(lm) + rand_ids)
    return {
        "Natural text": (text, natural),
        "Same words, shuffled": (shuffled_text, shuffled),
        "Random tokens": (lm.decode(rand_ids), rand),
    }


@st.cache_resource(show_spinner="Computing the gradient and taking one step…", max_entries=32)
def one_step(model_key: str, text: str) -> GradientStep:
    """One gradient-descent step on ``text`` at each of :data:`STEP_LRS` (the shared model is not changed).

    Raises:
        ValueError: Fewer than 2 or more than :data:`engine.training.MAX_TRAIN_TOKENS` tokens.
    """
    lm = load_model(model_key)
    ids = lm.encode(text)
    if len(ids) + 1 > MAX_TRAIN_TOKENS:
        raise ValueError(f"The sentence is {len(ids)} tokens; keep it under {MAX_TRAIN_TOKENS} for this step.")
    if not ids:
        raise ValueError("The sentence is empty.")
    return gradient_step(lm, _bos(lm) + ids, STEP_LRS)


@st.cache_resource(show_spinner=False, max_entries=64)
def answer_score(model_key: str, question: str, answer: str) -> TextScore:
    """log p(answer, then end of turn | the question as a chat user message), token by token."""
    lm = load_model(model_key)
    prompt_ids = lm.encode(lm.chat_prompt([{"role": "user", "content": question}]))
    answer_ids = lm.encode(answer.strip())
    if lm.info.eos_token_id is not None:
        answer_ids = answer_ids + [lm.info.eos_token_id]  # "…and then stop": a cut-off answer is penalised
    if len(prompt_ids) + len(answer_ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"Question and answer are over {MAX_INPUT_TOKENS:,} tokens together. Shorten them.")
    return score_completion(lm, prompt_ids, answer_ids)


@st.cache_resource(show_spinner="The model is writing…", max_entries=64)
def generation(model_key: str, prompt: str, chat: bool, max_new_tokens: int = 40) -> str:
    """Greedy output of the shared model (deterministic, so caching it is exact)."""
    from engine.evaluation import greedy_generate

    lm = load_model(model_key)
    if len(lm.encode(prompt)) > MAX_INPUT_TOKENS:
        raise ValueError(f"The prompt is over {MAX_INPUT_TOKENS:,} tokens. Shorten it.")
    return greedy_generate(lm, prompt, max_new_tokens=max_new_tokens, chat=chat)


# ------------------------------------------------------------------------------------------------ views
_MD_SPECIAL = "\\`*_{}[]()<>#+-.!|~$"


def md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax in user- or model-derived text placed inside ``st.markdown``."""
    text = text.replace("\n", "↵").replace("\t", "→")
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def surprise_colour(loss: float) -> str:
    """Background for a token with this loss: white (expected) to red (surprising)."""
    a = min(max(loss, 0.0) / SURPRISE_MAX, 1.0)
    return f"rgba(240, 62, 62, {0.06 + 0.84 * a:.2f})"


def surprise_html(score: TextScore, max_tokens: int | None = None) -> str:
    """The text as token chips coloured by surprise (−log p); hover shows p, loss and rank. All escaped."""
    toks = score.tokens if max_tokens is None else score.tokens[:max_tokens]
    out = ['<div class="llmx-chips" style="display:flex;flex-wrap:wrap;gap:3px;line-height:1.25">']
    for t in toks:
        shown = t.text.replace("\n", "↵").replace("\t", "→")
        shown = shown if shown.strip() else "·" * max(1, len(shown))
        dark = t.loss > SURPRISE_MAX * 0.6
        title = f"p = {t.prob:.2e} · loss = {t.loss:.2f} nats · rank {t.rank:,}"
        out.append(
            f'<span class="llmx-chip" title="{esc(title)}" style="background:{surprise_colour(t.loss)};'
            f"color:{'#fff' if dark else '#1a1a1a'};border-radius:5px;padding:2px 5px;"
            f'font-family:ui-monospace,monospace;white-space:pre">{esc(shown)}</span>'
        )
    if max_tokens is not None and len(score.tokens) > max_tokens:
        out.append(f'<span style="opacity:0.7">… {len(score.tokens) - max_tokens:,} more tokens</span>')
    out.append("</div>")
    return "".join(out)


def surprise_legend_html() -> str:
    """A small legend for :func:`surprise_html`."""
    cells = "".join(
        f'<span style="background:{surprise_colour(v)};color:{"#fff" if v > SURPRISE_MAX * 0.6 else "#1a1a1a"};'
        f'padding:1px 6px;border-radius:4px;font-size:0.85em">{v:g}</span>'
        for v in (0, 1, 2, 4, 6, 8, 10)
    )
    return (
        '<div style="display:flex;gap:4px;align-items:center;margin:4px 0 8px 0;font-size:0.9em">'
        f"<span>loss in nats (−log p):</span>{cells}<span>+ (hover a token for details)</span></div>"
    )


def token_loss_figure(score: TextScore, title: str | None = None) -> go.Figure:
    """Bars of per-token loss in text order, with the average as a dashed line."""
    labels = unique_labels([token_label(t.text) for t in score.tokens])
    losses = [t.loss for t in score.tokens]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=losses,
            marker_color=[surprise_colour(v) for v in losses],
            marker_line=dict(color="#c92a2a", width=0.5),
            customdata=[[t.prob, t.rank] for t in score.tokens],
            hovertemplate="%{x}<br>loss %{y:.2f} nats<br>p = %{customdata[0]:.2e}<br>rank %{customdata[1]}<extra></extra>",
        )
    )
    fig.add_hline(y=score.mean_loss, line_dash="dash", line_color=ACCENT,
                  annotation_text=f"average {score.mean_loss:.2f}", annotation_position="top left")
    fig.update_layout(
        title=title,
        xaxis=dict(type="category", tickangle=-45, title=None),
        yaxis=dict(title="loss = −log p (nats)", rangemode="tozero"),
        height=360,
        showlegend=False,
    )
    return fig


def baseline_figure(names: Sequence[str], scores: Sequence[TextScore], vocab_size: int) -> go.Figure:
    """Average loss of each variant, with perplexity in the labels and the uniform-guess loss as a reference."""
    losses = [s.mean_loss for s in scores]
    fig = go.Figure(
        go.Bar(
            x=list(names),
            y=losses,
            marker_color=[ACCENT, HIGHLIGHT, MUTED][: len(losses)],
            text=[f"loss {v:.2f}<br>perplexity {s.perplexity:,.0f}" for v, s in zip(losses, scores)],
            textposition="auto",
            hovertemplate="%{x}: average loss %{y:.3f} nats<extra></extra>",
        )
    )
    uniform = math.log(vocab_size)
    fig.add_hline(y=uniform, line_dash="dot", line_color="#495057",
                  annotation_text=f"uniform guess over {vocab_size:,} tokens: {uniform:.2f}",
                  annotation_position="top left")
    fig.update_layout(yaxis=dict(title="average loss (nats)", rangemode="tozero"), height=340, showlegend=False)
    return fig


def step_sweep_figure(gs: GradientStep, chosen: int) -> go.Figure:
    """Loss after one step against the learning rate (log x), with the loss before as a line."""
    ys = [v for v in [*gs.loss_after, gs.loss_before] if v > 0 and math.isfinite(v)] or [1.0]
    fig = go.Figure(
        go.Scatter(
            x=gs.learning_rates,
            y=gs.loss_after,
            mode="lines+markers",
            line_color=ACCENT,
            marker=dict(size=[14 if i == chosen else 8 for i in range(len(gs.learning_rates))],
                        color=[HIGHLIGHT if i == chosen else ACCENT for i in range(len(gs.learning_rates))]),
            hovertemplate="learning rate %{x}<br>loss after %{y:.3f}<extra></extra>",
            name="after one step",
        )
    )
    fig.add_hline(y=gs.loss_before, line_dash="dash", line_color=MUTED)
    # On log axes annotation coordinates are log10 values (hline annotations land in the wrong place there).
    fig.add_annotation(x=math.log10(min(gs.learning_rates)), y=math.log10(max(gs.loss_before, 1e-6)),
                       text=f"loss before the step: {gs.loss_before:.2f}", showarrow=False, xanchor="left",
                       yanchor="bottom", font=dict(color="#495057"))
    fig.update_layout(
        xaxis=dict(type="log", title="learning rate (step size)"),
        yaxis=dict(
            title="average loss after the step (nats, log scale)",
            type="log",
            range=[math.log10(max(1e-3, 0.8 * min(ys))), math.log10(1.25 * max(ys))],
        ),
        height=340,
        showlegend=False,
    )
    return fig


def before_after_tokens_figure(pieces: Sequence[str], before: Sequence[float], after: Sequence[float]) -> go.Figure:
    """Grouped bars of per-token loss before and after a step."""
    labels = unique_labels([token_label(p) for p in pieces])
    fig = go.Figure(
        [
            go.Bar(name="before", x=labels, y=list(before), marker_color=MUTED,
                   hovertemplate="%{x}: %{y:.2f} nats<extra>before</extra>"),
            go.Bar(name="after one step", x=labels, y=list(after), marker_color=ACCENT,
                   hovertemplate="%{x}: %{y:.2f} nats<extra>after</extra>"),
        ]
    )
    fig.update_layout(
        barmode="group",
        xaxis=dict(type="category", tickangle=-45),
        yaxis=dict(title="loss (nats)", rangemode="tozero"),
        height=340,
        legend=dict(orientation="h", y=1.1),
    )
    return fig


def loss_curve_figure(losses: Sequence[float], total_steps: int | None = None) -> go.Figure:
    """Training loss per step (the live curve)."""
    steps = list(range(1, len(losses) + 1))
    fig = go.Figure(
        go.Scatter(x=steps, y=list(losses), mode="lines+markers", line_color=ACCENT,
                   hovertemplate="step %{x}: loss %{y:.3f}<extra></extra>")
    )
    fig.update_layout(
        xaxis=dict(title="step", range=[0.5, (total_steps or max(steps, default=1)) + 0.5]),
        yaxis=dict(title="loss on your text (nats)", rangemode="tozero"),
        height=300,
        showlegend=False,
    )
    return fig


def compare_distributions_figure(
    lm, before: torch.Tensor, after: torch.Tensor, k: int = 8, target: int | None = None
) -> go.Figure:
    """Grouped bars: next-token probabilities before and after fine-tuning for the union of both top-k lists."""
    ids: list[int] = []
    for probs in (after, before):
        for i in torch.topk(probs, k).indices.tolist():
            if i not in ids:
                ids.append(int(i))
    if target is not None and target not in ids:
        ids.append(int(target))
    ids.sort(key=lambda i: -float(max(before[i], after[i])))
    labels = unique_labels([token_label(lm.token_text(i)) + (" ★" if i == target else "") for i in ids])
    fig = go.Figure(
        [
            go.Bar(name="original model", y=labels, x=[float(before[i]) for i in ids], orientation="h",
                   marker_color=MUTED, hovertemplate="%{y}: %{x:.4f}<extra>original</extra>"),
            go.Bar(name="after fine-tuning", y=labels, x=[float(after[i]) for i in ids], orientation="h",
                   marker_color=ACCENT, hovertemplate="%{y}: %{x:.4f}<extra>fine-tuned</extra>"),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="probability of the next token", tickformat=".0%", range=[0, 1]),
        height=max(280, 40 * len(ids) + 80),
        legend=dict(orientation="h", y=1.08),
    )
    return fig


def preference_figure(labels: Sequence[str], scores: Sequence[TextScore]) -> go.Figure:
    """Per-answer total log-likelihood (higher = the model finds it more likely)."""
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=[s.total_logprob for s in scores],
            marker_color=[ACCENT, HIGHLIGHT][: len(scores)],
            text=[f"log p = {s.total_logprob:.1f}<br>{len(s.tokens)} tokens, {-s.mean_loss:.2f} per token"
                  for s in scores],
            textposition="auto",
            hovertemplate="%{x}: log p = %{y:.2f}<extra></extra>",
        )
    )
    fig.update_layout(yaxis=dict(title="log p(answer | question), nats"), height=320, showlegend=False)
    return fig


# ------------------------------------------------------------------------------------------------ fine-tune state
FT_STATE = "ft_state"
#: Most prompts whose fine-tuned outputs one session keeps (each is a [V] tensor plus a few ids).
_PROBE_MEMO = 8


class FineTuneRun:
    """One session's fine-tune: its adapter, its loss curve, and memoised outputs of the fine-tuned model.

    Lives in ``st.session_state[FT_STATE]`` only: the shared model is never changed, and "reset" just drops this.
    """

    def __init__(self, model_key: str, text: str, steps: int, lr: float, adapter, seconds: float):
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

    def outputs(self, lm, prompt: str, new_tokens: int = 10) -> tuple[torch.Tensor, list[int]]:
        """``[V]`` next-token probabilities and a greedy continuation of ``prompt`` with the adapter applied."""
        from engine.training import adapted_greedy, adapted_logits

        if prompt not in self._memo:
            ids = lm.encode(prompt)
            probs = torch.softmax(adapted_logits(lm, self.adapter, ids)[-1].double(), dim=-1).float()  # [V]
            cont = adapted_greedy(lm, self.adapter, ids, new_tokens)
            if len(self._memo) >= _PROBE_MEMO:
                self._memo.pop(next(iter(self._memo)))
            self._memo[prompt] = (probs, cont)
        return self._memo[prompt]


def current_run(model_key: str) -> FineTuneRun | None:
    """The session's fine-tune for this model, if any (a run on another model is dropped)."""
    run = st.session_state.get(FT_STATE)
    if run is not None and run.model_key != model_key:
        st.session_state.pop(FT_STATE, None)
        return None
    return run


@st.cache_resource(show_spinner=False, max_entries=64)
def base_continuation(model_key: str, prompt: str, new_tokens: int = 10) -> list[int]:
    """Greedy continuation of ``prompt`` by the original shared model."""
    from engine.training import adapted_greedy

    return adapted_greedy(load_model(model_key), None, load_model(model_key).encode(prompt), new_tokens)


def probe_target(lm, fact: str, probe: str) -> int | None:
    """The token that follows ``probe`` inside ``fact`` when the probe is a prefix of it (e.g. ' purple')."""
    f, p = lm.encode(fact), lm.encode(probe)
    if p and len(f) > len(p) and f[: len(p)] == p:
        return int(f[len(p)])
    return None
