"""AppTest: the embeddings page on the real model (vector, neighbours, word map, analogies, meaning in context)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from components.model import load_model
from engine import embeddings as emb
from tests.conftest import app_page, assert_no_exception, chart_specs


def chart(at, key_type: str, nth: int = 0) -> dict:
    """The ``nth`` chart whose first trace has plotly type ``key_type``."""
    return [s for s in chart_specs(at) if s["data"][0]["type"] == key_type][nth]


def arr(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed-array form ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return out.reshape([int(n) for n in str(shape).split(",")]) if shape else out
    return np.asarray(value)


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def default_page():
    at = app_page("embeddings")
    assert_no_exception(at)
    return at


def test_vector_strip_is_the_real_table_row(default_page, real_lm):
    at = default_page
    metric = {m.label: m.value for m in at.metric}
    assert metric["Rows (vocabulary)"] == "49,152" and metric["Dimensions per token"] == "576"
    assert metric["Shared with the output layer"] == "yes"
    strip = chart(at, "heatmap", 0)["data"][0]
    row = emb.embedding_matrix(real_lm)[real_lm.encode(" king")[0]]
    z = arr(strip["z"])
    assert z.shape == (1, 576)
    assert z[0] == pytest.approx(row.numpy(), abs=1e-6)
    bars = chart(at, "bar", 0)["data"][0]
    assert "' queen'" in bars["y"] and "' king'" not in bars["y"]
    x = list(arr(bars["x"]))
    assert x == sorted(x, reverse=True) and len(x) == 10


def test_word_list_heatmap_projection_and_multi_token_word(default_page):
    at = default_page
    heat = chart(at, "heatmap", 1)["data"][0]
    z = arr(heat["z"])
    assert z.shape == (20, 20) and np.allclose(np.diag(z), 1, atol=1e-5)
    assert "skateboard (2 tokens)" in heat["x"]
    i, j = heat["x"].index("puppy"), heat["x"].index("kitten")
    car = heat["x"].index("car")
    assert z[i, j] > z[i, car] + 0.3  # puppy is much closer to kitten than to car
    assert "skateboard = ' skate' + 'board'" in captions(at)
    scatter = chart(at, "scatter", 0)["data"]
    assert sum(len(arr(t["x"])) for t in scatter) == 20
    assert "of the spread" in captions(at)


def test_analogy_default_is_queen(default_page):
    at = default_page
    assert any("**Good.** 'queen' is the top answer" in s.value for s in at.success)
    bars = chart(at, "bar", 1)["data"][0]
    assert bars["y"][0] == "' queen'"
    assert not {"king", "man", "woman"} & {y.strip("'\u200b ").lower() for y in bars["y"]}


def test_contextual_default_separates_meanings(default_page):
    at = default_page
    lines = {t["name"]: arr(t["y"]) for t in chart(at, "scatter", 1)["data"]}
    assert set(lines) == {"within A", "within B", "across A and B"}
    assert lines["across A and B"][0] == pytest.approx(1.0, abs=1e-5)  # layer 0: the same table row
    assert lines["within A"][20] > lines["across A and B"][20]
    assert "gap is largest at layer" in captions(at)


def test_multi_token_word_is_explained_not_cut(real_lm):
    at = app_page("embeddings", query={"emb_word": "unbelievably"})
    assert_no_exception(at)
    pieces = real_lm.encode(" unbelievably")
    assert any(f"**{len(pieces)} tokens**" in w.value and "average" in w.value for w in at.warning)
    strip = chart(at, "heatmap", 0)["data"][0]
    z = arr(strip["z"])
    assert z.shape == (len(pieces) + 1, 576) and strip["y"][-1] == "'average'"
    rows = emb.embedding_matrix(real_lm)[pieces]
    assert z[0] == pytest.approx(rows[0].numpy(), abs=1e-6)
    assert z[-1] == pytest.approx(rows.mean(dim=0).numpy(), abs=1e-6)


def test_empty_and_short_word_lists():
    at = app_page("embeddings")
    at.text_area(key="emb_words").set_value(" , ,\n").run()
    assert_no_exception(at)
    assert any("Type at least two words" in i.value for i in at.info)
    at.text_area(key="emb_words").set_value("cat").run()
    assert any("Only one word ('cat')" in i.value for i in at.info)
    at.text_area(key="emb_words").set_value("cat, dog, car").run()
    at.segmented_control(key="emb_proj").set_value("t-SNE").run()
    assert_no_exception(at)
    assert any("t-SNE needs at least 5 points" in w.value for w in at.warning)
    at.slider(key="emb_more").set_value(3).run()  # 3 words + 3 neighbours each: enough for t-SNE
    assert_no_exception(at)
    scatter = chart(at, "scatter", 0)["data"]
    assert [len(arr(t["x"])) for t in scatter] == [3, 9]  # your words, then 3 neighbours of each


def test_hostile_words_are_escaped_and_empty_inputs_explained():
    at = app_page("embeddings")
    at.text_area(key="emb_words").set_value("<b>cat</b>\x00, <script>alert(1)</script>, dog").run()
    assert_no_exception(at)
    heat = chart(at, "heatmap", 1)["data"][0]
    assert all("<" not in x for x in heat["x"]) and any("&lt;b&gt;" in x for x in heat["x"])
    at.text_input(key="emb_word").set_value("   ").run()
    at.text_input(key="emb_a").set_value("").run()
    at.text_input(key="emb_cword").set_value("zebra").run()
    assert_no_exception(at)
    assert any("Type a word to see its vector" in i.value for i in at.info)
    assert any("Fill in a, b and c" in i.value for i in at.info)
    assert any("At least two sentences must contain 'zebra'" in w.value for w in at.warning)


def test_poor_analogy_is_called_poor():
    at = app_page("embeddings", query={"emb_a": "Paris", "emb_b": "France", "emb_c": "Italy", "emb_expect": "Rome"})
    assert_no_exception(at)
    assert any("**Poor.**" in e.value and "the analogy failed" in e.value for e in at.error)


def test_every_sentence_view_is_sent_only_once_opened():
    at = app_page("embeddings")
    assert_no_exception(at)
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert not any(t.startswith("Cosine at layer") for t in titles) and len(titles) == 8
    at.session_state["emb_ctx_open"] = True
    at.run()
    assert_no_exception(at)
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Cosine at layer 6" in titles and len(titles) == 10


def test_layer_slider_does_not_rerun_the_model():
    at = app_page("embeddings", query={"emb_ctx_open": "true"})
    lm = load_model("smollm2-135m-instruct")
    before = lm.stats.forward_calls
    first = chart(at, "heatmap", 2)
    at.slider(key="emb_layer").set_value(25).run()
    assert_no_exception(at)
    assert lm.stats.forward_calls == before
    moved = chart(at, "heatmap", 2)
    assert moved["layout"]["title"]["text"] == "Cosine at layer 25"
    assert not np.allclose(arr(moved["data"][0]["z"]), arr(first["data"][0]["z"]))
    lines = chart(at, "scatter", 1)
    assert lines["layout"]["shapes"][0]["x0"] == 25


def test_sentence_starting_with_the_word_is_skipped_with_a_reason():
    at = app_page("embeddings", query={"emb_ctx_b": "Bank robbers fled.\nThe bank approved her loan."})
    assert_no_exception(at)
    assert "Skipped “Bank robbers fled.”: the word is the first token" in captions(at)


# ------------------------------------------------------------------------------------------------ the shared prompt
def title(spec: dict) -> str:
    return spec["layout"].get("title", {}).get("text") or ""


def prompt_heatmap(at) -> dict:
    """The spec of the heatmap comparing the shared prompt's tokens."""
    return next(s for s in chart_specs(at) if title(s).startswith("Cosine between your tokens"))


