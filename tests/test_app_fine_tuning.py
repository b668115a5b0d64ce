"""AppTest: the fine-tuning page (datasets in, a live LoRA fine-tune in a background thread, the line, Stop, reset,
probes, PEFT download) and instruction tuning.

AppTest has no file-uploader driver: uploads are parsed by the engine (tests/test_engine_datasets.py) and driven in
Chromium (tests/browser/test_fine_tuning_browser.py); here the built-in and typed sources go through the page.
"""

from __future__ import annotations

import pytest

from components.model import load_model
from components.state import FT_STATE
from engine import datasets as D
from engine import training as tr
from engine.generation import greedy_reply
from engine.training import TRAINING_QUEUE, weights_fingerprint
from tests.conftest import app_page, assert_no_exception, html_text, metric_value

TYPED = "Our class mascot is a purple owl.\nOur class pet is a tortoise called Biscuit."
SLOW_RUN = 900  # seconds for a page run that trains or generates, on a loaded 2-core machine


@pytest.fixture(scope="module")
def page(real_lm):
    real_lm.fast_decoder()  # built (as it is in the background a few seconds after a start), so section 1 uses it
    return app_page("fine_tuning")


def test_built_in_dataset_is_parsed_split_and_masked(page, real_lm):
    assert_no_exception(page)
    prep = D.prepare(real_lm, "builtin:room12_qa", b"")
    assert metric_value(page, "Examples") == "20"
    assert metric_value(page, "Train / validation") == "16 / 4"
    assert metric_value(page, "Tokens trained on") == f"{prep.trained_tokens:,}"
    df = page.dataframe[0].value
    assert list(df["tokens"]) == [len(t.ids) for t in prep.tokens]
    assert list(df["tokens trained"]) == [t.n_trained for t in prep.tokens]
    assert (df["split"] == "validation").sum() == 4
    # the example's chips: the prompt's tokens grey and struck through, the answer's not
    html = html_text(page)
    assert html.count("line-through") == prep.tokens[0].n_masked
    assert any("Only the response is trained on" in m.value for m in page.markdown)


def test_other_built_ins_and_settings_from_the_link():
    at = app_page("fine_tuning", query={"ft_builtin": "short_answers", "ft_rank": "8", "ft_layers": "2"})
    assert_no_exception(at)
    assert metric_value(at, "Examples") == "20"
    assert at.select_slider(key="ft_rank").value == 8 and at.slider(key="ft_layers").value == 2


def test_typed_fine_tune_trains_live_then_reset(real_lm):
    lm = load_model("smollm2-135m-instruct")
    fingerprint = weights_fingerprint(lm)
    at = app_page("fine_tuning", query={"ft_text": TYPED, "ft_steps": "10", "ft_lr": "0.01"})
    assert_no_exception(at)
    assert at.segmented_control(key="ft_source").value == "Type"
    assert metric_value(at, "Train / validation") == "2 / 0"  # too few rows for a validation split, said on the page
    at.button(key="ft_train").click().run(timeout=SLOW_RUN)
    assert_no_exception(at)
    state = at.session_state[FT_STATE]
    assert state.run.wait(SLOW_RUN), "training did not finish"
    at.run(timeout=SLOW_RUN)
    assert_no_exception(at)
    run = state.run
    assert run.status == "done" and len(run.train_losses) == 10
    assert run.train_losses[-1] < 0.5 * run.train_losses[0]
    assert metric_value(at, "Training loss (last step)") == f"{run.train_losses[-1]:.3f}"
    assert metric_value(at, "Weights trained") == f"{run.adapter.num_params:,}"
    assert run.adapter.num_params == 4 * 4 * (576 + 1536)
    # The probes table: both models' answers are the models' own greedy outputs.
    probes = at.dataframe[-1].value
    row = probes.iloc[0]
    assert row["probe"] == "Unrelated: The capital of France is"
    before = tr.probe_output(real_lm, None, "The capital of France is", "text")
    assert row["original model"] == before.text
    assert row["fine-tuned"] == tr.probe_output(real_lm, run.adapter, "The capital of France is", "text").text
    assert weights_fingerprint(lm) == fingerprint  # the shared model never changed
    assert any("llm-explainer-adapter" in c.value and "PeftModel" in c.value for c in at.code)

    at.button(key="ft_reset").click().run(timeout=SLOW_RUN)
    assert_no_exception(at)
    assert FT_STATE not in at.session_state
    assert not any(m.label == "Training loss (last step)" for m in at.metric)


