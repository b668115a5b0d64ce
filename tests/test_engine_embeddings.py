"""engine.embeddings: shapes and maths on the tiny model, real behaviour (neighbours, analogies, context) on SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import embeddings as emb


# ------------------------------------------------------------------------------------------------ maths and shapes
def test_cosine_matrix_shape_and_values():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    sims = emb.cosine_matrix(x)
    assert sims.shape == (4, 4)
    assert torch.allclose(sims.diagonal(), torch.ones(4))
    assert torch.allclose(sims, sims.T)
    assert sims[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert sims[0, 2] == pytest.approx(2**-0.5, abs=1e-6)
    assert sims[0, 3] == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_pca_projection_shapes_and_variance(dims):
    torch.manual_seed(0)
    x = torch.randn(12, 50) * torch.linspace(5, 0.1, 50)  # strongly unequal spread per direction
    proj = emb.project(x, "pca", dims)
    assert proj.coords.shape == (12, dims)
    assert len(proj.explained) == dims
    assert proj.explained == sorted(proj.explained, reverse=True)
    assert 0 < sum(proj.explained) <= 1.0
    # PCA coordinates are centred and the first axis carries the most variance.
    assert np.allclose(proj.coords.mean(axis=0), 0, atol=1e-6)
    assert proj.coords[:, 0].var() >= proj.coords[:, 1].var()


def test_pca_pads_when_points_span_fewer_dimensions():
    proj = emb.project(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), "pca", 3)
    assert proj.coords.shape == (2, 3)
    assert proj.explained == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    assert np.allclose(proj.coords[:, 1:], 0)


def test_tsne_projection_shape_and_minimum():
    torch.manual_seed(0)
    proj = emb.project(torch.randn(8, 16), "tsne", 2)
    assert proj.coords.shape == (8, 2) and proj.explained is None
    with pytest.raises(ValueError, match="at least 5"):
        emb.project(torch.randn(4, 16), "tsne", 2)
    with pytest.raises(ValueError, match="at least 2"):
        emb.project(torch.randn(1, 16), "pca", 2)


def test_parse_words():
    assert emb.parse_words("") == ([], [])
    assert emb.parse_words(" , ,\n ") == ([], [])
    words, notes = emb.parse_words("king, queen\nking;  New   York ,")
    assert words == ["king", "queen", "New York"] and notes == []
    words, notes = emb.parse_words(",".join(f"w{i}" for i in range(50)), limit=40)
    assert len(words) == 40 and "first 40" in notes[0]


# ------------------------------------------------------------------------------------------------ tiny model
def test_word_vector_of_multi_token_word_is_mean_of_rows(tiny_lm):
    wv = emb.word_vector(tiny_lm, "unbelievably")
    assert wv.form == " unbelievably" and wv.n_tokens > 1
    table = emb.embedding_matrix(tiny_lm)
    assert torch.allclose(wv.vector, table[wv.ids].mean(dim=0))
    assert "".join(wv.pieces) == " unbelievably"
    assert wv.label == f"unbelievably ({wv.n_tokens} tokens)"
    single = emb.word_vector(tiny_lm, "king", leading_space=False)
    assert single.n_tokens == 1 and torch.equal(single.vector, table[single.ids[0]])
    with pytest.raises(ValueError):
        emb.word_vector(tiny_lm, "   ")


def test_nearest_tokens_excludes_and_sorts(tiny_lm):
    table = emb.embedding_matrix(tiny_lm)
    query = table[500].clone()
    top = emb.nearest_tokens(tiny_lm, query, k=5)
    assert top[0].token_id == 500 and top[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert [n.rank for n in top] == [1, 2, 3, 4, 5]
    assert all(a.cosine >= b.cosine for a, b in zip(top, top[1:]))
    without = emb.nearest_tokens(tiny_lm, query, k=5, exclude_ids=[500])
    assert 500 not in [n.token_id for n in without] and without[0].token_id == top[1].token_id
    assert len(emb.nearest_tokens(tiny_lm, query, k=1000)) == 100  # k is clamped
    specials = set(range(17))
    assert not specials & {n.token_id for n in emb.nearest_tokens(tiny_lm, table[1].clone(), k=20)}


def test_locate_word_positions(tiny_lm):
    ids, pos = emb.locate_word(tiny_lm, "She was unbelievably tired.", "unbelievably")
    assert len(pos) == 3 and tiny_lm.decode([ids[p] for p in pos]) == " unbelievably"
    ids, pos = emb.locate_word(tiny_lm, "The BANK was closed.", "bank")
    assert tiny_lm.decode([ids[p] for p in pos]) == " BANK"  # case-insensitive
    assert emb.locate_word(tiny_lm, "The banker smiled.", "bank")[1] == []  # whole words only
    assert emb.locate_word(tiny_lm, "Nothing here.", "bank")[1] == []


def test_contextual_shapes_on_tiny_model(tiny_lm):
    result = emb.contextual_vectors(
        tiny_lm, "bank", ["The river bank was muddy.", "Bank at the start is skipped."], ["My bank pays interest."]
    )
    layers = tiny_lm.info.layers + 1
    assert result.vectors.shape == (layers, 2, tiny_lm.info.hidden_size)
    assert result.sims.shape == (layers, 2, 2)
    assert [s for s, _ in result.skipped] == ["Bank at the start is skipped."]
    assert set(result.group_curves()) == {"across A and B"}  # one sentence per meaning: no within-pairs
    with pytest.raises(ValueError, match="At least two sentences"):
        emb.contextual_vectors(tiny_lm, "bank", ["No such word."], ["My bank pays."])


# ------------------------------------------------------------------------------------------------ real model
def test_real_embeddings_shape_and_tied(real_lm):
    table = emb.embedding_matrix(real_lm)
    assert tuple(table.shape) == (49152, 576)
    assert emb.is_tied(real_lm)


def test_real_neighbours_are_related_words(real_lm):
    wv = emb.word_vector(real_lm, "king")
    near = [n.text for n in emb.nearest_tokens(real_lm, wv.vector, 10, exclude_ids=wv.ids)]
    assert " queen" in near and " King" in near and " king" not in near


def test_real_analogy_good_and_poor(real_lm):
    good = emb.analogy(real_lm, "king", "man", "woman", expected="queen")
    assert good.neighbours[0].text == " queen"
    assert good.expected_rank == 1 and good.quality == "good"
    assert good.expected_rank_baseline > 1  # woman alone does not give queen: the arithmetic helped
    excluded = {"king", "man", "woman"}
    assert not excluded & {n.text.strip().lower() for n in good.neighbours}

    poor = emb.analogy(real_lm, "Paris", "France", "Italy", expected="Rome")
    assert poor.quality == "poor" and poor.expected_rank > 5
    assert "failed" in poor.verdict
    assert not {"paris", "france", "italy"} & {n.text.strip().lower() for n in poor.neighbours}


def test_real_contextual_bank_separates_by_meaning(real_lm):
    river = ["We sat on the bank of the river.", "The boat drifted toward the muddy bank."]
    money = ["I deposited my salary at the bank.", "The bank approved her loan."]
    result = emb.contextual_vectors(real_lm, "bank", river, money)
    assert result.layers == real_lm.info.layers + 1
    assert torch.allclose(result.sims[0], torch.ones(4, 4), atol=1e-5)  # layer 0: the same table row everywhere
    curves = result.group_curves()
    late = slice(10, result.layers)
    within = (curves["within A"][late] + curves["within B"][late]) / 2
    assert (within > curves["across A and B"][late]).all()


def test_contextual_skips_overlong_sentences(tiny_lm):
    long = "The " + "very " * 200 + "old bank."
    result = emb.contextual_vectors(tiny_lm, "bank", ["A river bank.", long], ["A bank loan."])
    assert [s.text for s in result.sentences] == ["A river bank.", "A bank loan."]
    assert result.skipped == [(long, f"longer than {emb.MAX_SENTENCE_TOKENS} tokens.")]


# ------------------------------------------------------------------------------------------------ page numbers, engine-side
def test_vector_summary_matches_numpy():
    v = torch.tensor([0.5, -3.0, 2.0, 0.1, -2.5])
    s = emb.vector_summary(v, top=3)
    assert s.top_dims == tuple(int(i) for i in np.argsort(-np.abs(v.numpy()), kind="stable")[:3]) == (1, 4, 2)
    assert s.length == pytest.approx(float(np.linalg.norm(v.numpy()))) and (s.low, s.high) == (-3.0, 2.0)
    assert emb.vector_summary(v, top=0).top_dims == ()


def test_word_rows_stack_the_pieces_and_their_average(tiny_lm):
    table = emb.embedding_matrix(tiny_lm)
    multi = emb.word_vector(tiny_lm, "unbelievably")
    rows, labels = multi.rows(tiny_lm)
    assert rows.shape == (multi.n_tokens + 1, table.shape[1]) and labels == [*multi.pieces, "average"]
    assert np.allclose(rows[:-1], table[multi.ids].numpy()) and np.allclose(rows[-1], rows[:-1].mean(0), atol=1e-6)
    single = emb.word_vector(tiny_lm, "king", leading_space=False)
    rows, labels = single.rows(tiny_lm)
    assert rows.shape == (1, table.shape[1]) and labels == single.pieces
    assert single.summary().top_dims == emb.vector_summary(single.vector).top_dims


def test_table_summary(tiny_lm):
    ts = emb.table_summary(tiny_lm)
    V, D = emb.embedding_matrix(tiny_lm).shape
    assert (ts.rows, ts.dims, ts.numbers) == (V, D, V * D) and ts.tied == emb.is_tied(tiny_lm)
    assert ts.share == pytest.approx(V * D / sum(p.numel() for p in tiny_lm.model.parameters()))


def test_context_gap_is_within_minus_across(tiny_lm):
    one_each = emb.contextual_vectors(tiny_lm, "bank", ["The river bank was muddy."], ["My bank pays interest."])
    assert one_each.gap(1) is None  # no same-meaning pair to compare with
    res = emb.contextual_vectors(tiny_lm, "bank", ["The river bank was muddy.", "A grassy bank by the stream."],
                                 ["My bank pays interest.", "The bank approved the loan."])
    curves = res.group_curves()
    within = (curves["within A"] + curves["within B"]) / 2
    gap = within - curves["across A and B"]
    for layer in range(res.layers):
        g = res.gap(layer)
        assert (g.within, g.across, g.gap) == pytest.approx((within[layer], curves["across A and B"][layer],
                                                            gap[layer]))
        assert g.best_layer == int(np.argmax(gap)) and g.best_gap == pytest.approx(gap.max())
