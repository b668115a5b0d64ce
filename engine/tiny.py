"""A tiny, randomly initialised llama model for fast engine tests and offline demos of the code paths.

It has the real model's shape *kind* (llama, grouped-query attention, tied embeddings, rotary positions) but only a
few layers and a narrow hidden size, so a forward takes milliseconds. Its predictions are noise by design.
"""

from __future__ import annotations

from engine.lm import LanguageModel
from engine.registry import ModelSpec

TINY_SPEC = ModelSpec(key="tiny-random", label="Tiny random llama (tests only)", hub_id="", params_label="tiny")


def build_tiny_lm(tokenizer, layers: int = 2, heads: int = 4, kv_heads: int = 2, hidden: int = 64, seed: int = 0):
    """Build a random llama sized for tests that uses ``tokenizer`` (its vocabulary size sets the output layer).

    Args:
        tokenizer: A Hugging Face tokenizer (usually the real model's, so token ids mean the same thing).
        layers: Number of decoder layers.
        heads: Query heads.
        kv_heads: Key/value heads (grouped-query attention when smaller than ``heads``).
        hidden: Hidden size (``heads`` must divide it).
        seed: Seed for the random initialisation, so tests are deterministic.

    Returns:
        A :class:`engine.lm.LanguageModel` wrapping the random model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    return LanguageModel(model, tokenizer, spec=TINY_SPEC)
