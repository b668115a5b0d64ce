"""The model's first predictions while the transformers library is still importing.

Why: on a warm start, importing transformers and its llama code takes ~2.5 s of the ~4 s load, and the home page's
first live prediction waited for it. The converted cache holds everything a next-token prediction needs: the float32
weights (``model.safetensors``, memory-mapped here in milliseconds), the tokenizer (``tokenizer.json``, read by the
``tokenizers`` library that transformers itself wraps) and the architecture (``config.json``). This module reads
them with PyTorch alone and runs the llama forward pass in ~30 lines. The loader then builds the transformers model
on the *same* tensors (no second copy) and every page uses that from then on. (``engine.fastgen``'s float32 loop
computes the same thing but fuses q/k/v and gate/up into new matrices: a copy of most of the weights.)

The numbers are the model's own: the same float32 weights through the same arithmetic (``tests/test_engine_first_look.py``
checks the logits against the library's forward and the token ids against its tokenizer). Only plain llama blocks
with the default rotary positions are read this way; any other model waits for the library as before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.fastgen import _rms, _rotate
from engine.lm import TokenTexts
from engine.registry import ModelSpec


def supports(config: dict) -> bool:
    """Whether :func:`logits` reproduces the model described by ``config`` (a parsed ``config.json``)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (
        config.get("model_type") == "llama"
        and config.get("hidden_act", "silu") == "silu"
        and not config.get("attention_bias", False)
        and not config.get("mlp_bias", False)
        and rope.get("rope_type", rope.get("type", "default")) == "default"
        and (config.get("rope_theta") or rope.get("rope_theta")) is not None
    )


class FirstLook(TokenTexts):
    """Tokenizer, config and float32 weights of a converted cache folder, with :meth:`next_token_logits`.

    It offers the part of :class:`engine.lm.LanguageModel` that a next-token prediction uses (``key``,
    ``vocab_size``, ``encode``, ``token_text``, ``next_token_logits``), so the engine's own
    :func:`engine.lm.checked_ids` and :func:`engine.predict.distribution` take it as they are.

    Args:
        folder: The cache folder (``config.json``, ``tokenizer.json``, ``model.safetensors``).
        spec: The allow-list entry it belongs to.

    Raises:
        ValueError: If the architecture is not one :func:`logits` reproduces.
    """

    def __init__(self, folder: str | Path, spec: ModelSpec) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if not supports(self.config):
            raise ValueError(f"{self.config.get('model_type')!r} is not a plain llama model")
        self.spec = spec
        #: name → tensor, memory-mapped from the file (read lazily; the transformers model is built on these).
        self.params = load_file(str(folder / "model.safetensors"))
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok_lock = threading.Lock()
        # The control tokens: every added token marked special (the same set the transformers tokenizer reports).
        self._special_ids = frozenset(int(i) for i, t in self._tok.get_added_tokens_decoder().items() if t.special)
        cfg = self.config
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.n_heads
        self.n_layers = cfg["num_hidden_layers"]
        self.context_length = cfg["max_position_embeddings"]
        self.eps = cfg["rms_norm_eps"]
        self.theta = float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or cfg.get("rope_scaling"))["rope_theta"])
        p = self.params
        # Tied models store the one matrix once, under either name (the converted cache keeps ``lm_head.weight``).
        embed = p.get("model.embed_tokens.weight", p.get("lm_head.weight"))  # [V, D]
        tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in p
        names = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
        layers = [[p[f"model.layers.{i}.{n}.weight"] for n in names] for i in range(self.n_layers)]
        self._weights = (embed, embed if tied else p["lm_head.weight"], p["model.norm.weight"], layers)
        # One short pass now, in the loading thread: it reads every weight into memory (the file is mapped lazily)
        # and lets TorchScript settle, so a learner's first prediction does not pay for either (measured at a server
        # start: 0.58 s → 0.2 s for the home page's prompt).
        with torch.inference_mode():
            _logits(torch.tensor([0, 0]), *self._weights, self.n_heads, self.n_kv, self.head_dim, self.eps, self.theta)

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``, no special tokens added (as :meth:`engine.lm.LanguageModel.encode`)."""
        with self._tok_lock:
            return list(self._tok.encode(text, add_special_tokens=False).ids)

    def raw_token(self, token_id: int) -> str:
        with self._tok_lock:
            return self._tok.id_to_token(int(token_id))

    @torch.inference_mode()
    def next_token_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """``[V]`` float32 logits for the token after ``ids`` (non-empty, within the context window)."""
        ids = [int(i) for i in ids]
        if not ids or len(ids) > self.context_length:
            raise ValueError(f"needs 1 to {self.context_length} token ids, got {len(ids)}")
        return _logits(torch.tensor(ids), *self._weights, self.n_heads, self.n_kv, self.head_dim, self.eps, self.theta)


def _logits(
    ids: torch.Tensor,
    embed: torch.Tensor,
    head: torch.Tensor,
    final_norm: torch.Tensor,
    layers: list[list[torch.Tensor]],
    n_heads: int,
    n_kv: int,
    hd: int,
    eps: float,
    theta: float,
) -> torch.Tensor:
    """The llama forward for ``ids`` ([T]); returns the ``[V]`` logits after the last one. ``layers``: per layer the
    input norm, q, k, v, o, post-attention norm, gate, up and down weights ([out, in], as stored).

    Compiled with TorchScript below: at a server's start this runs while another thread imports transformers, and
    the interpreter then runs its ~500 tensor ops without taking Python's lock between them (op by op, each would
    wait for that thread: 0.5 s instead of 0.05 s, measured).
    """
    T = ids.shape[0]
    # Rotary positions, as the library's default llama rotary embedding computes them: [T, hd]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))  # [hd/2]
    freqs = torch.arange(T).float()[:, None] * inv_freq[None, :]  # [T, hd/2]
    angles = torch.cat((freqs, freqs), dim=-1)
    cos, sin = angles.cos(), angles.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)  # a token sees itself and the tokens before it
    x = embed[ids]  # [T, D]
    for w in layers:  # norm_in, q, k, v, o, norm_post, gate, up, down
        h = _rms(x, w[0], eps)
        q = F.linear(h, w[1]).view(T, n_heads, hd).transpose(0, 1)  # [H, T, hd]
        k = F.linear(h, w[2]).view(T, n_kv, hd).transpose(0, 1)  # [KV, T, hd]
        v = F.linear(h, w[3]).view(T, n_kv, hd).transpose(0, 1)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        k = k.repeat_interleave(n_heads // n_kv, 0)  # each key/value head serves H/KV query heads: [H, T, hd]
        v = v.repeat_interleave(n_heads // n_kv, 0)
        scores = torch.matmul(q, k.transpose(1, 2)) / (hd**0.5) + mask  # [H, T, T]
        heads = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(0, 1).reshape(T, n_heads * hd)  # [T, H·hd]
        x = x + F.linear(heads, w[4])
        h = _rms(x, w[5], eps)
        x = x + F.linear(F.silu(F.linear(h, w[6])) * F.linear(h, w[7]), w[8])
    last = _rms(x[-1:], final_norm, eps)  # [1, D]: the output layer for the last position only
    return F.linear(last, head)[0]  # [V]


try:
    _logits = torch.jit.script(_logits)
except Exception:  # noqa: BLE001 - TorchScript is an optimisation; the Python function computes the same thing
    pass
