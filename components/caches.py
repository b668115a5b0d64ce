"""Every cached computation of the app, in one place: ``(model key, plain inputs)`` → an engine result.

``st.cache_resource`` keeps one result per distinct input for every session, so 30 students opening the same example
cost one forward pass, and a widget that only re-shapes a result (temperature, layer, head…) never runs the model.
Rules for every function here:

- the first argument is the model key (``lm.key`` in the page), the rest are plain hashable values;
- the body loads the shared model with :func:`components.model.load_model` and calls one engine function: no session
  state, no ``require_lm()``, no ``st.stop()``, no maths of its own;
- results are shared by every caller: never modify them in place;
- bad input raises :class:`engine.lm.InputError` (from the engine's one input guard) with a message ready to show,
  and errors are not cached.

New sections go at the end, one ``# --- name ---`` block per feature.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from components.model import load_model
from engine import attention as attn
from engine import context as ctx
from engine import embeddings as emb
from engine import ml_basics as mb
from engine import prompting, scoring
from engine import tokens as tok
from engine import training as tr
from engine.evaluation import TASK_TEMPLATE, greedy_generate
from engine.generation import BatchSample, Reply, greedy_reply, sample_continuations
from engine.lm import MAX_INPUT_TOKENS, checked_ids
from engine.loader import LOADS
from engine.logit_lens import LensResult, logit_lens
from engine.predict import Distribution, NextTokenView, Probe, continuation_probs, distribution, probe
from engine.text import first_line

Messages = tuple[tuple[str, str], ...]


# --- next-token distributions (text → ids → logits → Distribution, each step cached by plain values) ---
@st.cache_resource(show_spinner=False, max_entries=512)
def prompt_ids(model_key: str, text: str, cap: int = MAX_INPUT_TOKENS, what: str = "prompt", why: str = "") -> tuple[int, ...]:
    """Checked token ids of ``text`` (:func:`engine.lm.checked_ids`: raises ``InputError`` with a page message)."""
    return tuple(checked_ids(load_model(model_key), text, cap, what, why=why))


@st.cache_resource(show_spinner=False, max_entries=512)
def token_ids(model_key: str, text: str) -> tuple[int, ...]:
    """Token ids of ``text`` as they are (no checks, no special tokens added): for texts a page measures itself."""
    return tuple(load_model(model_key).encode(text))


@st.cache_resource(show_spinner=False, max_entries=256)
def token_pieces(model_key: str, ids: tuple[int, ...]) -> tuple[str, ...]:
    """Readable text of each token."""
    return tuple(load_model(model_key).token_texts(ids))


@st.cache_resource(show_spinner=False, max_entries=128)
def logits(model_key: str, ids: tuple[int, ...]) -> torch.Tensor:
    """``[V]`` next-token logits after ``ids``."""
    return load_model(model_key).next_token_logits(list(ids))


@st.cache_resource(show_spinner=False, max_entries=128)
def next_distribution(model_key: str, ids: tuple[int, ...]) -> Distribution:
    """The next-token :class:`Distribution` after ``ids`` (probabilities, entropy, top candidates)."""
    return distribution(load_model(model_key), logits(model_key, ids))


def text_distribution(model_key: str, text: str, first_look: bool = False) -> Distribution:
    """:func:`next_distribution` after a text (checked by the one input guard); ``first_look``: computed by the
    load's first look while the model is still loading (:func:`components.model.first_look_or_lm`)."""
    if first_look:
        return first_look_distribution(model_key, text)
    return next_distribution(model_key, prompt_ids(model_key, text))


@st.cache_resource(show_spinner=False, max_entries=16)
def first_look_distribution(model_key: str, text: str) -> Distribution:
    """:func:`text_distribution` from the running load's :class:`engine.first_look.FirstLook` (the same weights read
    without transformers); from the model itself once the load has ended."""
    job = LOADS.peek(model_key)
    look = job.first_look if job is not None else None
    if look is not None:
        ids = checked_ids(look, text)  # an InputError is the page's message, as from the model
        try:
            return distribution(look, look.next_token_logits(ids))
        except Exception:  # noqa: BLE001 - the load itself then reports what is wrong with the weights, with a fix
            pass
    return text_distribution(model_key, text)


@st.cache_resource(show_spinner="Running the model…", max_entries=256)
def next_view(model_key: str, ids: tuple[int, ...], k: int = 6) -> NextTokenView:
    """Top-``k`` next tokens after ``ids``."""
    return next_distribution(model_key, ids).view(load_model(model_key), k)


@st.cache_resource(show_spinner=False, max_entries=256)
def rank_probe(model_key: str, ids: tuple[int, ...], text: str) -> Probe | None:
    """Where ``text``'s first token ranks after ``ids`` (:func:`engine.predict.probe`)."""
    return probe(load_model(model_key), next_distribution(model_key, ids).probs, text)


@st.cache_resource(show_spinner=False, max_entries=256)
def chain_probs(model_key: str, context: tuple[int, ...], cont: tuple[int, ...]) -> tuple[float, ...]:
    """p of each token of ``cont`` given ``context`` and the tokens before it (one forward)."""
    return tuple(continuation_probs(load_model(model_key), list(context), list(cont)))


