"""AppTest: the encoders page. Values read back from the page's charts and tables are checked against the models:
the encoder reads both ways and the decoder never looks ahead, search ranks a paraphrase above unrelated text, the
encoder-decoder trained here solves held-out dates, view changes run no model, and bad input gets a message."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.conftest import app_page, assert_no_exception, html_text, metric_value

STEM = "encoders"
#: Training on a busy 2-core machine can take minutes: the run that presses the button may wait that long.
TRAIN_TIMEOUT = 900


def _chart(at, key: str) -> dict:
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(key):
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart {key}; have {[c.proto.id for c in at.get('plotly_chart')]}")


def _arr(value) -> np.ndarray:
    """A plotly spec array: a plain list, or plotly's typed-array dict ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return out.reshape([int(x) for x in str(shape).split(",")]) if shape else out
    return np.asarray(value, dtype=float)


def _table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _forwards() -> tuple[int, int]:
    from components import caches
    from components.model import load_model

    return load_model("smollm2-135m-instruct").stats.forward_calls, caches.encoder_model("all-minilm-l6-v2").stats.forward_calls


@pytest.fixture(scope="module")
def page():
    at = app_page(STEM)
    assert_no_exception(at)
    return at


def test_encoder_reads_both_ways_and_the_decoder_never_looks_ahead(page):
    dec, enc = _chart(page, "enc_readers")["data"][:2]
    zd, ze = _arr(dec["z"]), _arr(enc["z"])
    upper_d, upper_e = np.triu(np.ones_like(zd, bool), 1), np.triu(np.ones_like(ze, bool), 1)
    assert zd[upper_d].sum() == 0.0 and zd[~upper_d].sum() > 0  # measured zeros, not hidden cells
    assert ze[upper_e].sum() > 0.1 * ze.shape[0]
    assert np.allclose(zd.sum(1), 1, atol=1e-4) and np.allclose(ze.sum(1), 1, atol=1e-4)
    assert enc["x"][0].startswith("0: '[CLS]'") and enc["x"][-1].endswith("'[SEP]'")
    assert metric_value(page, "Decoder: weight on later tokens") == "0.0%"
    assert float(metric_value(page, "Encoder: weight on later tokens").rstrip("%")) > 5


def test_wordpiece_next_to_bpe(page):
    from components import caches

    enc = caches.encoder_model("all-minilm-l6-v2")
    _, pieces, _ = enc.tokenize("Unbelievably, Transformers tokenize emoji 😀 differently!")
    assert metric_value(page, "WordPiece tokens") == str(len(pieces) - 2)
    assert metric_value(page, "[UNK] in WordPiece") == "1"
    body = html_text(page)
    assert "[CLS]" in body and "##" in body and "[UNK]" in body


def test_search_and_similarity_rank_meaning(page):
    hits = _table(page, "cosine to the query")
    music = {"A man is playing a guitar.", "Someone is strumming an instrument."}
    assert set(hits["sentence"].iloc[:2]) == music  # "music performance" shares no word with either
    assert hits["cosine to the query"].iloc[1] > hits["cosine to the query"].iloc[2] + 0.1
    sims = _chart(page, "enc_sims")["data"][0]
    z = _arr(sims["z"])
    # rows: guitar, strumming (paraphrase), stock market (unrelated), share prices, cat
    assert z[0, 1] > 0.5 and abs(z[0, 2]) < 0.2 and z[2, 3] > z[2, 4] + 0.3
    spread = _table(page, "lowest cosine").set_index("vectors")
    mean_low = spread["lowest cosine"].iloc[0]
    decoder_low = spread["lowest cosine"].iloc[2]
    assert decoder_low > mean_low + 0.3  # the decoder's token vector crowds every sentence together


def test_view_changes_run_no_model(page):
    before = _forwards()
    page.selectbox(key="enc_vec").set_value("decoder").run()
    assert_no_exception(page)
    z = _arr(_chart(page, "enc_sims")["data"][0]["z"])
    assert z[0, 2] > 0.6  # the decoder's vectors: even unrelated sentences look alike
    page.selectbox(key="enc_vec").set_value("cls").run()
    page.text_input(key="enc_text").set_value("The bank by the river was closed.").run()  # unchanged value
    assert _forwards() == before


@pytest.mark.parametrize("text, expect", [
    ("", "Type a sentence"),
    ("x" * 100_000, "at most"),
    ("<script>alert(1)</script>\x00 😀 \u202e", None),
])
def test_bad_sentences_get_messages(text, expect):
    at = app_page(STEM, {"enc_text": text} if text else {})
    if not text:
        at.text_input(key="enc_text").set_value("").run()
    assert_no_exception(at)
    shown = " ".join(m.value for m in [*at.info, *at.warning, *at.caption])
    if expect:
        assert expect in shown
    else:
        assert "Control characters" in shown
        assert "<script>" not in html_text(at)


def test_bad_sentence_lists_and_queries():
    at = app_page(STEM, {"enc_sents": "only one line", "enc_query": "<b>hi</b>"})
    assert_no_exception(at)
    assert any("at least two sentences" in i.value for i in at.info)
    at.text_area(key="enc_sents").set_value("😀\n\x07<i>x</i>\n" + "word " * 300).run()
    assert_no_exception(at)
    assert any("at most 128" in w.value for w in at.warning)


