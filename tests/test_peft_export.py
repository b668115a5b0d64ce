"""The exported adapter round-trips through the `peft` library: same logits as the app (max abs difference asserted).

PEFT (a test dependency, pinned in requirements-dev.txt) loads ``adapter_config.json`` + ``adapter_model.safetensors``
onto the same base weights; its logits must match :func:`engine.training.adapted_logits` (the app's
``functional_call`` with ``W + B @ A``) and the fast training tail.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile

import pytest
import torch

from engine import datasets as D
from engine import training as tr

peft = pytest.importorskip("peft")

#: Largest |difference| accepted between PEFT's logits and the app's (float32, same weights, different op order).
TOL_TINY = 1e-5
TOL_REAL = 1e-3


def _write(tmp_path, lm, adapter):
    folder = tmp_path / "adapter"
    folder.mkdir()
    for name, data in tr.peft_files(lm, adapter).items():
        (folder / name).write_bytes(data)
    return folder


def _trained_tiny_adapter(tiny_lm):
    prep = D.prepare(tiny_lm, "builtin:room12_qa", b"")
    adapter = tr.new_adapter(tiny_lm, rank=4, layers=2, seed=3)
    settings = tr.FineTuneSettings(steps=8, lr=0.05, rank=4, layers=2)
    list(tr.train_on_dataset(tiny_lm, adapter, prep.train, prep.val, settings))
    assert any(float(b.abs().max()) > 0 for b in adapter.b.values())  # it did train
    return adapter


def test_peft_loads_the_exported_adapter_with_the_same_logits_tiny(tiny_lm, tmp_path):
    from transformers import AutoModelForCausalLM

    adapter = _trained_tiny_adapter(tiny_lm)
    base_dir = tmp_path / "base"
    tiny_lm.model.save_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager")
    model = peft.PeftModel.from_pretrained(base, str(_write(tmp_path, tiny_lm, adapter)))
    model.eval()
    # PEFT's own names, rank, scale and layers.
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 4 and cfg["target_modules"] == ["down_proj"]
    assert cfg["layers_to_transform"] == [0, 1]
    lora_layers = [n for n, _ in model.named_modules() if n.endswith("down_proj.lora_A.default")]
    assert len(lora_layers) == 2
    ids = tiny_lm.encode("What is our class mascot? A purple owl.")
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).logits[0]
    ours = tr.adapted_logits(tiny_lm, adapter, ids)
    diff = float((theirs - ours).abs().max())
    print(f"tiny model: max |PEFT − app| = {diff:.2e}")
    assert diff < TOL_TINY
    original = tiny_lm.forward(ids).logits
    assert float((theirs - original).abs().max()) > 100 * TOL_TINY  # the adapter changes the output


def test_training_tail_equals_the_full_model(tiny_lm):
    adapter = _trained_tiny_adapter(tiny_lm)
    ex = D.tokenize_example(tiny_lm, D.Example(1, "Who teaches Room 12?", "Ms. Rivera."), "chat")
    tail = tr.FrozenTail(tiny_lm, 0)
    (prefix,) = tail.prefix([ex])
    with torch.no_grad():
        fast = tail.logits(prefix.unsqueeze(0), adapter)[0]
    full = tr.adapted_logits(tiny_lm, adapter, ex.ids)
    assert float((fast - full).abs().max()) < 1e-4


def test_zip_holds_the_two_peft_files(tiny_lm):
    adapter = tr.new_adapter(tiny_lm, rank=2, layers=1)
    z = zipfile.ZipFile(io.BytesIO(tr.peft_zip(tiny_lm, adapter)))
    assert sorted(z.namelist()) == ["llm-explainer-adapter/adapter_config.json",
                                    "llm-explainer-adapter/adapter_model.safetensors"]
    from safetensors.torch import load

    tensors = load(z.read("llm-explainer-adapter/adapter_model.safetensors"))
    assert sorted(tensors) == ["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
                               "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]
    assert tensors["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].shape == (2, 128)


def test_peft_matches_the_app_on_the_real_model(real_lm, tmp_path):
    """The real model: a copy of the shared weights (PEFT wraps modules in place; the shared model is never given to
    it), an adapter with non-zero B on the last 4 layers."""
    fingerprint = tr.weights_fingerprint(real_lm)
    adapter = tr.new_adapter(real_lm, rank=4, layers=4, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n in adapter.names:
            adapter.b[n].copy_(torch.randn(adapter.b[n].shape, generator=gen) * 0.02)
    base = copy.deepcopy(real_lm.model)
    model = peft.PeftModel.from_pretrained(base, str(_write(tmp_path, real_lm, adapter)))
    model.eval()
    ids = real_lm.encode(real_lm.chat_prompt([{"role": "user", "content": "What is our class mascot?"}]))
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).logits[0]
    ours = tr.adapted_logits(real_lm, adapter, ids)
    diff = float((theirs - ours).abs().max())
    print(f"real model: max |PEFT − app| = {diff:.2e}")
    assert diff < TOL_REAL
    assert float((ours - real_lm.forward(ids).logits).abs().max()) > 100 * TOL_REAL
    del model, base
    assert tr.weights_fingerprint(real_lm) == fingerprint