@st.cache_resource(show_spinner=False, max_entries=64)
def batch_samples(
    model_key: str, ids: tuple[int, ...], n: int, new: int, temperature: float, top_k: int, top_p: float, seed: int
) -> BatchSample:
    """``n`` continuations sampled in one batch; the same settings and seed give the same result."""
    return sample_continuations(load_model(model_key), list(ids), n, new, temperature, top_k, top_p, seed)


# --- tokenization ---
@st.cache_resource(show_spinner=False, max_entries=256)
def tokenize(model_key: str, text: str) -> tok.Tokenization:
    """:func:`engine.tokens.tokenize`."""
    return tok.tokenize(load_model(model_key), text)


@st.cache_resource(show_spinner=False, max_entries=4)
def vocabulary_summary(model_key: str) -> tok.VocabSummary:
    """:func:`engine.tokens.vocabulary_summary`, once per model."""
    return tok.vocabulary_summary(load_model(model_key))


@st.cache_resource(show_spinner=False, max_entries=8)
def compare_texts(model_key: str, items: tuple[tuple[str, str], ...]) -> list[tok.ComparisonRow]:
    """:func:`engine.tokens.compare_texts` (the first item is the reference)."""
    return tok.compare_texts(load_model(model_key), items)


@st.cache_resource(show_spinner=False, max_entries=256)
def character_facts(model_key: str, text: str) -> list[tok.Grapheme]:
    """:func:`engine.tokens.character_facts`: code points, bytes, joiners and tokens of each multi-byte character."""
    return tok.character_facts(load_model(model_key), text)


# --- attention ---
@st.cache_resource(show_spinner=False, max_entries=8)
def attention_run(model_key: str, text: str) -> attn.AttentionRun:
    """One forward pass over ``text`` with attentions, hidden states and head outputs (at most
    :data:`engine.attention.ATTN_MAX_TOKENS` tokens)."""
    lm = load_model(model_key)
    return attn.run_attention(lm, checked_ids(lm, text, attn.ATTN_MAX_TOKENS, why=attn.ATTN_WHY))


@st.cache_resource(show_spinner=False, max_entries=16)
def lens_result(model_key: str, text: str, positions: int = attn.LENS_POSITIONS) -> LensResult:
    """The logit lens over the last ``positions`` tokens, from the cached run's hidden states (no extra forward)."""
    run = attention_run(model_key, text)
    return logit_lens(load_model(model_key), run.ids, hidden_states=run.hidden_states, last_positions=positions, k=3)


@st.cache_resource(show_spinner=False, max_entries=16)
def generated_attention(model_key: str, text: str, new_tokens: int) -> attn.GeneratedAttention:
    """Greedy continuation of ``text`` and the attention that chose each new token."""
    lm = load_model(model_key)
    ids = checked_ids(lm, text, attn.ATTN_MAX_TOKENS, why=attn.ATTN_WHY)
    return attn.generated_attention(lm, ids, max(1, min(int(new_tokens), attn.MAX_GEN_TOKENS)))


@st.cache_resource(show_spinner=False, max_entries=64)
def head_by_hand(model_key: str, text: str, layer: int, head: int, n_tokens: int) -> attn.HeadArithmetic:
    """One head recomputed from the real weights on the first ``n_tokens`` tokens (no forward pass)."""
    return attn.head_arithmetic(load_model(model_key), attention_run(model_key, text), layer, head, n_tokens)


@st.cache_resource(show_spinner=False, max_entries=16)
def bertviz_html(model_key: str, text: str, view: str, layers: tuple[int, ...], n_tokens: int, layer: int) -> str:
    """bertviz head view (``view="head"``) or model view of the first ``n_tokens`` tokens, offline HTML (building the
    JSON for a long prompt takes a moment and is the same for every session)."""
    from components.figures.bertviz import head_view_html, model_view_html

    run = attention_run(model_key, text)
    sub = run.attentions[:, :, :n_tokens, :n_tokens]  # causal: the first n tokens' weights are exact as they are
    if view == "model":
        return model_view_html(run.tokens[:n_tokens], sub, list(layers))
    return head_view_html(run.tokens[:n_tokens], sub, list(layers), layer=layer)


@st.cache_resource(show_spinner=False, max_entries=256)
def token_view(model_key: str, text: str, position: int, layer: int | None, head: int | None) -> attn.TokenView:
    """:func:`engine.attention.token_view` of the cached run (``None``: average over layers / heads)."""
    return attn.token_view(attention_run(model_key, text).attentions, position, layer, head)


@st.cache_resource(show_spinner=False, max_entries=256)
def head_view(model_key: str, text: str, layer: int, head: int) -> attn.HeadView:
    """:func:`engine.attention.head_view` of the cached run."""
    return attn.head_view(attention_run(model_key, text).attentions, layer, head)


@st.cache_resource(show_spinner=False, max_entries=64)
def head_overview(model_key: str, text: str, metric: str) -> attn.HeadOverview:
    """:func:`engine.attention.head_overview` of the cached run."""
    return attn.head_overview(attention_run(model_key, text).attentions, metric)


@st.cache_resource(show_spinner=False, max_entries=16)
def attention_facts(model_key: str, text: str) -> attn.AttentionFacts:
    """:func:`engine.attention.attention_facts` of the cached run (sink share, future mass, key/value groups)."""
    return attn.attention_facts(attention_run(model_key, text).attentions, load_model(model_key).info.kv_heads)


