"""AppTest: the "From ML to LLMs" page, on the real model."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import app_page, assert_no_exception

STEM = "ml_to_llm"


def open_page(query: dict[str, str] | None = None):
    """The page opened like a deep link (``app_page``), optionally seeded from the URL."""
    at = app_page(STEM, query=query)
    return at


def charts(at) -> dict[str, dict]:
    """Plotly chart specs by their widget key (the key is part of the element id)."""
    out = {}
    for c in at.get("plotly_chart"):
        for key in ("ml_reg_chart", "ml_cls_chart", "ml_cls_bars", "ml_llm_bars", "ml_px_chart", "ml_pyx_chart",
                    "ml_gen_cls", "ml_gen_mix"):
            if key in c.proto.id:
                out[key] = json.loads(c.proto.spec)
    return out


def arr(value) -> list:
    """A plotly data array as a list (plotly 7 sends numpy arrays as base64 ``{"dtype", "bdata"}``)."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return out.reshape(value["shape"]).tolist() if "shape" in value else out.tolist()
    return list(value)


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name", "").startswith(name))


@pytest.fixture(scope="module")
def default_page():
    at = open_page()
    assert_no_exception(at)
    return at


def test_default_page_shows_live_model_numbers(default_page, real_lm):
    at = default_page
    specs = charts(at)
    # The LLM's next-token classifier on the shared prompt: ' Paris' on top, the rest of the vocabulary in grey.
    bars = specs["ml_llm_bars"]["data"][0]
    assert bars["y"][0] == "' Paris'" and 0.6 < bars["x"][0] < 0.9
    assert bars["y"][-1] == "(all other tokens)" and abs(sum(bars["x"]) - 1) < 1e-4
    # The hand-computed head matches the model's logits, and the shapes are the real model's.
    ok = " ".join(s.value for s in at.success)
    assert "49,152" in ok and "to within" in ok
    captions = " ".join(c.value for c in at.caption)
    assert "49,152 × 576" in captions
    # p(x): the natural sentence wins, with the engine's numbers.
    from engine.scoring import score_text

    la = score_text(real_lm, "The cat sat on the mat.").total_logprob
    lb = score_text(real_lm, "The mat sat on the cat.").total_logprob
    assert float(metric(at, "log p(A)")) == pytest.approx(la, abs=0.01)
    assert float(metric(at, "log p(B)")) == pytest.approx(lb, abs=0.01)
    assert any("**sentence A**" in m.value for m in at.markdown)
    cum = arr(specs["ml_px_chart"]["data"][0]["y"])
    assert cum[-1] == pytest.approx(la, abs=1e-3)  # the running sum ends at log p(sentence)
    # p(y|x) by prompting: the rude-waiter review is negative.
    labels = specs["ml_pyx_chart"]["data"][0]
    assert dict(zip(labels["y"], labels["x"]))["negative"] > 0.8
    assert any("Predicted: **negative**" in m.value for m in at.markdown)


def test_use_vs_train_code_matches_what_the_page_ran(default_page):
    codes = [c.value for c in default_page.code]
    snippet = next(c for c in codes if "AutoModelForCausalLM" in c)
    assert "'HuggingFaceTB/SmolLM2-135M-Instruct'" in snippet and "prompt = 'The capital of France is'" in snippet
    assert "sentence_a = 'The cat sat on the mat.'" in snippet
    compile(snippet, "snippet", "exec")
    expected = next(c for c in codes if c.startswith("next "))
    lines = expected.splitlines()
    assert lines[0].startswith("next ' Paris' 0.7") and len([ln for ln in lines if ln.startswith("next ")]) == 5
    assert any(ln.startswith("logp_a -") for ln in lines)


def test_toys_follow_their_sliders(default_page):
    at = default_page
    spec = charts(at)
    assert len(arr(trace(spec["ml_gen_mix"], "component centres")["x"])) == 3
    assert len(arr(trace(spec["ml_gen_mix"], "new points")["x"])) == 150
    mse3 = float(metric(at, "Error on training points"))
    at.slider(key="ml_degree").set_value(12).run()
    assert_no_exception(at)
    assert float(metric(at, "Error on training points")) < mse3  # more capacity, lower training error
    assert charts(at)["ml_reg_chart"]["data"][2]["name"] == "fit (degree 12)"
    at.slider(key="ml_components").set_value(5)
    at.slider(key="ml_samples").set_value(40).run()
    spec = charts(at)
    assert len(arr(trace(spec["ml_gen_mix"], "component centres")["x"])) == 5
    assert len(arr(trace(spec["ml_gen_mix"], "new points")["x"])) == 40
    # The probe point moves the classifier's answer: at a class centre that class wins.
    at.slider(key="ml_x1").set_value(2.0)
    at.slider(key="ml_x2").set_value(-1.0).run()
    cls = charts(at)["ml_cls_bars"]["data"][0]
    assert cls["y"][0] == "class B" and cls["x"][0] > 0.9
    assert math.isclose(sum(cls["x"]), 1.0, abs_tol=1e-6)


