"""engine.landscape: the post's analogy table tied to the map, and where the map simplifies."""

from __future__ import annotations

from engine import landscape as L


def test_analogy_rows_follow_the_map():
    rows = L.analogy_rows({"ml_to_llm": "From ML to LLMs"})
    assert [r["Term"] for r in rows] == ["ML", "Deep Learning", "Generative AI", "LLM"]
    chains = [r["On the map"].split(" ⊂ ") for r in rows]
    assert [len(c) for c in chains] == [2, 3, 4, 5]  # each row is one ring deeper than the one before
    for outer, inner in zip(chains, chains[1:]):
        assert inner[1:] == outer  # …and sits inside exactly the ring above it
    assert rows[0]["Live in this app"] == "From ML to LLMs"
    assert rows[-1]["On the map"] == " ⊂ ".join(lv.name for lv in L.ancestors("llm"))


def test_the_map_and_the_quiz_say_generative_models_predate_deep_learning():
    assert L.level("genai").parent == "dl"  # the post's map, kept
    q = next(q for q in L.QUIZ if q.key == "p_of_x")
    assert "Gaussian mixture" in q.options[q.answer]
    assert "older than deep learning" in q.why and "predate deep learning" in L.SIMPLIFICATION


def test_decoder_family_names_the_loaded_model():
    decoder = next(f for f in L.TRANSFORMER_FAMILIES if f.name == "Decoder-only")
    assert decoder.live_model.format(model="SmolLM2-360M-Instruct") == "SmolLM2-360M-Instruct"


def test_the_post_models_note_follows_the_servers_opt_in():
    from engine.landscape import TRANSFORMER_FAMILIES, post_models_note
    from engine.registry import ALLOWED_HUB_MODELS, hub_models_enabled

    labels = {k: s.label for k, s in ALLOWED_HUB_MODELS.items()}
    off = post_models_note(hub_models_enabled({}), labels)
    assert "not on this server" in off and "LLMX_HUB_MODELS=1" in off
    on = post_models_note(hub_models_enabled({"LLMX_HUB_MODELS": "bert-base-uncased"}), labels)
    assert labels["bert-base-uncased"] in on and labels["gpt2"] not in on
    encoder = next(f for f in TRANSFORMER_FAMILIES if f.name == "Encoder-only")
    assert {"encoders", "tokenization", "embeddings"} <= set(encoder.pages)  # where the encoder runs live now