@st.cache_resource(show_spinner=False, max_entries=64)
def block_flow(model_key: str, text: str, position: int = -1) -> attn.BlockFlow:
    """:func:`engine.attention.block_flow` of the cached run: residual stream and attention/MLP updates."""
    return attn.block_flow(attention_run(model_key, text), position)


# --- embeddings ---
@st.cache_resource(show_spinner=False, max_entries=256)
def word_vector(model_key: str, word: str, leading_space: bool) -> emb.WordVector:
    """:func:`engine.embeddings.word_vector`."""
    return emb.word_vector(load_model(model_key), word, leading_space)


@st.cache_resource(show_spinner=False, max_entries=128)
def neighbours(model_key: str, word: str, leading_space: bool, k: int) -> list[emb.Neighbour]:
    """Nearest vocabulary entries to a word's vector, the word's own tokens left out."""
    wv = word_vector(model_key, word, leading_space)
    return emb.nearest_tokens(load_model(model_key), wv.vector, k, exclude_ids=wv.ids)


@st.cache_resource(show_spinner=False, max_entries=64)
def word_map(
    model_key: str, words: tuple[str, ...], leading_space: bool, method: str, dims: int, extra: int
) -> emb.WordMap:
    """:func:`engine.embeddings.word_map` (vectors, cosine matrix, projection)."""
    return emb.word_map(load_model(model_key), words, leading_space, method, dims, extra)


@st.cache_resource(show_spinner=False, max_entries=64)
def analogy(model_key: str, a: str, b: str, c: str, expected: str, leading_space: bool) -> emb.AnalogyResult:
    """:func:`engine.embeddings.analogy`."""
    return emb.analogy(load_model(model_key), a, b, c, k=10, expected=expected or None, leading_space=leading_space)


@st.cache_resource(show_spinner=False, max_entries=32)
def contextual(
    model_key: str, word: str, sentences_a: tuple[str, ...], sentences_b: tuple[str, ...]
) -> emb.ContextualResult:
    """:func:`engine.embeddings.contextual_vectors`: one forward per sentence, then every layer is a slice."""
    return emb.contextual_vectors(load_model(model_key), word, sentences_a, sentences_b)


@st.cache_resource(show_spinner=False, max_entries=256)
def context_projection(model_key: str, word: str, a: tuple[str, ...], b: tuple[str, ...], layer: int) -> emb.Projection:
    """2D PCA of the word's vectors at one layer (a slice of the cached result)."""
    return emb.project(contextual(model_key, word, a, b).vectors[layer], method="pca", dims=2)


@st.cache_resource(show_spinner=False, max_entries=64)
def prompt_vectors(model_key: str, text: str) -> emb.PromptVectors:
    """The first :data:`engine.embeddings.MAX_PROMPT_TOKENS` tokens of ``text`` after every layer (one forward);
    choosing a layer is then a slice."""
    lm = load_model(model_key)
    return emb.prompt_vectors(lm, checked_ids(lm, text, cap=None))  # only a prefix is read


@st.cache_resource(show_spinner=False, max_entries=4)
def embedding_table(model_key: str) -> emb.TableSummary:
    """:func:`engine.embeddings.table_summary`: the table's shape, share of the parameters, tied or not."""
    return emb.table_summary(load_model(model_key))


@st.cache_resource(show_spinner=False, max_entries=128)
def word_rows(model_key: str, word: str, leading_space: bool) -> tuple[np.ndarray, list[str]]:
    """:meth:`engine.embeddings.WordVector.rows`: the word's table rows (and their average) with labels."""
    return word_vector(model_key, word, leading_space).rows(load_model(model_key))


# --- context window ---
@st.cache_resource(show_spinner="Running the model…", max_entries=256)
def answer_prob(model_key: str, ids: tuple[int, ...], answer: str) -> float:
    """p(answer | ids)."""
    return ctx.answer_probability(load_model(model_key), ids, answer)


@st.cache_resource(show_spinner="Trying every window size…", max_entries=32)
def window_sweep(model_key: str, ids: tuple[int, ...], answer: str, fact_start: int | None) -> list[ctx.WindowSweepPoint]:
    """p(answer) for window sizes from 4 tokens to the whole text."""
    return ctx.window_sweep(load_model(model_key), ids, answer, ctx.sweep_windows(len(ids)), fact_start)


@st.cache_resource(show_spinner="Measuring forward passes on this machine…", max_entries=8)
def measure_cost(model_key: str, lengths: tuple[int, ...]) -> list[ctx.CostPoint]:
    """Forward time and attention memory per sequence length, measured once per process and shared."""
    lm = load_model(model_key)
    return ctx.measure_cost(lm, lengths, lm.encode(ctx.COST_FILLER), repeats=2)  # fastest of two: less noise


@st.cache_resource(show_spinner="Sliding the window over the text…", max_entries=64)
def long_text_runs(model_key: str, ids: tuple[int, ...], window: int, stride: int) -> dict[str, ctx.SlidingScore]:
    """Chunks, a sliding window and the whole text in view: three ways to score a long text."""
    return ctx.long_text_runs(load_model(model_key), ids, window, stride)


# --- prompts & chat ---
@st.cache_resource(show_spinner=False, max_entries=256)
def render_chat(model_key: str, messages: Messages, add_generation_prompt: bool = True) -> prompting.ChatRender:
    """The templated string and its tokens (no forward pass)."""
    msgs = [{"role": r, "content": c} for r, c in messages]
    return prompting.render_chat(load_model(model_key), msgs, add_generation_prompt)


