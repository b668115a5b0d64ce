"""AppTest: the "Try it" challenges the frame draws under each concept page, checked on the page's own inputs."""

from __future__ import annotations

from components.model import load_model
from tests.conftest import app_page, assert_no_exception

TIMEOUT = 600  # the machine is shared and the pages run the real model


def _box(at):
    """(expander label, [done flags in order], captions) of the page's "Try it" box."""
    box = next(e for e in at.expander if e.label.startswith("Try it"))
    marks = [m.value for m in box.markdown]
    return box.label, ["**Done**" in m for m in marks], [c.value for c in box.caption]


def test_next_token_challenge_is_checked_on_the_link_prompt_without_an_extra_forward_pass():
    lm = load_model("smollm2-135m-instruct")
    app_page("next_token", timeout=TIMEOUT)  # warm the app's imports and the default prompt
    before = lm.stats.forward_calls
    # A link with a prompt nobody computed yet: the page runs the model once; the two checks reuse that result.
    at = app_page("next_token", query={"prompt": "Every summer, France is a country in"}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert lm.stats.forward_calls - before == 1
    label, done, captions = _box(at)
    from engine import challenges as ch

    expected = [ch.paris_dethroned(lm, "Every summer, France is a country in").done,
                ch.confident_prompt(lm, "Every summer, France is a country in").done]
    assert done == expected and expected[0]  # ' Paris' is not the top token after this prompt
    assert label == f"Try it: {sum(expected)} of 2 done"
    default = app_page("next_token", timeout=TIMEOUT)
    assert _box(default)[1] == [False, False]  # ' Paris' is the top token, at 77 %: neither task is done
    assert any("' Paris'" in c and "77" in c for c in _box(default)[2])


def test_tokenization_and_temperature_challenges_follow_the_link():
    at = app_page("tokenization", query={"prompt": "😀"}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert _box(at)[:2] == ("Try it: 1 of 2 done", [False, True])
    hot = app_page("temperature", query={"tmp_t": "2.0"}, timeout=TIMEOUT)
    assert_no_exception(hot)
    assert _box(hot)[1] == [True, False]
    tamed = app_page("temperature", query={"tmp_t": "3.0", "tmp_k": "1"}, timeout=TIMEOUT)
    assert _box(tamed)[1] == [False, True]  # top-k 1 tames T = 3: no more nonsense, the top token every time


def test_few_shot_challenge_uses_the_learners_label_from_the_link():
    # AppTest reruns a switched-to page without the frame, so each state is opened as its own link, as a teacher would.
    sarcasm = "Oh great, another two-hour wait for cold soup. Just wonderful."
    at = app_page("prompts", query={"pr_review": sarcasm, "ch_truth": "negative"}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert _box(at)[1] == [True]  # few-shot reads the sarcasm as positive
    assert at.radio(key="ch_truth").value == "negative"
    other = app_page("prompts", query={"pr_review": sarcasm, "ch_truth": "positive"}, timeout=TIMEOUT)
    assert _box(other)[1] == [False]


def test_using_llms_challenges_wait_for_a_response():
    at = app_page("using_llms", query={"api_max": "2"}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert _box(at)[1] == [False, False] and "Send a request" in _box(at)[2][0]


def test_bad_input_is_not_yet_with_the_pages_message():
    at = app_page("pretraining", query={"pt_text": "   "}, timeout=TIMEOUT)
    assert_no_exception(at)
    label, done, captions = _box(at)
    assert done == [False, False] and any("Type some text first" in c for c in captions)


def test_attention_challenges_check_the_head_picked_in_the_link(real_lm):
    from engine import challenges as ch

    prompt = "The capital of France is"
    for layer, head, which in ((16, 0, 0), (23, 4, 1)):
        at = app_page("attention", query={"prompt": prompt, "at_layer": str(layer), "at_head": f"head {head}"},
                      timeout=TIMEOUT)  # a bound selectbox keeps its label in the URL
        assert_no_exception(at)
        expected = [ch.previous_token_head(real_lm, prompt, layer, head).done,
                    ch.focused_head(real_lm, prompt, layer, head).done]
        assert _box(at)[1] == expected and expected[which]  # 16/0: a previous-token head; 23/4: ' is' reads ' France'
        assert f"Layer {layer}, head {head}" in _box(at)[2][0]


def test_encoder_challenges_follow_the_link(real_lm):
    from engine import challenges as ch
    from engine.encoder import load_encoder

    sentences = ["The bank raised its interest rates.", "We had a picnic on the grassy shore of the river.",
                 "The cat sleeps."]
    query = "sitting on the bank of a stream"
    at = app_page("encoders", query={"enc_sents": "\n".join(sentences), "enc_query": query, "enc_tok": "unbelievably"},
                  timeout=TIMEOUT)
    assert_no_exception(at)
    encoder = load_encoder()
    expected = [ch.meaning_beats_keywords(encoder, query, sentences).done,
                ch.wordpiece_longer(encoder, real_lm, "unbelievably").done]
    assert _box(at)[:2] == ("Try it: all 2 done", expected)
    default = app_page("encoders", timeout=TIMEOUT)
    assert _box(default)[1] == [False, False]  # no sentence shares a word with 'music performance'; not one word


def test_summarization_challenge_scores_the_pages_own_summary(real_lm):
    from components import caches
    from engine import challenges as ch
    from engine import summarize as sm

    news = next(e for e in sm.examples() if e.key == "news_library")
    flags = []
    # float32 (fast mode off): the path every number comes from, the same whenever the 4-bit copy is ready.
    for query, length, words in (({}, "One sentence", 30), ({"sm_len": "About N words", "sm_words": "20"},
                                                           "About N words", 20)):
        at = app_page("summarization", query={"sm_fast": "false", **query}, timeout=TIMEOUT)
        assert_no_exception(at)
        # The summary the page wrote for exactly these settings (tests/test_app_summarization.py checks it is the
        # model's own greedy output), scored by the engine.
        stored = caches.finished_summary(real_lm.key, news.text, length, words, 64, False)
        expected = ch.summary_beats_lead(news.text, stored.text, news.reference)
        assert _box(at)[1] == [expected.done] and expected.measured in _box(at)[2][0].replace("\\", "")
        flags.append(expected.done)
    # Measured on this model: one sentence loses to the lead baseline (ROUGE-L F1 0.32 vs 0.37); about 20 words
    # wins (0.44).
    assert flags == [False, True]


def test_diffusion_challenges_read_the_pages_generated_digits():
    from components import caches
    from engine import challenges as ch
    from engine import diffusion as dm

    model = caches.diffusion_checkpoint("digits")
    clf, _ = caches.diffusion_classifier()
    wanted = [d for d in range(10) for _ in range(10)]
    for w, digit, flags in ((0.0, 3, [True, False]), (0.5, 5, [False, True]), (2.0, 3, [False, False])):
        at = app_page("diffusion", query={"diff_w": str(w), "diff_digit": str(digit)}, timeout=TIMEOUT)
        assert_no_exception(at)
        reading = dm.recognise(clf, dm.sample(model, list(range(100)), wanted, w).final, wanted)  # seeds 0…99
        expected = [ch.label_ignored(reading, w).done, ch.weak_guidance_digit(reading, digit, w).done]
        assert _box(at)[1] == expected == flags


def _page_with_state(stem: str, state: dict, query: dict[str, str] | None = None):
    """Like :func:`tests.conftest.app_page`, with session state set before the first run (AppTest reruns a page
    without the frame, so a session's finished training run is handed to a fresh page run instead)."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ENTRY

    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"pages/{stem}.py")
    at.run()
    return at


def test_fine_tuning_challenge_waits_for_a_run_then_reads_its_validation_curve(real_lm):
    from components.state import FT_STATE, FineTuneRun
    from engine import challenges as ch
    from engine import datasets as D
    from engine import training as tr

    before = app_page("fine_tuning", timeout=TIMEOUT)
    assert_no_exception(before)
    assert _box(before)[1] == [False] and "Run a fine\\-tune first\\." in _box(before)[2][0]  # Markdown-escaped
    # The run the page's button starts for 30 steps at its largest learning rate, on the built-in Q&A.
    prep = D.prepare(real_lm, "builtin:room12_qa", b"")
    run = tr.start_dataset_run(real_lm, prep.train, prep.val, tr.FineTuneSettings(steps=30, lr=3e-2))
    assert run.wait(TIMEOUT) and run.status == "done", run.error
    held = FineTuneRun(real_lm.key, prep.dataset.name, prep.dataset.kind, run)
    at = _page_with_state("fine_tuning", {FT_STATE: held}, {"ft_steps": "30", "ft_lr": "0.03"})
    assert_no_exception(at)
    expected = ch.overfit_on_purpose(run.val_points)
    assert _box(at)[:2] == ("Try it: all 1 done", [expected.done]) and expected.done  # +29 % (see the engine test)
    assert any("started **memorising" in m.value for m in at.markdown)  # the page says so too


def test_rlhf_challenge_reads_the_sessions_dpo_run(real_lm):
    from components.state import RL_RUN
    from engine import challenges as ch
    from engine import preference as pref

    query = {"rl_pairs": "4", "rl_steps": "5", "rl_lr": "0.005"}
    before = app_page("rlhf", query=query, timeout=TIMEOUT)
    assert_no_exception(before)
    assert _box(before)[1] == [False] and "Run DPO first" in _box(before)[2][0]
    # The run the page's button starts with these settings (no held-out prompts to answer: that part is not checked).
    run = pref.start_dpo_run(real_lm, pref.builtin_set().train[:4], [], [], 5, 0.1, 5e-3)
    assert run.wait(TIMEOUT) and run.status == "done", run.error
    at = _page_with_state("rlhf", {RL_RUN: (real_lm.key, run)}, query)
    assert_no_exception(at)
    expected = ch.dpo_gentle(run.history)
    assert _box(at)[1] == [expected.done] and expected.done  # measured: +8.6 nats, KL 0.05
    assert f"{run.history[-1].kl:.4f}" in _box(at)[2][0].replace("\\", "")  # the caption is Markdown-escaped


def test_ml_overfit_challenge_reads_the_pages_regression_metrics():
    from engine import challenges as ch
    from engine.ml_basics import regression_demo

    default = app_page("ml_to_llm", timeout=TIMEOUT)
    assert_no_exception(default)
    _, _, fit, test_mse = regression_demo(30, 0.3, 3, 0)
    assert _box(default)[1] == [False] and not ch.regression_overfit(0.3, 3, fit.mse, test_mse).done
    at = app_page("ml_to_llm", query={"ml_noise": "0.5", "ml_degree": "12"}, timeout=TIMEOUT)
    _, _, fit, test_mse = regression_demo(30, 0.5, 12, 0)
    assert test_mse >= 2 * fit.mse  # computed: 2.35x
    assert _box(at)[1] == [True]
    assert f"{test_mse:.3f}" in _box(at)[2][0].replace("\\", "")  # the caption is Markdown-escaped
    # The page's own metric shows the same held-out error the check read.
    assert any(m.value == f"{test_mse:.3f}" for m in at.metric)


def test_map_quiz_challenge_is_done_only_when_every_answer_is_right(real_lm):
    from components.challenges import QUIZ_PREFIX
    from engine.landscape import QUIZ

    vocab = f"{real_lm.vocab_size:,}"
    right = {QUIZ_PREFIX + q.key: q.options[q.answer].format(vocab=vocab) for q in QUIZ}
    at = _page_with_state("genai_landscape", right)
    assert_no_exception(at)
    assert _box(at)[:2] == ("Try it: all 1 done", [True])
    assert any("All correct" in m.value for m in at.markdown)  # the page's own score agrees
    wrong = dict(right)
    first = QUIZ[0]
    wrong[QUIZ_PREFIX + first.key] = next(o for i, o in enumerate(first.options) if i != first.answer).format(vocab=vocab)
    at = _page_with_state("genai_landscape", wrong)
    assert _box(at)[1] == [False] and f"{len(QUIZ) - 1} right of {len(QUIZ)}" in _box(at)[2][0].replace("\\", "")
