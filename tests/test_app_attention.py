"""AppTest: the attention page's controls, its numbers against the real model, bad input, and URL state."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from tests.conftest import APPTEST_TIMEOUT, ENTRY, assert_no_exception

PARIS = "The capital of France is"
#: The page's folded sections (``components.display.folded``), opened through the URL as a shared link opens them.
FOLDED = ("at_by_hand", "at_bertviz", "at_lens_more", "at_writing", "at_archs")


def attention_page(query: dict[str, str] | None = None, folded_open: bool = True):
    """AppTest opened directly on the attention page (like a deep link), with URL parameters; the folded sections
    open unless ``folded_open`` is False (closed, they are not computed)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=APPTEST_TIMEOUT)
    opened = {k: "true" for k in FOLDED} if folded_open else {}
    for k, v in {"prompt": PARIS, **opened, **(query or {})}.items():
        at.query_params[k] = v
    at.switch_page("pages/attention.py")
    at.run()
    return at


def _chart(at, key_fragment: str) -> dict:
    """The spec of the chart whose element id contains ``key_fragment`` (our show_chart keys)."""
    for c in at.get("plotly_chart"):
        if key_fragment in c.proto.id:
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart {key_fragment}; have {[c.proto.id for c in at.get('plotly_chart')]}")


def _arr(value) -> np.ndarray:
    """A plotly spec array: a plain list, or plotly's typed-array dict ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return out.reshape([int(x) for x in str(shape).split(",")]) if shape else out
    return np.asarray(value, dtype=object)


def _forwards() -> int:
    from components.model import load_model

    return load_model("smollm2-135m-instruct").stats.forward_calls


@pytest.fixture(scope="module")
def paris(real_lm):
    from engine.attention import run_attention

    return run_attention(real_lm, real_lm.encode(PARIS))


def test_default_page_shows_the_models_attention(paris):
    at = attention_page()
    assert_no_exception(at)
    layer, head = at.slider(key="at_layer").value, at.selectbox(key="at_head").value
    assert (layer, head) == (2, 0)
    z = _arr(_chart(at, "at_matrix")["data"][0]["z"])
    assert np.isnan(z[0, 1]) and np.isnan(z[3, 4])  # the masked future is blank, not zero-coloured
    want = paris.attentions[layer, head].double().numpy()
    lower = np.tril(np.ones((5, 5), dtype=bool))
    assert np.allclose(z[lower], want[lower], atol=1e-6)
    assert "' Paris' (77" in " ".join(c.value for c in at.caption)
    assert any("0.0e+00" in s.value or "e-0" in s.value for s in at.success)  # the hand computation matched
    srcdoc = at.get("iframe")[0].proto.srcdoc
    assert "cdnjs" not in srcdoc and "d3js.org v5.7.0" in srcdoc and '" capital"' in srcdoc


def test_selectors_reshape_cached_results_without_running_the_model(paris):
    at = attention_page()
    before = _forwards()
    at.slider(key="at_layer").set_value(20).run()
    at.selectbox(key="at_head").set_value(7).run()
    at.selectbox(key="at_metric").set_value("entropy").run()
    at.selectbox(key="at_tok").set_value(3).run()
    at.selectbox(key="at_tlayer").set_value(20).run()
    at.selectbox(key="at_thead").set_value(7).run()
    at.slider(key="at_n").set_value(4).run()
    at.selectbox(key="at_glayer").set_value(11).run()
    at.segmented_control(key="at_bv").set_value("model").run()
    assert_no_exception(at)
    assert _forwards() == before, "a post-processing control ran the model again"
    z = _arr(_chart(at, "at_matrix")["data"][0]["z"])
    assert z[4, 0] == pytest.approx(float(paris.attentions[20, 7, 4, 0]), abs=1e-6)
    bars = list(_arr(_chart(at, "at_tokbars")["data"][0]["y"]))
    assert bars == pytest.approx(paris.attentions[20, 7, 3, :4].tolist(), abs=1e-6)
    assert sum(bars) == pytest.approx(1.0, abs=1e-5)
    grid = _arr(_chart(at, "at_grid")["data"][0]["z"])
    assert grid.shape == (30, 9) and grid.min() >= 0
    full = paris.attentions[20, 7].double()  # entropy in bits of each row, averaged: layer 20, head 7
    entropy = float(-(torch.where(full > 0, full * torch.log2(full.clamp_min(1e-300)), 0)).sum(-1).mean())
    assert grid[20, 7] == pytest.approx(entropy, abs=1e-4)
    # Tables in page order: Q, K, scaled scores, masked scores, weights, V, output, generated tokens.
    weights = at.dataframe[4].value
    assert weights.shape == (4, 4)
    assert weights.to_numpy() == pytest.approx(paris.attentions[20, 7, :4, :4].double().numpy(), abs=6e-5)
    assert '"display_mode":"light"' in at.get("iframe")[0].proto.srcdoc  # the model view now


def test_token_view_averages_heads_and_layers(paris):
    at = attention_page({"at_tok": "2: ' of'"})
    assert_no_exception(at)
    assert at.selectbox(key="at_tok").value == 2
    bars = list(_arr(_chart(at, "at_tokbars")["data"][0]["y"]))
    assert bars == pytest.approx(paris.attentions[:, :, 2, :3].mean(dim=(0, 1)).tolist(), abs=1e-6)
    assert "(all layers, average of 9 heads)" in _chart(at, "at_tokbars")["layout"]["title"]["text"]


def test_logit_lens_and_generated_tokens_on_the_page():
    at = attention_page({"at_gen": "3"})
    assert_no_exception(at)
    lens = _chart(at, "at_lens")["data"][0]
    assert lens["y"][0] == "embeddings" and lens["y"][-1] == "after layer 29"
    z = _arr(lens["z"])
    assert lens["text"][-1][-1] == "' Paris'"
    assert 0.6 < z[-1, -1] < 0.9
    assert lens["text"][5][-1] != "' Paris'"  # not there yet in early layers
    table = next(d.value for d in at.dataframe if "generated token" in d.value.columns)
    assert list(table["generated token"])[0] == "' Paris'" and len(table) == 3
    assert table["weight on the prompt"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    gen = _chart(at, "at_genmap")["data"][0]
    assert len(gen["y"]) == 3 and len(gen["x"]) == 4  # the attention-sink column is hidden by default
    before = _forwards()
    at.toggle(key="at_gsink").set_value(False).run()
    gen = _chart(at, "at_genmap")["data"][0]
    assert len(gen["x"]) == 5 and _arr(gen["z"])[0].sum() == pytest.approx(1.0, abs=1e-5)
    assert _forwards() == before
    masks = _chart(at, "at_masks")
    assert _arr(masks["data"][1]["z"])[0, 1] == 0 and _arr(masks["data"][0]["z"])[0, 1] == 1  # causal vs BERT
    assert any("decoder-only model, like GPT" in m.value for m in at.markdown)


def test_bad_inputs_give_messages_not_tracebacks():
    at = attention_page({"prompt": "   "})
    assert_no_exception(at)
    assert any("Type a prompt" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("word " * 300).run()
    assert_no_exception(at)
    assert any("at most 128" in w.value for w in at.warning)
    at.text_area(key="prompt").set_value("<script>alert(1)</script>\x00 😀 \u202e").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)
    srcdoc = at.get("iframe")[0].proto.srcdoc
    params = re.search(r"const params = (\{.*?\});", srcdoc).group(1)
    assert "<" not in params and "\\u003c" in params  # token text cannot close the inline script
    at.text_area(key="prompt").set_value("x").run()  # one token: nothing to compare, still no error
    assert_no_exception(at)
    assert at.get("plotly_chart")


def test_invalid_url_values_fall_back_to_defaults():
    at = attention_page({"at_layer": "999", "at_head": "banana", "at_metric": "<b>", "at_tok": "-5", "at_bv": "x",
                         "at_gen": "1000"})
    assert_no_exception(at)
    assert at.slider(key="at_layer").value == 2
    assert at.selectbox(key="at_head").value == 0
    assert at.selectbox(key="at_metric").value == "first"
    assert at.selectbox(key="at_tok").value == 4
    assert at.segmented_control(key="at_bv").value == "head"
    assert at.slider(key="at_gen").value == 6


def test_url_state_is_shareable():
    # Bound selectors put their labels in the URL (?at_head=head+3&at_bv=Model+view&at_bvl=layer+4&at_bvl=layer+9).
    at = attention_page({"at_layer": "12", "at_head": "head 3", "at_bv": "Model view", "at_bvl": ["layer 4", "layer 9"]})
    assert_no_exception(at)
    assert at.slider(key="at_layer").value == 12 and at.selectbox(key="at_head").value == 3
    srcdoc = at.get("iframe")[0].proto.srcdoc
    assert '"include_layers":[4,9]' in srcdoc and '"display_mode":"light"' in srcdoc


def test_folded_sections_are_computed_and_sent_only_once_opened():
    """Closed, a folded section sends nothing for the browser to draw (bertviz's iframe, tables, charts) and runs
    nothing (the generation under "Attention while the model writes"); opening it draws it."""
    at = attention_page({"prompt": "Owls hunt at night because"}, folded_open=False)
    assert_no_exception(at)
    assert [e.label for e in at.expander][:5] == [
        "One head by hand: the arithmetic, from the real weights", "bertviz: the classic attention views",
        "The final answer's probability, layer by layer", "Attention while the model writes",
        "Encoder, decoder, encoder-decoder"]
    assert not at.get("iframe") and not at.dataframe and not at.success
    ids = [c.proto.id for c in at.get("plotly_chart")]
    assert len(ids) == 5 and not any(k in i for i in ids for k in ("at_lens_line", "at_genmap", "at_masks"))
    before = _forwards()
    at.session_state["at_writing"] = True  # the learner opens it
    at.run()
    assert_no_exception(at)
    assert _forwards() > before  # it generated now, not before
    table = next(d.value for d in at.dataframe if "generated token" in d.value.columns)
    assert len(table) == 6 and _chart(at, "at_genmap")
    assert not at.get("iframe")  # the others stay closed


def test_page_reads_as_a_lesson_with_the_rest_folded_away():
    at = attention_page()
    assert_no_exception(at)
    heads = [h.value for h in at.subheader]
    numbered = [h for h in heads if h[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert [h[:2] for h in numbered] == ["1.", "2.", "3.", "4.", "5."]
    assert "What attention does" in numbered[0] and "One head" in numbered[1] and "All heads" in numbered[2]
    assert "residual stream, RMSNorm, MLP" in numbered[3] and "logit lens" in numbered[4]
    folded = [e.label for e in at.expander]
    assert any("by hand" in f for f in folded) and any("bertviz" in f for f in folded)
    assert any("while the model writes" in f for f in folded) and any("Encoder, decoder" in f for f in folded)
    texts = [m.value for m in at.markdown]
    assert "Attention Is All You Need" in texts[0] and "Vaswani" in texts[0]

    def first(term: str) -> int:
        return next(i for i, t in enumerate(texts) if term in t)

    # Each term is defined (in bold) where it is first used, and in lesson order.
    for term in ("KV cache", "logit", "residual stream", "RMSNorm", "MLP", "query", "key", "value"):
        assert f"**{term}" in texts[first(term)] or f"**The {term}" in texts[first(term)], term
    assert first("**query**") < first("**The attention sink") < first("**The residual stream") < first("**logit**")


def test_first_token_sink_and_the_block_around_attention_are_measured(paris):
    at = attention_page()
    assert_no_exception(at)
    from engine.attention import block_flow, token_view

    tv = token_view(paris.attentions, 4)
    captions = " ".join(c.value for c in at.caption)
    assert f"({tv.top_weight:.0%}), whatever it says: this is the **attention sink**" in captions
    sink_md = next(m.value for m in at.markdown if "The attention sink" in m.value)
    assert f"**{float(paris.attentions[:, :, 1:, 0].mean()):.0%}**" in sink_md
    block = _chart(at, "at_block")["data"]
    assert list(_arr(block[0]["y"])) == pytest.approx(paris.attn_norms[:, -1].tolist(), rel=1e-5)
    assert list(_arr(block[1]["y"])) == pytest.approx(paris.mlp_norms[:, -1].tolist(), rel=1e-5)
    flow = block_flow(paris)
    assert f"in {flow.mlp_larger} of 30 layers" in captions
    assert f"to {float(flow.residual[-1]):.1f} after the last block" in captions
    assert any("expanded to 1,536" in m.value for m in at.markdown)  # the MLP's width, read from the model
