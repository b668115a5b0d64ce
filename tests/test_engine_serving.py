"""engine.serving: a chat turn as a chat-completion request and response, answered by the real model."""

from __future__ import annotations

import ast
import json
import shlex

import pytest

from engine import serving
from engine.lm import InputError

QUESTION = (("user", "What is the capital of France?"),)


@pytest.fixture(scope="module")
def answered(real_lm):
    return serving.serve_chat(real_lm, QUESTION, temperature=0.0, max_tokens=48)


def test_greedy_reply_stops_at_end_of_turn_with_exact_usage(real_lm, answered):
    template = real_lm.chat_prompt([{"role": "user", "content": QUESTION[0][1]}])
    assert answered.templated == template
    assert answered.prompt_ids == real_lm.encode(template)
    assert answered.finish_reason == "stop"
    assert answered.completion_ids[-1] == real_lm.info.eos_token_id == real_lm.token_id("<|im_end|>")
    assert "Paris" in answered.text
    assert answered.text == real_lm.decode(answered.completion_ids, skip_special_tokens=True)
    assert "<|im_end|>" not in answered.text
    # the same ids as the one generation loop gives on its own (greedy, float32)
    direct = [s.token_id for s in real_lm.generate_stream(answered.prompt_ids, 48)]
    assert answered.completion_ids == direct
    body = serving.response_body(answered)
    assert body["usage"] == {"prompt_tokens": len(answered.prompt_ids),
                             "completion_tokens": len(direct), "total_tokens": len(answered.prompt_ids) + len(direct)}
    assert body["choices"][0]["message"] == {"role": "assistant", "content": answered.text}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_timings_cover_every_step(answered):
    assert len(answered.step_seconds) == answered.completion_tokens
    assert all(s > 0 for s in answered.step_seconds)
    assert answered.total_seconds == pytest.approx(sum(answered.step_seconds))
    decode = answered.step_seconds[1:]
    assert answered.per_token_seconds == pytest.approx(sum(decode) / len(decode))
    assert answered.tokens_per_second == pytest.approx(len(decode) / sum(decode))
    rows = serving.step_rows(answered)
    assert [r["token id"] for r in rows] == answered.completion_ids
    assert "prefill" in rows[0]["forward pass over"] and rows[1]["forward pass over"] == "1 new token"


def test_max_tokens_cuts_the_reply_with_finish_reason_length(real_lm, answered):
    short = serving.serve_chat(real_lm, QUESTION, temperature=0.0, max_tokens=3)
    assert short.finish_reason == "length"
    assert short.completion_ids == answered.completion_ids[:3]
    assert real_lm.info.eos_token_id not in short.completion_ids


def test_sampling_is_repeatable_with_its_seed(tiny_lm):
    a = serving.serve_chat(tiny_lm, QUESTION, temperature=1.0, max_tokens=6, seed=3)
    b = serving.serve_chat(tiny_lm, QUESTION, temperature=1.0, max_tokens=6, seed=3)
    assert a.completion_ids == b.completion_ids and len(a.completion_ids) >= 1


def test_system_prompt_replaces_the_default_one(tiny_lm):
    served = serving.serve_chat(tiny_lm, (("system", "Answer like a pirate."), QUESTION[0]), max_tokens=1)
    assert served.templated.startswith("<|im_start|>system\nAnswer like a pirate.<|im_end|>")
    assert served.default_system is None
    plain = serving.serve_chat(tiny_lm, QUESTION, max_tokens=1)
    assert plain.default_system and plain.default_system in plain.templated


def test_bad_input_is_an_input_error(tiny_lm):
    with pytest.raises(InputError, match="user message is empty"):
        serving.clean_messages("You are kind.", "  \n")
    with pytest.raises(InputError, match="at most"):
        serving.clean_messages("", "x" * (serving.MAX_MESSAGE_CHARS + 1))
    assert serving.clean_messages("  ", "Hi") == (("user", "Hi"),)
    with pytest.raises(InputError, match="conversation is"):
        serving.serve_chat(tiny_lm, (("user", "token " * 1500),), max_tokens=1)


def test_request_body_and_client_code_keep_user_text_as_data():
    nasty = "it's \"quoted\" $(rm -rf /) `x` \\ \n 😀"
    messages = (("system", "Be brief."), ("user", nasty))
    body = serving.request_body("SmolLM2-135M-Instruct", messages, 0.7, 20)
    assert body["messages"][1] == {"role": "user", "content": nasty}
    assert body["seed"] == 0 and body["max_tokens"] == 20
    assert "seed" not in serving.request_body("m", messages, 0.0, 20)
    code = serving.client_code(body)
    argv = shlex.split(code["curl"].replace("\\\n", " "))
    assert argv[0] == "curl" and argv[1] == serving.LOCAL_SERVER_URL + "/chat/completions"
    assert json.loads(argv[argv.index("-d") + 1]) == body  # the shell hands the server exactly this body
    tree = ast.parse(code["python"])  # valid Python
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "create")
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert kwargs == body
