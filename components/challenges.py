""""Try it" challenges under a page: the tasks, each checked live on the learner's own input, with a done state.

The frame calls :func:`challenge_box` after the page ran (``streamlit_app.py``), so no page file draws them. The values
checked are the ones the page's widgets hold (the shared prompt, the page's URL-bound keys), cleaned the way the page
cleans them, and every model result comes from the same cached call the page made (:mod:`components.caches`): a
check costs no extra forward pass for what the page already computed. Because those values live in the URL, the
page's share link reproduces the check.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from components import caches
from components.frame import PROMPT_KEY
from components.inputs import clean_text
from components.model import get_lm
from components.state import FT_STATE, RL_RUN
from engine import challenges as ch
from engine import context as ctx
from engine import prompting
from engine.lm import LanguageModel
from engine.loader import ModelLoadError
from engine.registry import ENCODER_DEFAULT_KEY
from engine.text import md_escape

#: URL key of the "true sentiment" the learner picks for the few-shot challenge.
TRUTH_KEY = "ch_truth"
#: Prefix of the map page's quiz radios (``pages/genai_landscape.py``).
QUIZ_PREFIX = "land_q_"
#: Session key where the Using an LLM page keeps its last answered request (``pages/using_llms.py``).
SERVED_KEY = "_api_sent"


class _Missing(Exception):
    """A value the check needs is not on the page yet (the widget was not drawn this run)."""


def _text(key: str, limit: int = 4000, one_line: bool = False) -> str:
    """A text widget's value, cleaned the way the page cleans it."""
    if key not in st.session_state:
        raise _Missing
    text = clean_text(str(st.session_state[key] or ""), limit)[0]
    return " ".join(text.split()) if one_line else text


def _value(key: str, default):
    value = st.session_state.get(key, default)
    return default if value is None else value


def _prompt() -> str:
    prompt = _text(PROMPT_KEY)
    if not prompt.strip():
        return ""
    return prompt


def _next_token_paris(lm: LanguageModel) -> ch.Check:
    prompt = _prompt()
    return ch.paris_dethroned(lm, prompt, caches.text_distribution(lm.key, prompt))


def _next_token_sure(lm: LanguageModel) -> ch.Check:
    prompt = _prompt()
    return ch.confident_prompt(lm, prompt, caches.text_distribution(lm.key, prompt))


def _tokenization_ids(lm: LanguageModel) -> tuple[str, list[int]]:
    text = _prompt()
    if not text:
        raise ValueError("Type some text first.")
    return text, caches.tokenize(lm.key, text).ids


def _tokenization_long_word(lm: LanguageModel) -> ch.Check:
    text, ids = _tokenization_ids(lm)
    return ch.long_one_token_word(lm, text, ids)


def _tokenization_more_tokens(lm: LanguageModel) -> ch.Check:
    text, ids = _tokenization_ids(lm)
    return ch.more_tokens_than_characters(lm, text, ids)


def _temperature_logits(lm: LanguageModel):
    logits = caches.logits(lm.key, caches.prompt_ids(lm.key, _prompt()))  # the page's own cached call
    return logits, float(_value("tmp_t", 1.0)), int(_value("tmp_k", 0)), float(_value("tmp_p", 1.0))


def _temperature_nonsense(lm: LanguageModel) -> ch.Check:
    return ch.nonsense_temperature(*_temperature_logits(lm))


def _temperature_tame(lm: LanguageModel) -> ch.Check:
    return ch.tamed_temperature(*_temperature_logits(lm))


def _truth() -> str:
    value = st.session_state.get(TRUTH_KEY) or st.query_params.get(TRUTH_KEY)
    return value if value in ch.LABELS else "negative"