@st.cache_resource(show_spinner="Scoring the labels…", max_entries=256)
def label_scores(model_key: str, prompt: str, labels: tuple[str, ...]) -> list[prompting.LabelScore]:
    """p(label | prompt) for each label; single-token labels reuse the shared next-token logits (no extra pass)."""
    next_logits = logits(model_key, prompt_ids(model_key, prompt))
    return prompting.label_probabilities(load_model(model_key), prompt, labels, next_logits=next_logits)


@st.cache_resource(show_spinner="The model is writing…", max_entries=256)
def reply(model_key: str, text: str, max_new_tokens: int) -> Reply:
    """:func:`engine.generation.greedy_reply` to ``text``: the first token from the shared float32 logits (the ones
    the page's distribution shows, so usually cached already), the rest from the fast 4-bit decoder."""
    ids = prompt_ids(model_key, text)
    return greedy_reply(load_model(model_key), ids, max_new_tokens, logits(model_key, ids))


# --- pretraining, fine-tuning, evaluation ---
@st.cache_resource(show_spinner="Scoring the text with the model…", max_entries=256)
def text_score(model_key: str, text: str) -> scoring.TextScore:
    """Every token of ``text`` scored, the first given only the document-start token (``<|endoftext|>``)."""
    return scoring.score_checked_text(load_model(model_key), text)


@st.cache_resource(show_spinner="Scoring the shuffled words and the random tokens…", max_entries=64)
def baseline_scores(model_key: str, text: str, seed: int) -> dict[str, tuple[str, scoring.TextScore]]:
    """The text, the same words shuffled, and as many random tokens: label → (shown text, score).

    The natural text's score is :func:`text_score`'s (cached): the page shows it above, and it is not computed twice.
    """
    return scoring.baseline_scores(load_model(model_key), text, seed, natural=text_score(model_key, text))


@st.cache_resource(show_spinner="Computing the gradient and taking one step…", max_entries=32)
def one_step(model_key: str, text: str) -> tr.GradientStep:
    """One gradient-descent step on ``text`` at each of :data:`engine.training.STEP_LRS` (shared model untouched)."""
    lm = load_model(model_key)
    ids = checked_ids(lm, text, tr.MAX_TRAIN_TOKENS - 1, "sentence")  # + the document-start token
    return tr.gradient_step(lm, scoring.with_text_start(lm, ids), tr.STEP_LRS)


@st.cache_resource(show_spinner=False, max_entries=64)
def answer_score(model_key: str, question: str, answer: str) -> scoring.TextScore:
    """log p(answer, then end of turn | the question as a chat user message), token by token."""
    return scoring.answer_score(load_model(model_key), question, answer)


@st.cache_resource(show_spinner="The model is writing…", max_entries=64)
def generation(model_key: str, prompt: str, chat: bool, max_new_tokens: int = 40) -> str:
    """Greedy output of the shared model, raw or inside the chat template."""
    lm = load_model(model_key)
    checked_ids(lm, prompt)
    return greedy_generate(lm, prompt, max_new_tokens=max_new_tokens, chat=chat)


@st.cache_resource(show_spinner=False, max_entries=64)
def base_continuation(model_key: str, prompt: str, new_tokens: int = 10) -> list[int]:
    """Greedy continuation of ``prompt`` by the original shared model."""
    lm = load_model(model_key)
    return tr.adapted_greedy(lm, None, lm.encode(prompt), new_tokens)


@st.cache_resource(show_spinner="The model is translating…", max_entries=64)
def model_translation(model_key: str, source: str) -> tuple[str, str]:
    """The model's translation of ``source`` (greedy, chat template): (first line of the answer, full answer)."""
    full = generation(model_key, TASK_TEMPLATE.format(source=source), True, 40)
    return first_line(full), full


# --- from ML to LLMs (the numpy toys are cheap but a class re-running them on every click adds up) ---
@st.cache_data(show_spinner=False, max_entries=64)
def regression(n: int, noise: float, degree: int, seed: int) -> tuple[np.ndarray, np.ndarray, mb.PolyFit, float]:
    """:func:`engine.ml_basics.regression_demo`: toy data, its fit and the held-out error."""
    return mb.regression_demo(n, noise, degree, seed)


@st.cache_data(show_spinner=False, max_entries=32)
def classification(spread: float, seed: int) -> tuple[np.ndarray, np.ndarray, mb.SoftmaxClassifier]:
    """Three blobs and a softmax classifier trained on them."""
    X, y = mb.blobs(60, spread, seed)
    return X, y, mb.fit_softmax_classifier(X, y, 3)


@st.cache_data(show_spinner=False, max_entries=64)
def mixture(spread: float, data_seed: int, components: int, n_samples: int, sample_seed: int
            ) -> tuple[mb.Mixture, np.ndarray]:
    """:func:`engine.ml_basics.mixture_demo`: a Gaussian mixture fitted to the blobs and points sampled from it."""
    return mb.mixture_demo(spread, data_seed, components, n_samples, sample_seed)


@st.cache_resource(show_spinner=False, max_entries=256)
def head_summary(model_key: str, text: str) -> mb.HeadSummary:
    """The LM's next-token classifier on ``text`` (one forward), checked by the one input guard."""
    lm = load_model(model_key)
    return mb.head_summary(lm, checked_ids(lm, text))


