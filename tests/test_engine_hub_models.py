"""The post's models (GPT-2, BERT, T5) as opt-in hub models: allow-list and opt-in, and the loading and the
architecture switch on tiny random models built from GPT2Config, BertConfig and T5Config, loaded through the hub
models' own code path. Nothing here reaches the network (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import pytest
import torch

from engine import hub_models as hub
from engine.loader import ModelLoadError
from engine.registry import ALLOWED_HUB_MODELS, ALLOWED_MODELS, HUB_MODELS_ENV, get_hub_spec, hub_models_enabled
from tests.support.tiny_hub import build_tiny_hub_models


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return build_tiny_hub_models(tmp_path_factory.mktemp("tiny_hub"))


@pytest.fixture(scope="module")
def loaded(tiny_dirs):
    out = {}
    for key, folder in tiny_dirs.items():
        with hub.local_override(key, folder):
            out[key] = hub.load_hub_model(key)
    return out


def test_allow_list_is_opt_in_and_apart_from_the_sidebar():
    assert [s.family for s in hub.hub_specs()] == ["decoder", "encoder", "encoder-decoder"]
    assert not set(ALLOWED_HUB_MODELS) & set(ALLOWED_MODELS)  # never the sidebar's (llama-only) decoder
    assert hub_models_enabled({}) == () and hub_models_enabled({HUB_MODELS_ENV: "0"}) == ()
    assert hub_models_enabled({HUB_MODELS_ENV: "1"}) == tuple(ALLOWED_HUB_MODELS)
    assert hub_models_enabled({HUB_MODELS_ENV: "gpt2, /etc/passwd,bert-base-uncased"}) == ("gpt2", "bert-base-uncased")
    for bad in ("/tmp/x", "openai-community/gpt2", "t5-base"):
        with pytest.raises(ValueError, match="Unknown hub model"):
            get_hub_spec(bad)


def test_default_path_never_loads(monkeypatch):
    monkeypatch.delenv(HUB_MODELS_ENV, raising=False)
    with pytest.raises(ModelLoadError) as info:
        hub.load_hub_model("gpt2")
    assert "not available on this server" in info.value.reason and HUB_MODELS_ENV in info.value.fix


def test_opted_in_but_offline_is_a_clear_load_error(monkeypatch):
    monkeypatch.setenv(HUB_MODELS_ENV, "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        hub.load_hub_model("flan-t5-small")
    assert "Could not load FLAN-T5 small" in info.value.reason and "huggingface.co" in info.value.fix


def test_each_family_gets_its_own_head(loaded):
    classes = {k: (m.info.architecture, m.info.model_class) for k, m in loaded.items()}
    assert classes == {"gpt2": ("gpt2", "GPT2LMHeadModel"), "bert-base-uncased": ("bert", "BertForMaskedLM"),
                       "flan-t5-small": ("t5", "T5ForConditionalGeneration")}
    for m in loaded.values():
        assert not m.model.training and not any(p.requires_grad for p in m.model.parameters())
        assert m.info.layers == 2 and m.info.source.startswith("local folder")


def test_a_repository_of_another_architecture_is_refused(tiny_dirs):
    with hub.local_override("gpt2", tiny_dirs["bert-base-uncased"]):
        with pytest.raises(ModelLoadError, match="'bert' model, not gpt2: refused"):
            hub.load_hub_model("gpt2")


def test_gpt2_generates_the_greedy_continuation(loaded):
    m = loaded["gpt2"]
    before = m.stats.forward_calls
    res = m.run("Once upon a time")
    assert res.task == "generate" and res.input_tokens == len(m.tokenizer("Once upon a time")["input_ids"])
    # the same greedy continuation, recomputed by hand with one forward per token
    ids = m.tokenizer("Once upon a time")["input_ids"]
    with torch.inference_mode():
        for _ in range(20):
            ids.append(int(m.model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert res.output == m.tokenizer.decode(ids[res.input_tokens:], skip_special_tokens=True)
    assert m.stats.forward_calls == before + 1


def test_bert_fills_the_mask_with_its_head(loaded):
    m = loaded["bert-base-uncased"]
    res = m.run("The capital of France is [MASK].")
    assert res.task == "fill-mask" and len(res.candidates) == 5
    probs = [p for _, p in res.candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    ids = m.tokenizer("The capital of France is [MASK].")["input_ids"]
    with torch.inference_mode():
        logits = m.model(torch.tensor([ids])).logits[0, ids.index(m.tokenizer.mask_token_id)]
    assert res.candidates[0][1] == pytest.approx(float(torch.softmax(logits.double(), -1).max()), rel=1e-9)
    assert res.output == f"The capital of France is {res.candidates[0][0]}."
    for bad in ("No blank here.", "[MASK] and [MASK]"):
        with pytest.raises(ValueError, match=r"exactly once"):
            m.run(bad)


def test_t5_encodes_then_decodes(loaded):
    m = loaded["flan-t5-small"]
    res = m.run("summarize: the cat sat on the mat all day long.")
    assert res.task == "text2text" and res.input_tokens > 0
    assert res.input_tokens == len(m.tokenizer("summarize: the cat sat on the mat all day long.")["input_ids"])
    assert isinstance(res.output, str) and m.stats.generated_tokens > 0


@pytest.mark.parametrize("key", list(ALLOWED_HUB_MODELS))
def test_bad_input_gets_a_message(loaded, key):
    m = loaded[key]
    for text, match in (("", "empty"), ("  \n", "empty"), ("word " * 300 + "[MASK]", "at most 128")):
        with pytest.raises(ValueError, match=match):
            m.run(text)
    res = m.run("<b>😀\x07 [MASK]</b>")  # emoji, control characters and HTML are just text
    assert res.input_tokens > 0


def test_families_that_do_not_apply_say_why():
    assert hub.fits("decoder", "generate") == (True, "")
    ok, why = hub.fits("decoder", "fill-mask")
    assert not ok and "left to right" in why
    assert not hub.fits("encoder", "generate")[0] and not hub.fits("encoder", "text2text")[0]
    for spec in hub.hub_specs():
        assert hub.fits(spec.family, spec.task)[0]
        code = hub.code_snippet(spec)
        assert spec.hub_id in code and "trust_remote_code" not in code
        compile(code, "<snippet>", "exec")  # valid Python
