"""AppTest: the context-window page on the real model."""

from __future__ import annotations

from components.model import load_model
from tests.conftest import app_page, assert_no_exception, chart_specs

SHORT_LONG = {"cw_long": "Tom has a red ball. Tom throws the red ball to Ann, and Ann throws it back to Tom."}
TIMEOUT = 600  # generous: the machine is shared and AppTest runs the real model


def _metric(at, label_start: str) -> list[str]:
    return [m.value for m in at.metric if m.label.startswith(label_start)]


def _pct(value: str) -> float:
    return float(value.rstrip("%")) / 100 if value.endswith("%") else float(value)


def test_default_page_shows_limit_forgetting_and_sliding_window():
    at = app_page("context_window", timeout=TIMEOUT)
    assert_no_exception(at)
    assert not at.dataframe  # the long-text scoring (seconds of model time) waits for its switch
    at.toggle(key="cw_score").set_value(True).run(timeout=TIMEOUT)
    assert_no_exception(at)
    assert _metric(at, "Tokens in your text") == ["33"]
    assert any("8,192 tokens" in m.value for m in at.markdown)  # the real limit, read from the config
    used, free = chart_specs(at)[0]["data"]
    assert used["x"] == [33] and free["x"] == [8192 - 33]  # the gauge: used vs free of the real window
    full, cut = (_pct(v) for v in _metric(at, "p('Ada'"))
    assert full > 0.1 and cut < 0.01  # the fact is forgotten once it leaves the 16-token window
    assert any("last **16** tokens; **17** slid out" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["forward passes"])[-1] == 1
    ppl = list(table["perplexity"])
    assert ppl[0] > ppl[1] > ppl[2]  # more context, less surprise, on this text


def test_window_slider_recomputes_only_new_windows_and_url_fallback():
    at = app_page("context_window", query={"cw_window": "banana", **SHORT_LONG}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert at.slider(key="cw_window").value == 16  # invalid URL value: default
    at.slider(key="cw_window").set_value(40).run(timeout=TIMEOUT)
    assert_no_exception(at)
    full, seen = (_pct(v) for v in _metric(at, "p('Ada'"))
    assert full == seen  # the whole text fits: both sides agree
    assert any("both sides are the same" in i.value for i in at.info)
    stats = load_model("smollm2-135m-instruct").stats
    before = stats.forward_calls
    at.slider(key="cw_window").set_value(16).run(timeout=TIMEOUT)  # seen before: served from the cache
    assert_no_exception(at)
    assert stats.forward_calls == before
    assert any("**17** slid out" in c.value for c in at.caption)


def test_text_longer_than_the_window_and_bad_input():
    long_text = "The cat sat on the mat. " * 40 + "\x00<script>alert(1)</script>"
    at = app_page("context_window", query={"cw_text": long_text, "cw_window": "64", "cw_score": "true", **SHORT_LONG},
                  timeout=TIMEOUT)
    assert_no_exception(at)
    n = int(_metric(at, "Tokens in your text")[0].replace(",", ""))
    assert n > 64
    assert any(f"last **64** tokens; **{n - 64}** slid out" in c.value for c in at.caption)
    assert any("Control characters" in c.value for c in at.caption)
    at.text_area(key="cw_text").set_value("😀" * 1500).run(timeout=TIMEOUT)  # over the page's 1,024-token cap
    assert_no_exception(at)
    assert any("at most 1,024 tokens" in w.value for w in at.warning)
    at.text_area(key="cw_text").set_value("   ").run(timeout=TIMEOUT)
    assert_no_exception(at)
    assert any("Type a text" in i.value for i in at.info)
    assert at.dataframe  # the long-text section still works without the main text


def test_sliding_window_text_agrees_with_the_apps_own_chat():
    """The page's plain-text window keeps the last tokens; the app's chat (engine.prompting.trim_history) drops whole
    turns and keeps the system prompt: the page must not say a chat app keeps the most recent tokens."""
    from engine.prompting import trim_history

    lm = load_model("smollm2-135m-instruct")
    msgs = [{"role": "system", "content": "S"}] + [
        {"role": r, "content": f"{r} turn {i} " * 4} for i in range(3) for r in ("user", "assistant")]
    kept, dropped = trim_history(lm, msgs, len(lm.encode(lm.chat_prompt(msgs))) - 1)
    assert kept[0] == msgs[0] and dropped == 1 and kept[1:] == msgs[2:]  # a whole turn went; the system prompt stayed
    at = app_page("context_window", timeout=TIMEOUT)
    text = " ".join(m.value for m in at.markdown)
    assert "a chat app keeps the **most recent** tokens" not in text
    assert "drops **whole turns**" in text and "keeps the system prompt" in text
