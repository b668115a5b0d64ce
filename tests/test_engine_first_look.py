"""The first look: the cache's weights and tokenizer read without transformers give the model's own predictions, and
the loader builds the model on the same tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.first_look import FirstLook, supports
from engine.loader import ModelLoads, load_pretrained
from engine.registry import DEFAULT_KEY
from engine.tiny import TINY_SPEC

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The capital of France is", "x", "Hello 👋 wörld\n\t<b>&amp;</b> " * 3, "def f(a):\n    return a *" * 40]


def _library_logits(lm, ids):
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids])).logits[0, -1]


@pytest.fixture(scope="module")
def real_look(real_lm):
    return FirstLook(real_lm.source.location, real_lm.spec)


def _save(tmp_path: Path, lm) -> Path:
    """A converted-cache-shaped folder for ``lm`` (config, weights, the real tokenizer.json)."""
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_real_model_logits_and_tokens_equal_the_librarys(real_lm, real_look):
    for text in PROMPTS:
        ids = real_look.encode(text)
        assert ids == real_lm.encode(text), text
        assert torch.allclose(real_look.next_token_logits(ids), _library_logits(real_lm, ids), atol=1e-4), text
    assert real_look.vocab_size == real_lm.vocab_size
    assert real_look._special_ids == real_lm._special_ids
    sample = [*range(0, real_lm.vocab_size, 97), *sorted(real_lm._special_ids)]
    assert real_look.token_texts(sample) == real_lm.token_texts(sample)


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_random_models_equal_the_librarys(tmp_path, real_lm, tied):
    """Grouped-query attention (4 query heads, 2 key/value heads) and an untied output layer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.lm import LanguageModel

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(real_lm.tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=tied, rope_theta=5000.0)
    lm = LanguageModel(LlamaForCausalLM(config).eval(), real_lm.tokenizer, spec=TINY_SPEC)
    look = FirstLook(_save(tmp_path, lm), TINY_SPEC)
    for text in PROMPTS[:3]:
        ids = look.encode(text)
        assert torch.allclose(look.next_token_logits(ids), _library_logits(lm, ids), atol=1e-5), text
    with pytest.raises(ValueError, match="token ids"):
        look.next_token_logits([])
    with pytest.raises(ValueError, match="token ids"):
        look.next_token_logits([1] * 129)


def test_only_plain_llama_with_default_rotary_positions_is_read(tmp_path, tiny_lm):
    folder = _save(tmp_path, tiny_lm)
    config = json.loads((folder / "config.json").read_text())
    assert supports(config)
    assert not supports({**config, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}})
    assert not supports({**config, "model_type": "qwen2"})
    assert not supports({**config, "attention_bias": True})
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="plain llama"):
        FirstLook(folder, TINY_SPEC)


def test_the_loader_publishes_the_look_then_builds_the_model_on_its_tensors(real_lm):
    """A load on the warm cache hands its first look to the progress hook before the model exists, withdraws it at
    the end, and the model's parameters are the look's memory-mapped tensors (no second copy of the weights)."""
    seen = []

    class Hook:
        def __call__(self, fraction, message):
            pass

        def first_look(self, look):
            seen.append(look)

    lm = load_pretrained(progress=Hook())
    look = seen[0]
    assert isinstance(look, FirstLook) and seen[1:] == [None]
    ptrs = {t.data_ptr() for t in look.params.values()}
    assert all(p.data_ptr() in ptrs for p in lm.model.parameters())
    ids = lm.encode("The capital of France is")
    assert torch.equal(lm.next_token_logits(ids), real_lm.next_token_logits(ids))
    assert lm.model.generation_config.eos_token_id == real_lm.model.generation_config.eos_token_id


def test_a_load_job_offers_the_first_look_only_while_it_runs(real_lm):
    import threading

    release = threading.Event()

    def loader(key, progress):
        progress.first_look(FirstLook(real_lm.source.location, real_lm.spec))
        release.wait(30)
        progress.first_look(None)
        return real_lm

    job = ModelLoads(loader).start(DEFAULT_KEY)
    for _ in range(300):
        if job.first_look is not None:
            break
        job.wait(0.05)
    assert job.first_look is not None and not job.done
    release.set()
    assert job.model(30) is real_lm and job.first_look is None


def test_a_warm_start_predicts_before_transformers_is_imported(real_lm, tmp_path):
    """The point of it, in a fresh process (as a server starts): the first look's prediction is ' Paris' while the
    load has not imported transformers yet."""
    # LoadJob hands its loader a progress object whose first_look() sets job.first_look: spy on it, in the loading
    # thread, before the load goes on to import transformers.
    code = (
        "import json, sys\n"
        "import engine.loader as L\n"
        "out = {}\n"
        "publish = L._JobProgress.first_look\n"
        "def spy(self, look):\n"
        "    if look is not None and 'look' not in out:\n"
        "        ids = look.encode('The capital of France is')\n"
        "        out['look'] = look.token_text(int(look.next_token_logits(ids).argmax()))\n"
        "        out['transformers'] = any(m.startswith('transformers') for m in sys.modules)\n"
        "    publish(self, look)\n"
        "L._JobProgress.first_look = spy\n"
        "job = L.ModelLoads().start(None)\n"
        "lm = job.model(300)\n"
        "out['model'] = lm.token_text(int(lm.next_token_logits(lm.encode('The capital of France is')).argmax()))\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMX_CACHE_DIR": str(Path(real_lm.source.location).parent)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"look": " Paris", "transformers": False, "model": " Paris"}