@st.cache_resource(show_spinner=False, max_entries=256)
def sentence_comparison(model_key: str, a: str, b: str) -> mb.SentenceComparison:
    """``log p(a)`` vs ``log p(b)``."""
    return mb.compare_sentences(load_model(model_key), a, b)


@st.cache_resource(show_spinner=False, max_entries=256)
def prompt_classification(model_key: str, text: str, few_shot: bool) -> mb.PromptClassification:
    """``p(label | text)`` by prompting."""
    return mb.classify_by_prompt(load_model(model_key), text, few_shot=bool(few_shot))


# --- diffusion ---
# The diffusion page's models are small and not the LLM: they are keyed by plain names ("digits", a toy shape, or a
# tuple of the learner's points), never by a model key. Training runs once per server in a background thread
# (a BackgroundJob in a registry cached per server); each session polls it and draws its own progress bar.
# Samples and checks are cached per (model name, source, plain inputs); "trained here" results only exist once
# that run has finished, and the run's config is fixed, so a cached result never goes stale.
DIFFUSION_SOURCES = ("shipped", "trained here")


@st.cache_resource(show_spinner=False, max_entries=1)
def diffusion_digits_data():
    """The 1,797 bundled digits in model space ``[1797, 64]`` and their labels."""
    from engine import diffusion as dm

    return dm.digits_data()


@st.cache_resource(show_spinner=False, max_entries=1)
def diffusion_classifier():
    """``(classifier trained on real digits, its held-out accuracy on real digits)``."""
    from engine import diffusion as dm

    return dm.digit_classifier()


@st.cache_resource(show_spinner=False, max_entries=8)
def diffusion_checkpoint(name: str):
    """The shipped checkpoint ``name`` ("digits" or a toy shape), or None when the file is missing."""
    from engine import diffusion as dm

    path = dm.checkpoint_path(name)
    return dm.load_checkpoint(path) if path.is_file() else None


@st.cache_resource(show_spinner=False, max_entries=1)
def _diffusion_jobs() -> tuple[dict, object]:
    """This server's training runs by ``(name, points)`` and the lock that makes each one start once."""
    import threading

    return {}, threading.Lock()


def diffusion_training(name: str, points: tuple[tuple[float, float], ...] = ()):
    """Start (or join) the one training run of ``name`` on this server: "digits", a toy shape, or "custom" with
    ``points``. Returns an :class:`engine.jobs.BackgroundJob` whose ``result`` is the TrainedModel once done."""
    from engine import diffusion as dm
    from engine.jobs import BackgroundJob

    jobs, lock = _diffusion_jobs()
    with lock:
        job = jobs.get((name, points))
        if job is None or job.error:  # a failed run may be retried
            if name == "digits":
                job = BackgroundJob(lambda report: dm.train_digits(report))
            else:
                data = torch.tensor(points, dtype=torch.float32) if name == "custom" else None
                job = BackgroundJob(lambda report: dm.train_toy(name, report, data))
            if len(jobs) >= 8:  # learners' point sets: keep the server's memory bounded
                jobs.pop(next((k for k in jobs if k[0] == "custom"), None), None)
            jobs[(name, points)] = job.start()
        return job


def diffusion_started(name: str, points: tuple[tuple[float, float], ...] = ()):
    """The training run of ``name`` if someone on this server started it, else None (never starts one)."""
    jobs, lock = _diffusion_jobs()
    with lock:
        return jobs.get((name, points))


def diffusion_model(name: str, source: str, points: tuple[tuple[float, float], ...] = ()):
    """The model the page uses: the shipped checkpoint, or this server's live training run once it has finished
    (None when there is no such model yet)."""
    if source == "shipped" and name != "custom":
        return diffusion_checkpoint(name)
    job = diffusion_started(name, points)
    return job.result if job is not None and job.done else None


def diffusion_ready_sources(name: str) -> list[str]:
    """The :data:`DIFFUSION_SOURCES` that have a model for ``name`` now (the page's picker offers these)."""
    return [s for s in DIFFUSION_SOURCES if diffusion_model(name, s) is not None]


@st.cache_resource(show_spinner="Generating…", max_entries=32)
def diffusion_samples(name: str, source: str, seeds: tuple[int, ...], digit: int | None, guidance: float,
                      points: tuple[tuple[float, float], ...] = ()):
    """:func:`engine.diffusion.sample`: the reverse process for each seed (whole path kept)."""
    from engine import diffusion as dm

    model = diffusion_model(name, source, points)
    if model is None:
        raise ValueError("That model is not trained yet.")
    return dm.sample(model, list(seeds), digit, guidance, clip=1.0 if name == "digits" else None)


@st.cache_resource(show_spinner="Checking the generated digits…", max_entries=16)
def diffusion_quality(source: str, guidance: float, per_digit: int, seed: int):
    """Generate ``per_digit`` digits of each class; how a real-digit classifier reads them; nearest training digits.

    Returns:
        ``(Sampled, Recognition, Nearest)``.
    """
    from engine import diffusion as dm

    seeds = tuple(seed + i for i in range(10 * per_digit))
    wanted = [d for d in range(10) for _ in range(per_digit)]
    model = diffusion_model("digits", source)
    if model is None:
        raise ValueError("That model is not trained yet.")
    images = dm.sample(model, list(seeds), wanted, guidance).final  # [10·per_digit, 64]
    data, _ = diffusion_digits_data()
    clf, _ = diffusion_classifier()
    return images, dm.recognise(clf, images, wanted), dm.nearest_training(images, data)


