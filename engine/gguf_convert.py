"""The embedded llama GGUF read into a transformers model and tokenizer in seconds, for the first start.

Why: transformers 5.24 reads a llama GGUF through its legacy path. The ``gguf`` package's reader walks the ~100,000
vocabulary and merge strings through numpy memory-map views, and the path does that three times (the tokenizer's
config, the model's config, the weights) before dequantizing with numpy: 44 s of a first start on a 2-core AMD EPYC,
most of the 52 s to the first prediction. transformers' newer GGUF code (``transformers.integrations.gguf``: a
``struct`` reader and torch dequantization) does not cover llama yet, but its pieces do the work here:

- the metadata and the tensors come from its reader (one pass over the file; tensors stay memory-mapped);
- the values come from its dequantizer (Q4_1, Q8_0, ... in torch);
- the config keys come from the legacy path's own mapping (``GGUF_CONFIG_MAPPING``);
- the tokenizer comes from its GGUF tokenizer builder, as the legacy path builds it.

What the legacy path does for llama beyond renaming is one permutation, undone in :func:`_unpermute`: llama.cpp
stores the query and key rows of each head interleaved for its rotary layout.

The result is checked against the library's own conversion (``tests/test_engine_gguf_convert.py``): every tensor
bit-equal, the same config and the same tokenizer. Another architecture returns None from :func:`read_llama_gguf`
and the caller uses the library's path; so does any error.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

#: GGUF tensor names -> transformers' llama names (the same table as the library's ``DENSE_DECODER_RENAMINGS``, plus
#: the norms, which that table leaves to each architecture).
_RENAMES = (
    (r"^token_embd\.", "model.embed_tokens."),
    (r"^output_norm\.", "model.norm."),
    (r"^output\.", "lm_head."),
    (r"^blk\.", "model.layers."),
    (r"\.attn_norm\.", ".input_layernorm."),
    (r"\.ffn_norm\.", ".post_attention_layernorm."),
    (r"\.attn_q\.", ".self_attn.q_proj."),
    (r"\.attn_k\.", ".self_attn.k_proj."),
    (r"\.attn_v\.", ".self_attn.v_proj."),
    (r"\.attn_output\.", ".self_attn.o_proj."),
    (r"\.ffn_gate\.", ".mlp.gate_proj."),
    (r"\.ffn_up\.", ".mlp.up_proj."),
    (r"\.ffn_down\.", ".mlp.down_proj."),
)
_LLAMA_PARTS = frozenset(
    "token_embd output_norm output attn_norm ffn_norm attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down".split()
)


def hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    for pattern, replacement in _RENAMES:
        gguf_name = re.sub(pattern, replacement, gguf_name)
    return gguf_name


def _unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo llama.cpp's rotary row order for one q or k matrix ([heads·hd, D] -> the same shape).

    llama.cpp's converter stores each head's rows as pairs (i, i + hd/2) side by side; transformers' llama rotates the
    two halves of a head. So per head: [hd/2, 2, D] -> [2, hd/2, D].
    """
    half = w.shape[0] // heads // 2
    return w.reshape(heads, half, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def config_dict(metadata: dict, tensor_names: tuple[str, ...]) -> dict:
    """The config the library's legacy path derives from a llama file's metadata (keys renamed, nothing else)."""
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    arch = metadata["general.architecture"]
    config: dict = {"tie_word_embeddings": "output.weight" not in tensor_names}
    for key, value in GGUF_CONFIG_DEFAULTS_MAPPING.get(arch, {}).items():
        config.setdefault(key, value)
    for key, value in metadata.items():
        prefix, _, rest = key.partition(".")
        renamed = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if renamed not in (None, -1):
            config[renamed] = value
    if "vocab_size" not in config and isinstance(metadata.get("tokenizer.ggml.tokens"), int):
        config["vocab_size"] = metadata["tokenizer.ggml.tokens"]  # the reader gives an unread string array's length
    return config


def read_llama_gguf(path: str | Path):
    """``(config, state_dict)`` of a llama GGUF: float32 tensors under transformers' names, or None for another
    architecture or a tensor this module does not place.

    Args:
        path: The ``.gguf`` file.
    """
    from transformers import AutoConfig
    from transformers.integrations.gguf.dequant import GGML_BLOCK, dequantize
    from transformers.integrations.gguf.reader import GgufHeader, load_gguf_state_dict, read_gguf_metadata

    metadata, names = read_gguf_metadata(str(path))
    if metadata.get("general.architecture") != "llama":
        return None
    if any(name.split(".")[-2] not in _LLAMA_PARTS for name in names):  # an extra tensor kind: the library knows
        return None
    config = AutoConfig.for_model(**config_dict(metadata, names))
    header = GgufHeader.from_file(str(path))
    lazy = load_gguf_state_dict(header)
    state = {}
    for info in header.tensors:
        raw = lazy[info.name][()]  # a copy of this tensor's bytes (or values, for a float type)
        if info.ggml_type in GGML_BLOCK:
            values = dequantize(raw.reshape(-1), info.ggml_type).reshape(info.shape)
        else:
            values = raw.reshape(info.shape).float()
        if ".attn_q." in info.name:
            values = _unpermute(values, config.num_attention_heads)
        elif ".attn_k." in info.name:
            values = _unpermute(values, config.num_key_value_heads)
        state[hf_name(info.name)] = values.contiguous()
    return config, state


def read_tokenizer(path: str | Path):
    """The tokenizer the library builds from a GGUF (``TokenizersBackend``: its GGUF tokenizer builder), without the
    legacy config pass ``AutoTokenizer`` makes first."""
    from transformers import TokenizersBackend

    path = Path(path)
    return TokenizersBackend.from_pretrained(str(path.parent), gguf_file=path.name)