def labels_of(lm, ids) -> list[str]:
    """The heatmap's axis labels for these tokens (quoted, repeats made unique with invisible characters)."""
    from components.figures.base import token_label, unique_labels

    return unique_labels([token_label(t) for t in lm.token_texts(ids)])


def test_prompt_link_shows_its_tokens_in_embedding_space(real_lm):
    text = "The cat sat on the mat because the cat was tired."
    at = app_page("embeddings", query={"prompt": text})
    assert_no_exception(at)
    ids = real_lm.encode(text)
    heat = prompt_heatmap(at)
    assert title(heat).endswith("the lookup table rows")
    assert heat["data"][0]["x"] == labels_of(real_lm, ids)
    z = arr(heat["data"][0]["z"])
    rows = emb.embedding_matrix(real_lm)[ids]  # layer 0: the table rows themselves
    assert z == pytest.approx(emb.cosine_matrix(rows).numpy(), abs=1e-5)
    cat = [i for i, t in enumerate(ids) if t == real_lm.encode(" cat")[0]]
    assert z[cat[0], cat[1]] == pytest.approx(1.0, abs=1e-5)  # the same token, the same row
    assert "`' the'` appears at positions 4 and 7: cosine 1.00 at layer 0" in captions(at)
    # A later layer: the vectors of a real forward pass, where the two copies of a token now differ.
    at.slider(key="emb_prompt_layer").set_value(6).run()
    z6 = arr(prompt_heatmap(at)["data"][0]["z"])
    hidden = real_lm.forward(ids, hidden_states=True).hidden_states[6]
    assert z6 == pytest.approx(emb.cosine_matrix(hidden).numpy(), abs=1e-4)
    assert z6[cat[0], cat[1]] < 0.99
    assert "Unusually long vectors at this layer: `'The'` (#0" in captions(at)


def test_prompt_layer_slider_does_not_rerun_the_model():
    at = app_page("embeddings", query={"prompt": "Layers reshape every token of this prompt"})
    lm = load_model("smollm2-135m-instruct")
    before = lm.stats.forward_calls
    first = arr(prompt_heatmap(at)["data"][0]["z"])
    for layer in (12, 30):
        at.slider(key="emb_prompt_layer").set_value(layer).run()
        assert_no_exception(at)
        heat = prompt_heatmap(at)
        assert title(heat).endswith(f"after layer {layer}")
        assert not np.allclose(arr(heat["data"][0]["z"]), first)
    assert lm.stats.forward_calls == before


