"""AppTest: the Using an LLM page (API request and response from the local model, what the server does inside)."""

from __future__ import annotations

import json

from components.model import load_model
from tests.conftest import app_page, assert_no_exception

TIMEOUT = 600  # the machine is shared and the page generates with the real model


def _json_blocks(at) -> list[dict]:
    return [json.loads(c.value) for c in at.code if c.language == "json"]


def _sent(query: dict | None = None):
    at = app_page("using_llms", query=query, timeout=TIMEOUT)
    assert_no_exception(at)
    assert len(_json_blocks(at)) == 1 and not at.dataframe  # the request only: nothing is generated before Send
    at.button(key="api_send").click().run(timeout=TIMEOUT)
    assert_no_exception(at)
    return at


def test_default_request_and_response_are_computed_by_the_model():
    at = _sent()
    lm = load_model("smollm2-135m-instruct")
    request, response = _json_blocks(at)
    assert request == {"model": lm.info.name, "messages": [{"role": "user", "content": "What is the capital of France?"}],
                       "temperature": 0.0, "max_tokens": 48}
    template = lm.chat_prompt(request["messages"])
    usage = response["usage"]
    assert usage["prompt_tokens"] == len(lm.encode(template))
    steps = at.dataframe[0].value
    assert usage["completion_tokens"] == len(steps)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    choice = response["choices"][0]
    assert choice["finish_reason"] == "stop" and steps["token id"].iloc[-1] == lm.info.eos_token_id
    assert choice["message"]["content"] == lm.decode(list(steps["token id"]), skip_special_tokens=True)
    assert "Paris" in choice["message"]["content"]
    assert {m.label: m.value for m in at.metric}["prompt_tokens"] == str(usage["prompt_tokens"])
    assert any(c.value == template.rstrip("\n") for c in at.code)  # the chat template step shows the exact string
    assert any("No network call is made" in m.value for m in at.markdown)
    # a rerun with the same request is served from the cache: no forward pass
    before = lm.stats.forward_calls
    at.run(timeout=TIMEOUT)
    assert lm.stats.forward_calls == before
    assert _json_blocks(at)[1] == response
    # another setting is another request: the old answer is not shown for it
    at.slider(key="api_max").set_value(5).run(timeout=TIMEOUT)
    assert len(_json_blocks(at)) == 1 and any("Send the request" in c.value for c in at.caption)


def test_max_tokens_gives_finish_reason_length_and_the_system_prompt_is_used():
    at = _sent({"api_max": "2", "api_system": "Answer in French."})
    request, response = _json_blocks(at)
    assert request["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"]["completion_tokens"] == 2 == len(at.dataframe[0].value)
    assert any(c.value.startswith("<|im_start|>system\nAnswer in French.<|im_end|>") for c in at.code)
    code = next(c.value for c in at.code if c.language == "python")
    assert "'Answer in French.'" in code and "max_tokens=2" in code


def test_empty_turn_says_so_and_stops():
    at = app_page("using_llms", query={"api_user": "   "}, timeout=TIMEOUT)
    assert_no_exception(at)
    assert any("user message is empty" in w.value for w in at.warning)
    assert not _json_blocks(at)
