"""Tiny random stand-ins for the post's hub models (GPT-2, BERT with its masked-LM head, T5), written to folders with
``save_pretrained`` so tests load them through :func:`engine.hub_models.load_hub_model`, the hub models' own path.

Their outputs are noise by design; only the wiring (architecture, head, task, tokenizer round trip) is real.
"""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "Once upon a time a small robot learned to read.", "The capital of France is Paris.",
    "translate English to German: The house is wonderful.", "summarize: the cat sat on the mat all day long.",
] * 4


def _bpe(specials: dict[str, str]):
    """A small byte-level BPE tokenizer trained on :data:`TEXTS` (GPT-2's kind), with ``specials`` role → text."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    raw = ByteLevelBPETokenizer()
    raw.train_from_iterator(TEXTS, vocab_size=400, min_frequency=1, special_tokens=list(specials.values()),
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, **specials)


def _wordpiece():
    """The shipped all-MiniLM-L6-v2 WordPiece tokenizer (BERT's, uncased, with [MASK]), read offline."""
    from transformers import AutoTokenizer

    from engine.encoder import find_encoder_dir
    from engine.registry import get_encoder_spec

    return AutoTokenizer.from_pretrained(str(find_encoder_dir(get_encoder_spec())), local_files_only=True)


def build_tiny_hub_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write a tiny GPT-2, BERT (masked LM) and T5 under ``root``; returns hub key → folder."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(seed)
    out: dict[str, Path] = {}

    tok = _bpe({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    out["gpt2"] = root / "gpt2"

    folders = [(out["gpt2"], model, tok)]
    wp = _wordpiece()
    bert = BertForMaskedLM(BertConfig(vocab_size=len(wp), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=256))
    out["bert-base-uncased"] = root / "bert"
    folders.append((out["bert-base-uncased"], bert, wp))

    t5_tok = _bpe({"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    t5 = T5ForConditionalGeneration(T5Config(
        vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
        pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id,
        decoder_start_token_id=t5_tok.pad_token_id))
    out["flan-t5-small"] = root / "t5"
    folders.append((out["flan-t5-small"], t5, t5_tok))

    for folder, m, t in folders:
        m.save_pretrained(folder)
        t.save_pretrained(folder)
    return out
