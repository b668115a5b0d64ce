"""The fast GGUF reader (engine/gguf_convert.py) against the library's own conversion of the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine import gguf_convert, loader
from engine.registry import choose_key, get_spec


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    path = loader.find_embedded_gguf(get_spec(choose_key(None)))
    if path is None:
        pytest.fail("the embedded model package is not installed (make setup)")
    return path


def _llama_cpp_permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's ``convert_hf_to_gguf.py`` LlamaModel.permute, which the fast reader must undo."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.mark.parametrize("heads", [9, 3, 1])
def test_unpermute_undoes_llama_cpps_rotary_row_order(heads):
    w = torch.randn(heads * 64, 40)
    assert torch.equal(gguf_convert._unpermute(_llama_cpp_permute(w, heads), heads), w)
    assert not torch.equal(_llama_cpp_permute(w, heads), w)  # the permutation is not the identity


def test_gguf_names_map_to_the_llama_modules():
    assert gguf_convert.hf_name("blk.12.attn_q.weight") == "model.layers.12.self_attn.q_proj.weight"
    assert gguf_convert.hf_name("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    assert gguf_convert.hf_name("output_norm.weight") == "model.norm.weight"
    assert gguf_convert.hf_name("output.weight") == "lm_head.weight"
    assert gguf_convert.hf_name("token_embd.weight") == "model.embed_tokens.weight"


def _read_cache(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.suffix in (".json", ".jinja")}
    return {"tensors": load_file(folder / "model.safetensors"), "files": files}


def test_the_fast_conversion_writes_the_librarys_cache_bit_for_bit(gguf_path, tmp_path, monkeypatch):
    """First start: the cache written from the fast reader equals the one the library's GGUF path writes: every
    tensor bit-equal, the same config, generation config, tokenizer and chat template. (Before the fast reader,
    the library's path took 44 s of a first start on a 2-core machine.)"""
    fast_dir, slow_dir = tmp_path / "fast", tmp_path / "slow"
    model, tokenizer = loader._convert_gguf(gguf_path, fast_dir, lambda *_: None)
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    monkeypatch.setattr(loader, "_read_gguf_fast", lambda _gguf: None)  # the library's path
    slow_model, slow_tokenizer = loader._convert_gguf(gguf_path, slow_dir, lambda *_: None)

    fast, slow = _read_cache(fast_dir), _read_cache(slow_dir)
    assert fast["tensors"].keys() == slow["tensors"].keys()
    unequal = [k for k in slow["tensors"] if not torch.equal(fast["tensors"][k], slow["tensors"][k])]
    assert not unequal
    assert fast["files"].keys() == slow["files"].keys() >= {"config.json", "tokenizer.json", "generation_config.json"}
    for name in slow["files"]:
        if name.endswith(".json"):
            assert json.loads(fast["files"][name]) == json.loads(slow["files"][name]), name
        else:
            assert fast["files"][name] == slow["files"][name], name
    # The models in memory (the first start uses them without reading the cache back) agree too.
    for (name, a), (_, b) in zip(model.state_dict().items(), slow_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for text in ["The capital of France is", "naïve café 🤖 <b>&amp;</b>\n\tdef f(x): return x**2", ""]:
        assert tokenizer.encode(text) == slow_tokenizer.encode(text)


def test_another_architecture_is_left_to_the_library(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "tiny-gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_convert.read_llama_gguf(path) is None


def test_a_file_the_fast_reader_cannot_read_falls_back_without_an_error(tmp_path, caplog):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 40)
    assert loader._read_gguf_fast(broken) is None
    assert "using the library's path" in caplog.text