def test_second_session_waits_in_line_and_can_stop(real_lm):
    at = app_page("fine_tuning", query={"ft_text": TYPED, "ft_steps": "10"})
    holder = TRAINING_QUEUE.join("another session")
    assert TRAINING_QUEUE.wait_turn(holder, timeout=SLOW_RUN)
    try:
        at.button(key="ft_train").click().run(timeout=SLOW_RUN)
        assert_no_exception(at)
        run = at.session_state[FT_STATE].run
        assert run.status == "queued" and run.ahead == 1
        assert any("Waiting in line:** 1 training(s) ahead" in i.value for i in at.info)
        at.button(key="ft_stop").click().run(timeout=SLOW_RUN)
        assert run.wait(30) and run.status == "stopped" and run.steps_done == 0
    finally:
        TRAINING_QUEUE.leave(holder)
    at.run(timeout=SLOW_RUN)
    assert_no_exception(at)
    assert any("Stopped before the first step" in i.value for i in at.info)
    assert TRAINING_QUEUE.waiting() == 0


def test_chat_template_answers_and_raw_text_continues(page, real_lm):
    codes = [c.value for c in page.code]
    request = "Give me three tips for studying."
    ids = real_lm.encode(real_lm.chat_prompt([{"role": "user", "content": request}]))
    chat = greedy_reply(real_lm, ids, 40, real_lm.next_token_logits(ids))
    assert chat.fast and chat.text in codes  # the answer shown is the model's own greedy output (fast mode)
    raw_shown = next(c for c in codes if c.startswith(request))
    assert len(raw_shown) > len(request) + 20 and chat.text not in raw_shown  # raw text continues, differently
    assert any("fast 4-bit mode" in c.value for c in page.caption)  # and the page says which path wrote them
    assert any("<|im_start|>assistant" in c for c in codes)  # the template is shown
    assert any("No base model runs here" in m.value for m in page.markdown)


def test_bad_inputs_give_messages():
    at = app_page("fine_tuning", query={"ft_steps": "999", "ft_lr": "7", "ft_rank": "3", "ft_builtin": "../x"})
    assert_no_exception(at)
    assert at.slider(key="ft_steps").value == tr.DEFAULT_DATASET_STEPS
    assert at.select_slider(key="ft_lr").value == tr.DEFAULT_DATASET_LR
    assert at.select_slider(key="ft_rank").value == tr.DEFAULT_RANK
    at.segmented_control(key="ft_source").set_value("Type").run()
    at.text_area(key="ft_text").set_value("word " * 200).run()
    assert_no_exception(at)
    assert any("Row 1 is 200 tokens" in w.value and f"limit is {D.MAX_ROW_TOKENS}" in w.value for w in at.warning)
    assert all(b.proto.disabled for b in at.button if b.key == "ft_train")  # nothing to train on
    at.text_area(key="ft_text").set_value("<img src=x onerror=alert(1)>").run()
    assert_no_exception(at)
    assert any("contains HTML markup" in w.value for w in at.warning)
    at.text_area(key="ft_text").set_value("A fine line of text.\x00").run()
    assert_no_exception(at)
    assert any(b.key == "ft_train" for b in at.button)


def test_a_shared_upload_link_keeps_its_settings_before_a_file_is_chosen():
    """Before anything is uploaded the settings still show (so the link's values survive), but nothing can train.
    Failed before: the page stopped at the uploader, so the unrendered sliders dropped ft_steps / ft_lr from the URL
    and the run used the defaults."""
    at = app_page("fine_tuning", query={"ft_source": "Upload", "ft_steps": "150", "ft_lr": "0.0003"})
    assert_no_exception(at)
    assert at.slider(key="ft_steps").value == 150 and at.select_slider(key="ft_lr").value == 0.0003
    assert [b.proto.disabled for b in at.button if b.key == "ft_train"] == [True]
    assert any("Upload a .txt, .csv or .jsonl file" in i.value for i in at.info)