@st.cache_resource(show_spinner=False, max_entries=64)
def diffusion_forward(index: int, steps: tuple[int, ...], seed: int):
    """Digit ``index`` noised to each of ``steps`` with one ε ``[len(steps), 64]``, and the noise check at the last
    step over all digits."""
    from engine import diffusion as dm

    data, labels = diffusion_digits_data()
    schedule = dm.linear_schedule()
    frames = dm.forward_frames(schedule, data[index], list(steps), seed)  # steps as in the paper: 0 = clean
    return frames, int(labels[index]), dm.noise_check(schedule, data, schedule.steps - 1, seed)


@st.cache_resource(show_spinner=False, max_entries=64)
def diffusion_field(name: str, source: str, step: int, points: tuple[tuple[float, float], ...] = ()):
    """The 2-D model's denoising arrows at ``step``: ``(grid points [G, 2], arrows [G, 2])``."""
    from engine import diffusion as dm

    model = diffusion_model(name, source, points)
    if model is None:
        raise ValueError("That model is not trained yet.")
    return dm.denoise_field(model, step)


# --- encoders ---
# The encoder (all-MiniLM-L6-v2, allow-listed in engine.registry.ALLOWED_ENCODERS) is keyed by its encoder key, the
# decoder by the usual model key, and the encoder-decoder trained here by its training seed. Training runs once per
# server in a BackgroundJob held here (started by the page's button); each session polls it and draws its own
# progress bar and loss curve.
@st.cache_resource(show_spinner="Loading the encoder (all-MiniLM-L6-v2)…", max_entries=1)
def encoder_model(encoder_key: str):
    """The shared, read-only :class:`engine.encoder.Encoder` (raises ``ModelLoadError`` with a fix when missing)."""
    from engine.encoder import load_encoder

    return load_encoder(encoder_key)


@st.cache_resource(show_spinner=False, max_entries=16)
def encoder_run(encoder_key: str, text: str):
    """:meth:`engine.encoder.Encoder.run`: WordPiece tokens, attentions ``[L, H, T, T]``, vectors (one forward)."""
    return encoder_model(encoder_key).run(text)


@st.cache_resource(show_spinner=False, max_entries=16)
def decoder_reading(model_key: str, text: str) -> tuple[list[str], torch.Tensor]:
    """:func:`engine.encoder.decoder_attention`: the decoder's tokens and causal attentions (one forward)."""
    from engine.encoder import decoder_attention

    return decoder_attention(load_model(model_key), text)


@st.cache_resource(show_spinner=False, max_entries=64)
def tokenizer_comparison(encoder_key: str, model_key: str, text: str):
    """:func:`engine.encoder.compare_tokenizers` (no forward pass)."""
    from engine.encoder import compare_tokenizers

    return compare_tokenizers(encoder_model(encoder_key), load_model(model_key), text)


@st.cache_resource(show_spinner="Embedding the sentences…", max_entries=32)
def sentence_similarities(encoder_key: str, model_key: str, sentences: tuple[str, ...]):
    """:func:`engine.encoder.sentence_similarity`: cosine matrices under every vector method at once, so switching
    the method on the page is a view change."""
    from engine.encoder import sentence_similarity

    return sentence_similarity(encoder_model(encoder_key), load_model(model_key), sentences)


@st.cache_resource(show_spinner="Searching…", max_entries=64)
def sentence_search(encoder_key: str, query: str, sentences: tuple[str, ...]):
    """:func:`engine.encoder.semantic_search` (one encoder batch)."""
    from engine.encoder import semantic_search

    return semantic_search(encoder_model(encoder_key), query, list(sentences))


@st.cache_resource(show_spinner=False, max_entries=2)
def seq2seq_training(seed: int):
    """This server's one training run of the date encoder-decoder for ``seed``: an :class:`engine.jobs.BackgroundJob`
    created unstarted (the page starts it); its ``result`` is the :class:`engine.seq2seq.Seq2SeqModel` when done."""
    from engine import seq2seq as s2s
    from engine.jobs import BackgroundJob

    return BackgroundJob(lambda report: s2s.train(s2s.TrainConfig(seed=seed), report))


def seq2seq_model(seed: int):
    """The trained date model, or ``None`` while it is not trained on this server."""
    job = seq2seq_training(seed)
    return job.result if job.done else None


@st.cache_resource(show_spinner=False, max_entries=128)
def seq2seq_translation(seed: int, text: str):
    """:func:`engine.seq2seq.translate`: greedy output and every attention (raises ``ValueError`` for input the model
    cannot read, or before training)."""
    from engine import seq2seq as s2s

    model = seq2seq_model(seed)
    if model is None:
        raise ValueError("The encoder-decoder is not trained yet.")
    return s2s.translate(model, text)


