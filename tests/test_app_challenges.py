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