def test_long_prompt_is_capped_and_says_so(real_lm):
    text = " ".join(f"word{i}" for i in range(60))
    at = app_page("embeddings", query={"prompt": text})
    assert_no_exception(at)
    ids = real_lm.encode(text)
    assert len(ids) > 48
    z = arr(prompt_heatmap(at)["data"][0]["z"])
    assert z.shape == (48, 48)
    assert f"Your prompt is {len(ids)} tokens; only the first 48 are compared" in captions(at)
    assert prompt_heatmap(at)["data"][0]["x"] == labels_of(real_lm, ids[:48])


def test_prompt_carried_from_tokenization_to_embeddings(real_lm):
    at = app_page("tokenization")
    at.text_input(key="prompt").set_value("Paris and London are capitals").run()
    at.switch_page("pages/embeddings.py").run()
    # Under AppTest the box mounted by a page switch is read on the second run (tests/test_app_next_token.py); in a
    # browser the first view already shows it (tests/browser/test_frame.py).
    at.run()
    assert_no_exception(at)
    assert at.text_area(key="prompt").value == "Paris and London are capitals"
    assert prompt_heatmap(at)["data"][0]["x"] == labels_of(real_lm, real_lm.encode("Paris and London are capitals"))
    # Edited here, it travels on: Tokenization shows the new prompt.
    at.text_area(key="prompt").set_value("Dogs and cats").run()
    assert prompt_heatmap(at)["data"][0]["x"] == labels_of(real_lm, real_lm.encode("Dogs and cats"))
    at.switch_page("pages/tokenization.py").run()
    assert at.text_input(key="prompt").value == "Dogs and cats"


def test_hostile_and_empty_prompt():
    at = app_page("embeddings", query={"prompt": "<b>bold</b> *star* `tick` $x$"})
    assert_no_exception(at)
    x = prompt_heatmap(at)["data"][0]["x"]
    assert all("<" not in label for label in x) and "'&lt;'" in x
    assert "`'b'` appears at positions 1 and 5" in captions(at)  # tokens in captions are literal code spans
    at.text_area(key="prompt").set_value("").run()
    assert_no_exception(at)
    assert any("Type a prompt above to see its tokens as vectors" in i.value for i in at.info)
    assert not [s for s in chart_specs(at) if title(s).startswith("Cosine between your tokens")]


# ------------------------------------------------------------------------------------------------ sentence vectors
def _frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _sent_chart(at) -> dict:
    import json

    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith("emb_sent_sims"))


def _forwards() -> tuple[int, int]:
    from components import caches

    return load_model("smollm2-135m-instruct").stats.forward_calls, caches.encoder_model("all-minilm-l6-v2").stats.forward_calls


def test_sentence_search_and_heatmap_come_from_the_encoder(default_page):
    from components import caches

    at = default_page
    hits = _frame(at, "cosine to the query")
    assert set(hits["sentence"].iloc[:2]) == {"How do I reset my password?", "I forgot my login details."}
    assert list(hits["cosine to the query"]) == sorted(hits["cosine to the query"], reverse=True)
    sentences = tuple(hits.sort_values("rank")["sentence"])
    ref = caches.sentence_search("all-minilm-l6-v2", "I can't sign in to my account", sentences)
    assert [round(h.score, 4) for h in ref] == list(hits["cosine to the query"])
    z = arr(_sent_chart(at)["data"][0]["z"])
    # rows: password, login (paraphrase), shop opening, Sunday opening (paraphrase), parcel
    assert z[0, 1] > z[0, 2] + 0.2 and z[2, 3] > z[2, 4] + 0.2 and np.allclose(np.diag(z), 1, atol=1e-5)
    spread = _frame(at, "lowest cosine").set_index("vectors")
    assert spread["lowest cosine"].iloc[2] > spread["lowest cosine"].iloc[0] + 0.3  # decoder vectors crowd together


def test_switching_sentence_vectors_runs_no_model():
    at = app_page("embeddings")
    before = _forwards()
    at.selectbox(key="emb_svec").set_value("decoder").run()
    assert_no_exception(at)
    z = arr(_sent_chart(at)["data"][0]["z"])
    assert z[z < 0.999].min() > 0.5  # the decoder's last-token vectors: every pair looks alike
    at.selectbox(key="emb_svec").set_value("cls").run()
    assert _forwards() == before


@pytest.mark.parametrize("query, expect", [
    ({"emb_sents": "only one sentence"}, "at least two sentences"),
    ({"emb_squery": ""}, "Type something to search for"),
    ({"emb_sents": "a\n" + "word " * 300}, "at most 128"),
    ({"emb_sents": "<b>x</b>\x07\n😀👩‍💻\n\u202eRTL", "emb_squery": "<script>alert(1)</script>"}, None),
])
def test_bad_sentence_input_gets_a_message(query, expect):
    at = app_page("embeddings", query=query)
    assert_no_exception(at)
    said = [m.value for m in (*at.info, *at.warning)]
    if expect:
        assert any(expect in m for m in said), said
    else:
        assert len(_frame(at, "cosine to the query")) == 3