@st.cache_resource(show_spinner="Loading the model from the Hugging Face hub…", max_entries=3)
def hub_model(hub_key: str):
    """The post's model ``hub_key`` (GPT-2, BERT, T5) from :mod:`engine.hub_models`, or the reason it is not available:
    ``(HubModel, None)`` or ``(None, ModelLoadError)``. The failure is kept too, so a server without hub access does
    not retry a network load on every rerun. Pages call this only when the server opted in."""
    from engine.hub_models import load_hub_model
    from engine.loader import ModelLoadError

    try:
        return load_hub_model(hub_key), None
    except ModelLoadError as err:
        return None, err


@st.cache_resource(show_spinner="The model is working…", max_entries=64)
def hub_run(hub_key: str, text: str):
    """:meth:`engine.hub_models.HubModel.run`: the job the model's architecture is for (raises ``ValueError`` for input
    it cannot use)."""
    model, err = hub_model(hub_key)
    if model is None:
        raise err
    return model.run(text)


# --- accuracy (#17): conditioning token, weights, ML connections, ML-to-LLM toys ---
@st.cache_resource(show_spinner="Scoring the text three ways…", max_entries=64)
def conditioning(model_key: str, text: str) -> list[scoring.ConditioningRow]:
    """:func:`engine.scoring.conditioning_comparison`: the text after ``<|endoftext|>``, ``<|im_start|>``, nothing."""
    return scoring.conditioning_comparison(load_model(model_key), text)


@st.cache_resource(show_spinner=False, max_entries=256)
def ml_connections(model_key: str, text: str) -> mb.Connections:
    """:func:`engine.ml_basics.connections`: one live number per mapping of the post's "connects to ML" section."""
    return mb.connections(load_model(model_key), text)


@st.cache_resource(show_spinner=False, max_entries=8)
def original_weights_path(model_key: str) -> str | None:
    """Where the original hub weights of ``model_key`` sit in the local Hugging Face cache (``None``: not here)."""
    from engine.weights import hub_weights_path

    return hub_weights_path(load_model(model_key).spec.hub_id)


@st.cache_resource(show_spinner="Comparing with the original weights…", max_entries=2)
def original_weights_difference(model_key: str):
    """:func:`engine.weights.compare_models` of the loaded model against the original weights from the local cache
    (never downloads); ``None`` when they are not on this computer."""
    if original_weights_path(model_key) is None:
        return None
    from transformers import AutoModelForCausalLM

    from engine.weights import compare_models

    lm = load_model(model_key)
    reference = AutoModelForCausalLM.from_pretrained(lm.spec.hub_id, local_files_only=True, dtype=torch.float32)
    reference.eval()
    with lm.exclusive():
        return compare_models(lm.model, reference, lm.encode)


@st.cache_data(show_spinner=False, max_entries=256)
def point_prediction(spread: float, seed: int, x1: float, x2: float) -> mb.PointPrediction:
    """The toy classifier's p(class | point), most likely class first."""
    _X, _y, clf = classification(spread, seed)
    return mb.point_prediction(clf, x1, x2)


@st.cache_data(show_spinner=False, max_entries=64)
def mixture_stats(spread: float, data_seed: int, components: int, n_samples: int, sample_seed: int) -> dict:
    """:func:`engine.ml_basics.mixture_stats` of the real points, the fitted mixture and its samples."""
    X, _y = mb.blobs(60, spread, data_seed)
    mix, samples = mixture(spread, data_seed, components, n_samples, sample_seed)
    return mb.mixture_stats(X, mix, samples)



# --- serving ---
@st.cache_resource(show_spinner="The local model is answering the request…", max_entries=64)
def served_chat(model_key: str, messages: tuple[tuple[str, str], ...], temperature: float, max_tokens: int,
                fast: bool):
    """A chat-completion request answered by the local model (:func:`engine.serving.serve_chat`, seed 0).

    Cached per (model, messages, settings): the same request from any session is answered once, so its timings are
    those of the first answer.
    """
    from engine import serving

    return serving.serve_chat(load_model(model_key), messages, temperature, max_tokens, seed=0, fast=fast)


# --- summarization ---
@st.cache_resource(show_spinner=False, max_entries=1)
def _summary_store():
    """This server's finished summaries, shared by every session (:class:`engine.summarize.SummaryStore`)."""
    from engine.summarize import SummaryStore

    return SummaryStore(capacity=256)


@st.cache_resource(show_spinner=False, max_entries=256)
def summary_prompt(model_key: str, text: str, length: str, words: int, max_new_tokens: int):
    """:func:`engine.summarize.build_prompt`: the checked, templated prompt (raises ``InputError``)."""
    from engine.summarize import build_prompt

    return build_prompt(load_model(model_key), text, length, words, max_new_tokens)


def _summary_key(model_key: str, text: str, length: str, words: int, max_new_tokens: int, fast: bool) -> tuple:
    from engine.summarize import clamp_cap

    return (model_key, text, length, int(words) if length == "About N words" else 0, clamp_cap(max_new_tokens), fast)


def finished_summary(model_key: str, text: str, length: str, words: int, max_new_tokens: int, fast: bool):
    """The stored :class:`engine.summarize.Summary` for these settings, or None when nobody has generated it yet."""
    return _summary_store().get(_summary_key(model_key, text, length, words, max_new_tokens, fast))


