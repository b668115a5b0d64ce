"""The encoder-decoder trained on this CPU: seeded and reproducible, correct on held-out dates, and its three kinds of
attention."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from engine import seq2seq as s2s
from engine.encoder import future_mass

#: The accuracy the page states for the default run, on dates never seen in training.
MIN_HELD_OUT_ACCURACY = 0.95


@pytest.fixture(scope="module")
def trained():
    return s2s.train(s2s.TrainConfig())


def test_data_split_and_inputs():
    train, held = s2s.split_dates(0, 500)
    assert len(held) == 500 and not set(train) & set(held) and len(train) + 500 == len(s2s.all_dates())
    assert s2s.spoken(dt.date(2024, 5, 3)) == "3 May 2024"
    assert s2s.expected_output("3 May 2024") == "2024-05-03"
    assert s2s.expected_output("31 February 2024") is None and s2s.expected_output("May 3 2024") is None
    assert s2s.encode_source("3 May 2024")[-1] == s2s.EOS
    for bad, msg in (("", "empty"), ("😀 May", "no token"), ("<b>", "no token"), ("1" * 40, "at most")):
        with pytest.raises(ValueError, match=msg):
            s2s.encode_source(bad)


def test_training_is_seeded_and_reproducible():
    cfg = s2s.TrainConfig(steps=4, batch=8, held_out=20)
    a, b = s2s.train(cfg), s2s.train(cfg)
    assert a.losses == b.losses
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    c = s2s.train(s2s.TrainConfig(steps=4, batch=8, held_out=20, seed=1))
    assert c.losses != a.losses
    seen = []
    s2s.train(s2s.TrainConfig(steps=3, batch=4, held_out=10), report=lambda s, n, v: seen.append((s, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_trained_model_solves_held_out_dates(trained):
    assert trained.losses[-1] < trained.losses[0] / 20
    assert trained.accuracy >= MIN_HELD_OUT_ACCURACY
    _, held = s2s.split_dates(0, 500)
    assert trained.held_out == [s2s.spoken(d) for d in held]
    assert s2s.evaluate(trained, held[:100]) >= MIN_HELD_OUT_ACCURACY
    assert trained.parameters < 1_000_000


def test_translation_exposes_three_attentions(trained):
    tr = s2s.translate(trained, "3 May 2024")
    assert tr.output == "2024-05-03"
    S, T = len(tr.src_tokens), len(tr.tgt_tokens)
    assert (S, T) == (11, 11) and tr.src_tokens[-1] == "</s>" and tr.tgt_tokens[0] == "<s>"
    assert tr.chosen == [*"2024-05-03", "</s>"]
    L, H = trained.config.layers, trained.config.heads
    assert tr.encoder.shape == (L, H, S, S) and tr.decoder.shape == (L, H, T, T) and tr.cross.shape == (L, H, T, S)
    for att in (tr.encoder, tr.decoder, tr.cross):
        assert torch.allclose(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-5)
    assert future_mass(tr.decoder) == 0.0 and future_mass(tr.encoder) > 0.05
    # Cross-attention finds the year: the rows writing the year's digits look mostly at the input's year.
    year_cols = slice(S - 5, S - 1)  # "2024" before </s>
    assert float(tr.cross[:, :, :4, year_cols].sum(-1).mean()) > 0.5
    assert all(0 < p <= 1 for p in tr.probs)
