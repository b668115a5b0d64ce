"""Tables for ``st.dataframe`` and CSV downloads: plain values in, a ``pandas.DataFrame`` out."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from engine import tokens as tok
from engine.evaluation import BleuResult


def tokens_table(pieces: Sequence[tok.TokenPiece]) -> pd.DataFrame:
    """One row per token: position, id, text, vocabulary entry, bytes, kind."""
    return pd.DataFrame(
        {
            "position": [p.index for p in pieces],
            "id": [p.token_id for p in pieces],
            "text": [p.text for p in pieces],
            "vocabulary entry": [p.raw for p in pieces],
            "bytes": [p.n_bytes for p in pieces],
            "kind": ["control" if p.special else ("byte piece" if p.partial else "text") for p in pieces],
        }
    )


def ngram_table(result: BleuResult) -> pd.DataFrame:
    """Per n: matched / total n-grams, raw precision, and which n-grams matched."""
    rows = []
    for n in range(1, 5):
        matched, total = result.counts[n - 1], result.totals[n - 1]
        grams = ", ".join(f"“{g}”" + (f" ×{c}" if c > 1 else "") for g, c in result.matched.get(n, []))
        rows.append(
            {
                "n": n,
                "matched": matched,
                "in candidate": total,
                "precision": (matched / total) if total else float("nan"),
                "matched n-grams": grams or "(none)",
            }
        )
    return pd.DataFrame(rows)


def vector_table(m: torch.Tensor, index: Sequence[str], show_dims: int = 6) -> pd.DataFrame:
    """``[T, d]`` vectors, one row per token: the first ``show_dims`` numbers (3 decimals) and how many more."""
    df = pd.DataFrame(m[:, :show_dims].double().numpy().round(3), index=list(index),
                      columns=[f"dim {i}" for i in range(show_dims)])
    df[f"… ({m.shape[-1] - show_dims} more)"] = "…"
    return df


def matrix_table(m: torch.Tensor, index: Sequence[str], decimals: int = 3) -> pd.DataFrame:
    """A ``[T, T]`` matrix with the tokens as row and column labels."""
    return pd.DataFrame(m.double().numpy().round(decimals), index=list(index), columns=list(index))