def _prompts_few_shot_wrong(lm: LanguageModel) -> ch.Check:
    review = _text("pr_review", 300).replace("\n", " ")
    if not review.strip():
        return ch.few_shot_wrong(lm, review, _truth())
    prompt = prompting.few_shot_prompt(prompting.SENTIMENT_EXAMPLES, review)  # the page's few-shot prompt
    return ch.few_shot_wrong(lm, review, _truth(), caches.label_scores(lm.key, prompt, prompting.SENTIMENT_LABELS))


def _context_window_recall(lm: LanguageModel) -> ch.Check:
    text = _text("cw_text")
    answer = _text("cw_answer", 40).strip()
    window = int(_value("cw_window", 16))
    if not text.strip() or not answer:
        return ch.window_recall(lm, text, window, answer, 0.0)
    ids = caches.prompt_ids(lm.key, text, what="text")  # the page's limit on what the model reads
    kept = tuple(ctx.apply_window(ids, window).kept)
    return ch.window_recall(lm, text, window, answer, caches.answer_prob(lm.key, kept, " " + answer))


def _embeddings_analogy(lm: LanguageModel) -> ch.Check:
    a, b, c, expected = (_text(k, 40, one_line=True) for k in ("emb_a", "emb_b", "emb_c", "emb_expect"))
    leading = bool(_value("emb_space", True))
    if not (a and b and c and expected) or (a.lower(), b.lower(), c.lower()) == ch.DEFAULT_ANALOGY:
        return ch.analogy_on_top(lm, a, b, c, expected, leading)  # says what is missing, without a model call
    return ch.analogy_on_top(lm, a, b, c, expected, leading, caches.analogy(lm.key, a, b, c, expected, leading))


def _scored(key: str, lm: LanguageModel):
    text = _text(key)
    if not text.strip():
        raise ValueError("Type some text first.")
    return text, caches.text_score(lm.key, text)


def _pretraining_predictable(lm: LanguageModel) -> ch.Check:
    return ch.predictable_text(lm, *_scored("pt_text", lm))


def _pretraining_surprising(lm: LanguageModel) -> ch.Check:
    return ch.surprising_text(lm, *_scored("pt_text", lm))


def _evaluation_false_wins(lm: LanguageModel) -> ch.Check:
    (a, sa), (b, sb) = _scored("ev_a", lm), _scored("ev_b", lm)
    return ch.b_beats_a(lm, a, b, sa, sb)


def _served():
    saved = st.session_state.get(SERVED_KEY)
    if not saved:
        raise ValueError("Send a request on the page first.")
    return saved["served"]


def _attention_head(lm: LanguageModel):
    """The prompt and the "One head" view's layer and head, as the page has them, and its cached head view."""
    text = _prompt()
    if not text:
        raise ValueError("Type a prompt first.")
    if "at_layer" not in st.session_state or "at_head" not in st.session_state:
        raise _Missing
    layer, head = int(st.session_state["at_layer"]), int(st.session_state["at_head"])
    run = caches.attention_run(lm.key, text)  # the page's own cached calls: no extra forward pass
    return text, layer, head, caches.head_view(lm.key, text, layer, head).weights, run.tokens


def _attention_previous(lm: LanguageModel) -> ch.Check:
    text, layer, head, weights, tokens = _attention_head(lm)
    return ch.previous_token_head(lm, text, layer, head, weights, tokens)


def _attention_focused(lm: LanguageModel) -> ch.Check:
    text, layer, head, weights, tokens = _attention_head(lm)
    return ch.focused_head(lm, text, layer, head, weights, tokens)


def _encoders_search(lm: LanguageModel) -> ch.Check:
    from engine.encoder import sentence_lines

    sentences = tuple(sentence_lines(_text("enc_sents")))  # as the page reads the box
    query = _text("enc_query", one_line=True)
    if len(sentences) < 2 or not query:
        return ch.meaning_beats_keywords(None, query, sentences, [])  # says what is missing, without a model call
    return ch.meaning_beats_keywords(None, query, sentences, caches.sentence_search(ENCODER_DEFAULT_KEY, query,
                                                                                    sentences))