def test_post_processing_widgets_do_not_rerun_the_model(default_page):
    from components.model import load_model

    at = default_page
    stats = load_model("smollm2-135m-instruct").stats
    before = stats.forward_calls
    at.slider(key="ml_topk").set_value(15).run()
    assert len(charts(at)["ml_llm_bars"]["data"][0]["y"]) == 16  # 15 tokens + the rest
    at.slider(key="ml_noise").set_value(0.8).run()
    at.slider(key="ml_spread").set_value(1.5).run()
    at.slider(key="ml_components").set_value(2).run()
    assert_no_exception(at)
    assert stats.forward_calls == before


def test_bad_inputs_give_clear_messages():
    at = open_page({"ml_a": "Hi there.", "ml_b": "There hi."})
    at.text_input(key="ml_a").set_value("   ").run()
    assert_no_exception(at)
    assert any("Type two sentences" in i.value for i in at.info)
    at.text_input(key="ml_a").set_value("<script>alert('x')</script>\x00 😀").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)
    assert float(metric(at, "log p(A)")) < 0
    at.text_area(key="ml_review").set_value("\n\t ").run()
    assert any("Type a review" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("😀" * 3000).run()  # past the 1,024-token cap: refused before the model
    assert_no_exception(at)
    assert any("this page reads at most 1,024" in w.value for w in at.warning)


def test_url_seeds_inputs_and_invalid_values_fall_back():
    at = open_page({"prompt": "The capital of Italy is", "ml_degree": "99", "ml_noise": "lots",
                               "ml_fewshot": "false", "ml_a": "Hi there.", "ml_b": "There hi."})
    assert_no_exception(at)
    assert at.slider(key="ml_degree").value == 3 and at.slider(key="ml_noise").value == pytest.approx(0.3)
    assert at.toggle(key="ml_fewshot").value is False
    assert charts(at)["ml_llm_bars"]["data"][0]["y"][0] == "' Rome'"
    assert any("without examples" in m.value for m in at.markdown)


def test_connections_section_shows_the_models_numbers_with_links(default_page, real_lm):
    from engine.ml_basics import connections

    at = default_page
    conn = connections(real_lm, "The capital of France is")
    assert metric(at, "Tokens in your prompt") == f"{conn.n_tokens:,}"
    assert metric(at, "Its loss per token on your prompt") == f"{conn.mean_loss:.2f} nats"
    assert metric(at, "Perplexity of your prompt") == f"{conn.perplexity:,.1f}"
    assert metric(at, "Tokens as a chat request") == f"{conn.chat_tokens:,}"
    links = " ".join(str(pl.proto) for pl in at.get("page_link"))
    for stem in ("tokenization", "pretraining", "evaluation", "using_llms"):
        assert stem in links


def test_code_sample_is_honest_about_the_weights_and_the_start_token(default_page):
    at = default_page
    text = " ".join(m.value for m in at.markdown)
    assert "same, up to rounding" not in text and "downloads the same model" not in text
    assert "4-bit" in text and "original weights" in text
    snippet = next(c.value for c in at.code if "AutoModelForCausalLM" in c.value)
    assert "'<|endoftext|>'" in snippet
    assert any("`<|endoftext|>`" in c.value for c in at.caption)  # section 3 names the token it scores after


def test_mixture_table_compares_like_with_like():
    from engine import ml_basics as mb

    at = open_page({"ml_spread": "0.9", "ml_components": "3", "ml_samples": "150"})
    X, _ = mb.blobs(60, 0.9, 0)
    mix, samples = mb.mixture_demo(0.9, 0, 3, 150, 0)
    table = next(d.value for d in at.dataframe if "sampled points" in d.value.columns)
    # Population variance for the samples, as for the real points (the old page used np.cov, which divides by N-1).
    assert list(table["sampled points"]) == pytest.approx(
        [round(v, 3) for v in (*samples.mean(axis=0), *samples.var(axis=0))], abs=1e-9)
    assert list(table["real points"]) == pytest.approx([round(v, 3) for v in (*X.mean(axis=0), *X.var(axis=0))])


def test_map_simplification_is_said_next_to_the_gaussian_mixture(default_page):
    assert any("predate deep learning" in i.value for i in default_page.info)


def test_folded_details_are_sent_only_once_opened(real_lm):
    """The per-token table of p(x) and the exact classification prompt are folded: closed, nothing of them is sent;
    opened, the table holds every scored token of both sentences and the prompt holds the review."""
    at = open_page()
    assert_no_exception(at)
    assert not any(d.key == "ml_px_table" for d in at.dataframe) and not any("Sentiment:" in c.value for c in at.code)
    at.session_state["ml_px_tokens"] = True
    at.session_state["ml_pyx_prompt"] = True
    at.run()
    assert_no_exception(at)
    from engine.scoring import score_text

    table = next(d.value for d in at.dataframe if "log p" in d.value.columns)
    scored = [score_text(real_lm, s).tokens for s in ("The cat sat on the mat.", "The mat sat on the cat.")]
    assert list(table["sentence"]).count("A") == len(scored[0]) and list(table["sentence"]).count("B") == len(scored[1])
    assert table["log p"].sum() == pytest.approx(sum(t.logprob for s in scored for t in s), abs=1e-3)
    prompt = next(c.value for c in at.code if "Sentiment:" in c.value)
    assert "The food was cold and the waiter was rude." in prompt