def test_encoder_decoder_trains_once_and_translates():
    from engine.seq2seq import TrainConfig

    at = app_page(STEM)
    assert_no_exception(at)
    at.button(key="s2s_train").click().run(timeout=TRAIN_TIMEOUT)
    assert_no_exception(at)
    accuracy = float(metric_value(at, "Held-out accuracy").rstrip("%"))
    assert accuracy >= 95.0
    loss = _arr(_chart(at, "s2s_loss")["data"][0]["y"])
    assert len(loss) == TrainConfig().steps and loss[-1] < loss[0] / 20
    assert any("2024-05-03" in s.value and "correct" in s.value for s in at.success)
    cross = _chart(at, "s2s_cross")["data"][0]
    zc = _arr(cross["z"])
    assert zc.shape == (11, 11) and np.allclose(zc.sum(1), 1, atol=1e-4)
    assert zc[:4, 6:10].sum(1).mean() > 0.5  # the year's digits read the year
    zd = _arr(_chart(at, "s2s_dec")["data"][0]["z"])
    assert zd[np.triu(np.ones_like(zd, bool), 1)].sum() == 0.0
    ze = _arr(_chart(at, "s2s_enc")["data"][0]["z"])
    assert ze[np.triu(np.ones_like(ze, bool), 1)].sum() > 0
    at.selectbox(key="s2s_layer").set_value(1).run()
    at.selectbox(key="s2s_head").set_value(2).run()
    assert_no_exception(at)
    at.text_input(key="s2s_in").set_value("14 July 1989").run()
    assert any("1989-07-14" in s.value for s in at.success)
    at.text_input(key="s2s_in").set_value("<b>1</b>").run()
    assert_no_exception(at)
    assert any("no token" in w.value for w in at.warning)
    # A second session finds the model trained: no button, no second run.
    again = app_page(STEM, {"s2s_in": "25 December 2031"})
    assert_no_exception(again)
    assert not [b for b in again.button if b.key == "s2s_train"]
    assert any("2031-12-25" in s.value for s in again.success)


# ------------------------------------------------------------------------------------------------- the post's models
def test_post_models_are_not_loaded_by_default(page, monkeypatch):
    table = _table(page, "on this server").set_index("model")
    assert list(table.index) == ["GPT-2 (small)", "BERT base (uncased)", "FLAN-T5 small"]
    assert set(table["on this server"]) == {"not available here"}
    assert "left to right" in table.loc["GPT-2 (small)", "does not apply to"]  # where a family does not apply
    assert table.loc["FLAN-T5 small", "family"] == "encoder-decoder"
    assert any("GPT-2 (small) is not available here" in i.value and "LLMX_HUB_MODELS=1" in i.value for i in page.info)
    codes = [c.value for c in page.code]
    assert any('pipeline("text-generation", model="openai-community/gpt2")' in c for c in codes)
    assert not any(t.key and str(t.key).startswith("enc_hub_") for t in page.text_input)  # no box that does nothing
    page.segmented_control(key="enc_hub").set_value("flan-t5-small").run()
    assert any("AutoModelForSeq2SeqLM" in c.value for c in page.code)


@pytest.fixture()
def opted_in(tmp_path, monkeypatch):
    """Tiny random GPT-2 / BERT / T5 behind the hub models' own loading path, on a server that opted in."""
    from components import caches
    from engine import hub_models as hub
    from tests.support.tiny_hub import build_tiny_hub_models

    monkeypatch.setenv("LLMX_HUB_MODELS", "1")
    dirs = build_tiny_hub_models(tmp_path)
    caches.hub_model.clear()
    caches.hub_run.clear()
    with hub.local_override("gpt2", dirs["gpt2"]), hub.local_override("bert-base-uncased", dirs["bert-base-uncased"]), \
            hub.local_override("flan-t5-small", dirs["flan-t5-small"]):
        yield dirs
    caches.hub_model.clear()
    caches.hub_run.clear()


def test_post_models_run_where_their_architecture_fits(opted_in):
    from components import caches

    at = app_page(STEM, {"enc_sents": "a\nb"})
    assert_no_exception(at)
    assert set(_table(at, "on this server")["on this server"]) == {"opted in"}
    gpt2, _ = caches.hub_model("gpt2")
    expected = gpt2.generate("Once upon a time, a small robot").output
    assert any(c.value == (expected or "(nothing)") for c in at.code)
    at.segmented_control(key="enc_hub").set_value("bert-base-uncased").run()
    assert_no_exception(at)
    fill = _table(at, "probability")
    bert, _ = caches.hub_model("bert-base-uncased")
    ref = bert.fill_mask("The capital of France is [MASK].")
    assert list(fill["word"]) == [w for w, _ in ref.candidates]
    assert np.allclose(fill["probability"], [round(p, 4) for _, p in ref.candidates])
    at.text_input(key="enc_hub_mask").set_value("No blank in this sentence.").run()
    assert any("exactly once" in w.value for w in at.warning)
    at.segmented_control(key="enc_hub").set_value("flan-t5-small").run()
    t5, _ = caches.hub_model("flan-t5-small")
    assert t5.info.model_class == "T5ForConditionalGeneration" and t5.stats.forward_calls == 1
    before = (gpt2.stats.forward_calls, bert.stats.forward_calls, t5.stats.forward_calls)
    at.segmented_control(key="enc_hub").set_value("gpt2").run()  # back to a cached result: no model runs
    at.selectbox(key="enc_vec").set_value("cls").run()
    assert (gpt2.stats.forward_calls, bert.stats.forward_calls, t5.stats.forward_calls) == before


def test_post_models_offline_say_so(monkeypatch):
    from components import caches

    monkeypatch.setenv("LLMX_HUB_MODELS", "gpt2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caches.hub_model.clear()
    try:
        at = app_page(STEM, {"enc_sents": "a\nb"})
        assert_no_exception(at)
        assert any("Could not load GPT-2 (small)" in w.value and "huggingface.co" in w.value for w in at.warning)
        assert not at.main.error
    finally:
        caches.hub_model.clear()