def _encoders_wordpiece(lm: LanguageModel) -> ch.Check:
    text = _text("enc_tok", one_line=True)
    if not text or not text.isalpha():
        return ch.wordpiece_longer(None, lm, text, None)  # says what to type, without tokenizing
    return ch.wordpiece_longer(None, lm, text, caches.tokenizer_comparison(ENCODER_DEFAULT_KEY, lm.key, text))


def _summarization_beats_lead(lm: LanguageModel) -> ch.Check:
    from engine.summarize import DEFAULT_CAP, DEFAULT_WORDS, LENGTHS, MAX_SUMMARY_TEXT_CHARS

    text = _text("sm_text", MAX_SUMMARY_TEXT_CHARS)
    reference = _text("sm_ref")
    if not text.strip():
        raise ValueError("Give the model a text to summarize first.")
    # The summary the page stored for exactly its settings; a check never generates one.
    summary = caches.finished_summary(lm.key, text, str(_value("sm_len", LENGTHS[0])),
                                      int(_value("sm_words", DEFAULT_WORDS)), int(_value("sm_cap", DEFAULT_CAP)),
                                      bool(_value("sm_fast", True)))
    if summary is None:
        raise ValueError("No summary for these settings yet: let the page write one.")
    if not reference.strip():
        raise ValueError("Type a reference summary first.")
    return ch.summary_beats_lead(text, summary.text, reference, caches.summary_scores(text, summary.text, reference))


def _diffusion_reading(lm: LanguageModel):
    """The page's section-5 reading of its generated digits (its own cached call) and its guidance strength."""
    if "diff_w" not in st.session_state:
        raise _Missing
    choices = caches.diffusion_ready_sources("digits")  # as the page's picker
    if not choices:
        raise ValueError("No diffusion model is ready yet: train one on the page first.")
    source = st.session_state.get("diff_model")
    source = source if source in choices else choices[0]  # as the page's picker falls back
    guidance = float(_value("diff_w", 2.0))
    _, reading, _ = caches.diffusion_quality(source, guidance, 10, int(_value("diff_seed", 0)))
    return reading, guidance


def _diffusion_ignored(lm: LanguageModel) -> ch.Check:
    return ch.label_ignored(*_diffusion_reading(lm))


def _diffusion_weak(lm: LanguageModel) -> ch.Check:
    reading, guidance = _diffusion_reading(lm)
    return ch.weak_guidance_digit(reading, int(_value("diff_digit", 3)), guidance)


def _finished(run, what: str, steps: int):
    """``run`` (a :class:`engine.training.QueuedRun` the page keeps) once it finished, having taken ``steps`` steps."""
    if not run.finished:
        raise ValueError(f"Your {what} is still running: wait for it to finish.")
    if run.status == "failed":
        raise ValueError(f"Your {what} failed: {run.error}")
    if steps < 1:
        raise ValueError(f"Your {what} stopped before its first step: run it again.")
    return run


def _fine_tune(lm: LanguageModel):
    """This session's finished fine-tune (the run the page keeps in its state), or why there is none to check."""
    held = st.session_state.get(FT_STATE)
    if held is None or held.model_key != lm.key:
        raise ValueError("Run a fine-tune first.")
    return _finished(held.run, "fine-tune", len(held.run.train_losses))


def _dpo_history(lm: LanguageModel):
    """The history of this session's finished DPO run (kept in its state by the page), or why there is none."""
    held = st.session_state.get(RL_RUN)
    if held is None or held[0] != lm.key:
        raise ValueError("Run DPO first (section 3).")
    run = held[1]
    return _finished(run, "DPO run", len(run.history) - 1).history  # history[0] is before training


def _ml_overfit(lm: LanguageModel) -> ch.Check:
    if "ml_degree" not in st.session_state:
        raise _Missing
    noise, degree = float(_value("ml_noise", 0.3)), int(_value("ml_degree", 3))
    _, _, fit, test_mse = caches.regression(30, noise, degree, 0)  # the page's own cached call
    return ch.regression_overfit(noise, degree, fit.mse, test_mse)


