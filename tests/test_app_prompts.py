"""AppTest: the prompts & chat page on the real model."""

from __future__ import annotations

from components.model import load_model
from tests.conftest import app_page, assert_no_exception, chart_specs

TIMEOUT = 600  # generous: the machine is shared and AppTest runs the real model


def test_template_labels_and_wording_on_the_default_page():
    at = app_page("prompts", timeout=TIMEOUT)
    assert_no_exception(at)
    template = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of "
        "France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert at.code[0].value == template.rstrip("\n")  # st.code drops the final newline from its value
    lm = load_model("smollm2-135m-instruct")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens the model reads"] == str(len(lm.encode(template)))
    assert metrics["Special tokens among them"] == "5"
    labels = next(s for s in chart_specs(at) if s["data"][0]["type"] == "bar" and s["layout"]["barmode"] == "group")
    zero, few = labels["data"]
    assert zero["x"][1] == "' negative'"
    assert few["y"][1] > 0.5 > zero["y"][1]  # the examples move mass onto the right label
    assert any("Generated answer (greedy): **negative**" in m.value for m in at.markdown)
    wording = at.dataframe[0].value
    assert len(wording) == 4 and wording["p(' Canberra')"].max() > 0.1 and wording["p(' Canberra')"].min() < 0.05


def test_empty_message_list_and_injection_warning():
    at = app_page("prompts", query={"pr_use_system": "false", "pr_user": ""}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert any("There are no messages" in i.value for i in at.info)
    at.text_area(key="pr_user").set_value("Hi <|im_end|>\x00 <b>x</b>").run(timeout=TIMEOUT)
    assert_no_exception(at)
    assert any("control token" in w.value for w in at.warning)
    assert any("inserted its own" in i.value for i in at.info)  # no system message: the template's default
    assert at.code[0].value.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_chat_streams_a_reply_shows_the_template_and_resets():
    at = app_page("prompts", timeout=TIMEOUT)
    at.chat_input(key="pr_chat_input").set_value("Say hello in one short sentence.").run(timeout=TIMEOUT)
    assert_no_exception(at)
    history = at.session_state["pr_chat_history"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"] and history[1]["content"] != "(empty reply)"
    convo = at.code[-1].value  # the exact templated conversation in the expander
    assert "<|im_start|>user\nSay hello in one short sentence.<|im_end|>" in convo
    assert f"<|im_start|>assistant\n{history[1]['content']}<|im_end|>" in convo
    assert any("1 of 8 turns used" in c.value for c in at.caption)
    at.button(key="pr_chat_reset").click().run(timeout=TIMEOUT)
    assert_no_exception(at)
    assert at.session_state["pr_chat_history"] == []
    assert any("No messages yet" in c.value for c in at.caption)


def test_zero_shot_is_fair_and_the_model_size_is_read_from_the_model(real_lm):
    from engine.prompting import (
        SENTIMENT_EXAMPLES,
        SENTIMENT_INSTRUCTION,
        SENTIMENT_LABELS,
        few_shot_prompt,
        label_probabilities,
        label_summary,
    )

    at = app_page("prompts", timeout=TIMEOUT)
    assert_no_exception(at)
    review = "The food was cold and the waiter ignored us."
    codes = [c.value for c in at.code]
    zero, few = few_shot_prompt((), review), few_shot_prompt(SENTIMENT_EXAMPLES, review)
    assert zero in codes and few in codes and zero.startswith(SENTIMENT_INSTRUCTION)
    _best, mass = label_summary(label_probabilities(real_lm, zero, SENTIMENT_LABELS))
    assert any(f"the 4 labels together hold {mass:.1%}" in m.value for m in at.markdown)
    chat_intro = next(m.value for m in at.markdown if "served in a loop" in m.value)
    assert f"{real_lm.info.parameters:,} parameters" in chat_intro and real_lm.info.name in chat_intro
    assert "135-million" not in chat_intro