def summary_stream(model_key: str, text: str, length: str, words: int, max_new_tokens: int, fast: bool):
    """The summary's text piece by piece for ``st.write_stream``: from the store at once when this server already
    made it, else streamed from the model (greedy) and stored for every later reader (raises ``InputError``)."""
    from engine.summarize import clamp_cap, summary_steps

    lm = load_model(model_key)
    prompt = summary_prompt(model_key, text, length, words, max_new_tokens)
    cap = clamp_cap(max_new_tokens)
    return _summary_store().stream(_summary_key(model_key, text, length, words, max_new_tokens, fast),
                                   lambda: summary_steps(lm, prompt, cap, fast), cap, lm.info.eos_token_id, fast)


@st.cache_resource(show_spinner=False, max_entries=256)
def summary_scores(text: str, summary: str, reference: str):
    """:func:`engine.summarize.compare_with_lead`: ROUGE of the summary and of the lead baseline (raises
    ``ValueError``)."""
    from engine.summarize import compare_with_lead

    return compare_with_lead(text, summary, reference)


@st.cache_resource(show_spinner=False, max_entries=8)
def summary_metric_misses(reference: str):
    """:func:`engine.summarize.metric_misses` (ROUGE and BLEU of the blind-spot examples)."""
    from engine.summarize import metric_misses

    return metric_misses(reference)


# --- rlhf ---
# The server's shared preference set is one engine object per model key (in memory, bounded, thread-safe). Answers to
# rate, the reward model and best-of-n are keyed by plain values: the training pairs as tuples of strings, so a new
# vote (a new tuple) trains a new reward model and an unchanged set reuses the cached one. DPO runs per session
# (components.state) in the server's training line.
PairRows = tuple[tuple[str, str, str], ...]


@st.cache_resource(show_spinner=False, max_entries=4)
def preference_store(model_key: str):
    """The server's one :class:`engine.preference.PreferenceStore` for this model (votes of every session)."""
    from engine.preference import PreferenceStore

    return PreferenceStore()


@st.cache_resource(show_spinner="The model is writing two answers…", max_entries=128)
def rating_pair(model_key: str, prompt: str, seed: int) -> tuple[str, str]:
    """Two sampled answers to ``prompt`` (:func:`engine.preference.rating_pair`; same seed, same pair)."""
    from engine import preference as pref

    return pref.rating_pair(load_model(model_key), prompt, seed)


def _pairs(rows: PairRows):
    from engine.preference import PreferencePair

    return [PreferencePair(*r) for r in rows]


# The reward model's features come from the sentence encoder (keyed by its encoder key, shared with the encoders page).
@st.cache_resource(show_spinner="Training the reward model…", max_entries=8)
def reward_report(encoder_key: str, train: PairRows, ties: PairRows = ()):
    """:func:`engine.preference.fit_reward_model` on ``train`` (+ ties), tested on the built-in held-out pairs."""
    from engine import preference as pref

    return pref.fit_reward_model(encoder_model(encoder_key), _pairs(train), pref.builtin_set().held_out, ties)


@st.cache_resource(show_spinner="Scoring the answers with the language model…", max_entries=8)
def pair_likelihoods(model_key: str, pairs: PairRows):
    """:func:`engine.preference.pair_likelihoods`: the LM's own log p of each pair's two answers."""
    from engine import preference as pref

    return pref.pair_likelihoods(load_model(model_key), _pairs(pairs))


@st.cache_resource(show_spinner="Trying to fool the reward model…", max_entries=8)
def reward_gaming(encoder_key: str, train: PairRows, ties: PairRows = ()):
    """:func:`engine.preference.gaming_probes` on held-out pairs for the reward model trained on ``train``."""
    from engine import preference as pref

    model = reward_report(encoder_key, train, ties).model
    return pref.gaming_probes(encoder_model(encoder_key), model, pref.builtin_set().held_out)


@st.cache_resource(show_spinner="Sampling and scoring answers…", max_entries=32)
def best_of_n(model_key: str, encoder_key: str, train: PairRows, ties: PairRows, prompt: str, n: int, seed: int):
    """:func:`engine.preference.best_of_n` with the reward model trained on ``train``."""
    from engine import preference as pref

    model = reward_report(encoder_key, train, ties).model
    return pref.best_of_n(load_model(model_key), encoder_model(encoder_key), model, prompt, n, seed)


@st.cache_resource(show_spinner="The original model is answering…", max_entries=32)
def original_answer(model_key: str, prompt: str) -> str:
    """The shared model's greedy answer to ``prompt`` (chat template), for before/after comparisons."""
    from engine import preference as pref

    return pref.adapted_answer(load_model(model_key), None, prompt)


# --- fine-tuning on a dataset ---
@st.cache_resource(show_spinner="Reading the dataset…", max_entries=32)
def fine_tune_dataset(model_key: str, name: str, data: bytes, seed: int = 0):
    """An upload, a built-in (``name`` = ``"builtin:<key>"``, ``data`` empty) or typed lines, parsed, tokenized and
    split: :class:`engine.datasets.Prepared`. Raises :class:`engine.datasets.DatasetError` with the message to show."""
    from engine import datasets as ds

    return ds.prepare(load_model(model_key), name, data, seed)


@st.cache_resource(show_spinner="The original model is answering the probe…", max_entries=64)
def fine_tune_probe_before(model_key: str, prompt: str, kind: str, reference: str | None = None):
    """:func:`engine.training.probe_output` of the original shared model (shared by every session)."""
    lm = load_model(model_key)
    return tr.probe_output(lm, None, prompt, kind, reference)