def _landscape_quiz(lm: LanguageModel) -> ch.Check:
    from engine.landscape import QUIZ

    vocab = f"{lm.vocab_size:,}"  # the page fills the model's vocabulary size into its questions
    chosen = [st.session_state.get(QUIZ_PREFIX + q.key) for q in QUIZ]
    return ch.quiz_all_right(chosen, [q.options[q.answer].format(vocab=vocab) for q in QUIZ])


CHECKS: dict[str, Callable[[LanguageModel], ch.Check]] = {
    "next_token_paris": _next_token_paris,
    "next_token_sure": _next_token_sure,
    "tokenization_long_word": _tokenization_long_word,
    "tokenization_more_tokens": _tokenization_more_tokens,
    "temperature_nonsense": _temperature_nonsense,
    "temperature_tame": _temperature_tame,
    "prompts_few_shot_wrong": _prompts_few_shot_wrong,
    "context_window_recall": _context_window_recall,
    "embeddings_analogy": _embeddings_analogy,
    "pretraining_predictable": _pretraining_predictable,
    "pretraining_surprising": _pretraining_surprising,
    "evaluation_false_wins": _evaluation_false_wins,
    "using_llms_length": lambda lm: ch.stopped_for_length(_served()),
    "using_llms_short": lambda lm: ch.short_stop(_served()),
    "ml_to_llm_overfit": _ml_overfit,
    "genai_landscape_quiz": _landscape_quiz,
    "attention_previous_head": _attention_previous,
    "attention_focused_head": _attention_focused,
    "encoders_meaning_search": _encoders_search,
    "encoders_wordpiece_longer": _encoders_wordpiece,
    "summarization_beats_lead": _summarization_beats_lead,
    "diffusion_label_ignored": _diffusion_ignored,
    "diffusion_weak_guidance": _diffusion_weak,
    "fine_tuning_overfit": lambda lm: ch.overfit_on_purpose(_fine_tune(lm).val_points),
    "rlhf_dpo_gentle": lambda lm: ch.dpo_gentle(_dpo_history(lm)),
}


def run_check(challenge: ch.Challenge, lm: LanguageModel) -> ch.Check:
    """Check one challenge on the values on the page now; input the page itself refuses is "not yet", with why."""
    try:
        return CHECKS[challenge.id](lm)
    except _Missing:
        return ch.Check(False, "The part of the page this task uses is not showing yet.")
    except (ValueError, TypeError, KeyError) as err:  # InputError included: the engine's message for the input
        return ch.Check(False, str(err))
    except ModelLoadError as err:  # a second model the page needs (the encoder) could not be loaded: the page says so
        return ch.Check(False, err.reason)


def challenge_box(stem: str) -> None:
    """The "Try it" expander for page ``stem`` (nothing when the page has no challenges or the model is loading)."""
    items = ch.CHALLENGES.get(stem)
    if not items:
        return
    lm = get_lm()
    if lm is None:
        return
    checks = [run_check(c, lm) for c in items]
    done = sum(c.done for c in checks)
    label = f"Try it: {done} of {len(items)} done" if done < len(items) else f"Try it: all {len(items)} done"
    with st.expander(label, icon=":material/flag:", expanded=done > 0):
        if stem == "prompts":
            st.radio("The true sentiment of your review", ch.LABELS, key=TRUTH_KEY, horizontal=True,
                     bind="query-params")
        for challenge, check in zip(items, checks):
            mark = ":green[:material/check_circle: **Done**]" if check.done else ":material/radio_button_unchecked: Not yet"
            st.markdown(f"{mark} · {challenge.task}")
            st.caption(f"Checked: {challenge.rule} Your input: {md_escape(check.measured)}")
        st.caption(
            ":material/link: Checked live on what this page shows now. **Share this view** (sidebar) carries your "
            "inputs in the link, so whoever opens it sees the same check."
        )
