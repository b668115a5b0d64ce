"""The logit lens: what the model would predict if it stopped after layer k.

The residual stream after layer k is pushed through the model's own final RMSNorm and output layer (the unembedding),
exactly as the real last layer's output is. The HF llama model returns its last hidden state already normed, so the
final row equals the model's own prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.lm import LanguageModel


@dataclass
class LensResult:
    """Top predictions of every layer at a window of positions.

    Attributes:
        positions: The ``P`` token positions read (the last ones of the text).
        tokens: Readable text of the token at each of those positions (the input the prediction follows).
        layer_labels: ``L+1`` row names: "embeddings", "after layer 0", … "after layer L-1" (0-based, as in the attention views).
        top_ids: ``[L+1, P, k]`` most likely next-token ids per layer and position.
        top_probs: ``[L+1, P, k]`` their probabilities (full-vocabulary softmax).
        final_ids: ``[P]`` the model's own top prediction at each position (last row of ``top_ids``).
        final_probs: ``[L+1, P]`` probability each layer gives to that final prediction (float64: early layers give
            it values far below float32's range).
        final_ranks: ``[L+1, P]`` its rank (1 = top) at each layer.
    """

    positions: list[int]
    tokens: list[str]
    layer_labels: list[str]
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    final_ids: torch.Tensor
    final_probs: torch.Tensor
    final_ranks: torch.Tensor

    def first_top_row(self, position_index: int = -1) -> int:
        """First row (0 = embeddings) from which the final answer is the top guess at every later row too."""
        on_top = (self.final_ranks[:, position_index] == 1).tolist()  # [L+1]
        row = len(on_top) - 1  # the last row is the model's own answer: always on top
        while row > 0 and on_top[row - 1]:
            row -= 1
        return row

    def records(self, token_text) -> list[dict]:
        """One row per (layer, position): the top guess, its probability and the final answer's probability and rank.

        Args:
            token_text: ``id → readable text`` (e.g. ``LanguageModel.token_text``).
        """
        return [
            {"layer": self.layer_labels[r], "position": p, "input token": self.tokens[c],
             "top guess": token_text(int(self.top_ids[r, c, 0])), "p(top guess)": round(float(self.top_probs[r, c, 0]), 6),
             "p(final answer)": float(self.final_probs[r, c]), "rank of final answer": int(self.final_ranks[r, c])}
            for r in range(len(self.layer_labels)) for c, p in enumerate(self.positions)
        ]


@torch.inference_mode()
def _layer_logits(lm: LanguageModel, h: torch.Tensor, already_normed: bool) -> torch.Tensor:
    """``[P, V]`` logits of the output layer for residual vectors ``h`` ``[P, D]`` (final RMSNorm first unless the
    model already applied it, as HF llama does to its last hidden state)."""
    # The shared modules are called directly here: hold the model so no other session's hooks or swapped weights
    # (run_attention, the fine-tuning functional calls) are on them meanwhile, and none of ours reach theirs.
    with lm.exclusive():
        h = h if already_normed else lm.model.model.norm(h)
        return lm.model.lm_head(h).float()


def logit_lens(
    lm: LanguageModel,
    ids: Sequence[int] | None = None,
    hidden_states: torch.Tensor | None = None,
    last_positions: int = 16,
    k: int = 5,
) -> LensResult:
    """Run the logit lens over the last ``last_positions`` tokens.

    Args:
        lm: The model.
        ids: Token ids (used for the tokens, and for a forward pass when ``hidden_states`` is not given).
        hidden_states: ``[L+1, T, D]`` from an earlier forward over ``ids`` (saves a forward).
        last_positions: How many of the last positions to read (each costs L+1 full-vocabulary products).
        k: How many top tokens to keep per cell.

    Raises:
        ValueError: If there are no tokens.
    """
    ids = [int(i) for i in (ids or [])]
    if hidden_states is None:
        if not ids:
            raise ValueError("Nothing to read: the text has no tokens.")
        hidden_states = lm.forward(ids, hidden_states=True).hidden_states
    T = hidden_states.shape[1]
    start = max(0, T - max(1, int(last_positions)))
    positions = list(range(start, T))
    hs = hidden_states[:, start:].float()  # [L+1, P, D]
    # One layer at a time keeps memory at P×V floats instead of (L+1)×P×V.
    n_rows = hs.shape[0]
    final_ids = _layer_logits(lm, hs[-1], already_normed=True).argmax(-1)  # [P] the model's own top prediction
    top_ids, top_probs = [], []
    final_probs = torch.empty(n_rows, len(positions), dtype=torch.float64)
    final_ranks = torch.empty(n_rows, len(positions), dtype=torch.long)
    for layer in range(n_rows):
        logits = _layer_logits(lm, hs[layer], already_normed=layer == n_rows - 1)  # [P, V]
        probs = torch.softmax(logits.double(), dim=-1)  # [P, V] over the full vocabulary
        p, i = probs.topk(k, dim=-1)  # [P, k]
        top_ids.append(i)
        top_probs.append(p.float())
        chosen = probs.gather(-1, final_ids[:, None])  # [P, 1]
        final_probs[layer] = chosen[:, 0]
        final_ranks[layer] = (probs > chosen).sum(-1) + 1
    L = hs.shape[0] - 1
    return LensResult(
        positions=positions,
        tokens=lm.token_texts(ids[start:T]) if len(ids) >= T else [str(p) for p in positions],
        layer_labels=["embeddings"] + [f"after layer {i}" for i in range(L)],
        top_ids=torch.stack(top_ids),
        top_probs=torch.stack(top_probs),
        final_ids=final_ids,
        final_probs=final_probs,
        final_ranks=final_ranks,
    )
