"""engine.tokens on the real tokenizer: round trips, pieces, counts, lookups, the vocabulary and the examples."""

from __future__ import annotations

import pytest

from engine import tokens as tok

TRICKY = [
    "",
    " ",
    "  two leading spaces",
    "trailing spaces  ",
    "\n\n\t mixed whitespace \r\n",
    "👩‍💻 🇫🇷 👍🏽",  # ZWJ sequence, flag, skin-tone modifier
    "e\u0301 vs é",  # combining accent vs precomposed: no normalisation may happen
    "ﬁ ligature and Ω≈ç√∫",
    "مرحبا بالعالم",  # right-to-left script
    "東京は日本の首都です。",
    "\u200bzero width\ufeff",
    "a\x00b\x07c",  # control characters survive the tokenizer itself
    "<|im_end|>typed<|im_start|>",
    "<script>alert('x')</script> &amp;",
    "1234567890 3.14159 -42 1e-9",
]


@pytest.mark.parametrize("text", TRICKY)
def test_decode_encode_round_trip(real_lm, text):
    assert tok.tokenize(real_lm, text).round_trip  # what the page reports
    assert real_lm.decode(tok.tokenize(real_lm, text).ids) == text


def test_token_bytes_concatenate_to_the_text(real_lm):
    text = "Ça coûte 5 € 👍"
    pieces = tok.tokenize(real_lm, text).pieces
    assert b"".join(real_lm.token_bytes(p.token_id) for p in pieces) == text.encode("utf-8")
    assert sum(p.n_bytes for p in pieces) == len(text.encode("utf-8"))


def test_tokenize_counts_and_pieces(real_lm):
    text = "Hello world, how are you?"
    result = tok.tokenize(real_lm, text)
    assert result.ids == real_lm.encode(text)
    assert [p.index for p in result.pieces] == list(range(len(result.ids)))
    s = result.stats
    assert (s.characters, s.words, s.tokens) == (25, 5, len(result.ids))
    assert s.tokens == 7  # every common English word is one token
    assert s.chars_per_token == pytest.approx(25 / 7)
    assert result.pieces[1].text == " world" and result.pieces[1].raw == "Ġworld"
    assert not any(p.partial or p.special for p in result.pieces)


def test_empty_text_has_no_tokens(real_lm):
    result = tok.tokenize(real_lm, "")
    assert result.pieces == [] and result.stats.tokens == 0 and result.stats.chars_per_token == 0.0


def test_emoji_pieces_are_partial_bytes_and_specials_are_flagged(real_lm):
    emoji = tok.tokenize(real_lm, "I love 🍕")
    partial = [p for p in emoji.pieces if p.partial]
    assert partial and all("⟨" in p.text for p in partial)
    assert sum(p.n_bytes for p in partial) + sum(len(p.text.encode()) for p in emoji.pieces if not p.partial) == len(
        "I love 🍕".encode()
    )
    chat = tok.tokenize(real_lm, "<|im_start|>user\nHi<|im_end|>")
    assert chat.pieces[0].special and chat.pieces[-1].special
    assert chat.pieces[-1].token_id == real_lm.info.eos_token_id
    assert not chat.pieces[1].special


def test_special_token_ids_lists_every_control_token(real_lm):
    specials = tok.special_token_ids(real_lm)
    assert specials[real_lm.info.eos_token_id] == real_lm.info.eos_token
    assert set(real_lm.special_tokens().values()) <= set(specials)
    assert len(specials) == 17 and max(specials) == 16  # SmolLM2 keeps its control tokens at ids 0..16
    assert all(t.startswith("<") and t.endswith(">") for t in specials.values())


def test_byte_level_form_and_lookups(real_lm):
    assert tok.byte_level_form(" Paris\n") == "ĠParisĊ"
    found = tok.lookup_text(real_lm, " Paris")
    assert found.token_id == real_lm.encode(" Paris")[0]
    assert found.variants["Paris"] == real_lm.encode("Paris")[0] != found.token_id  # two different tokens
    assert found.variants[" paris"] is None  # lower-case ' paris' is not one entry
    split = tok.lookup_text(real_lm, "unbelievably")
    assert split.token_id is None and len(split.pieces) > 1
    assert "".join(p.text for p in split.pieces) == "unbelievably"
    assert tok.lookup_text(real_lm, "<|im_end|>").token_id == real_lm.info.eos_token_id
    with pytest.raises(ValueError):
        tok.lookup_text(real_lm, "")


def test_token_info(real_lm):
    paris = real_lm.encode(" Paris")[0]
    info = tok.token_info(real_lm, paris)
    assert (info.text, info.raw, info.hex_bytes, info.special) == (" Paris", "ĠParis", "20 50 61 72 69 73", False)
    assert tok.token_info(real_lm, 2).special
    for bad in (-1, real_lm.vocab_size):
        with pytest.raises(ValueError, match="Token ids run from 0"):
            tok.token_info(real_lm, bad)


def test_vocabulary_summary_counts_every_entry(real_lm):
    summary = tok.vocabulary_summary(real_lm)
    assert summary.size == real_lm.vocab_size == 49152
    assert sum(summary.byte_length_counts.values()) + len(summary.specials) == summary.size
    assert summary.byte_length_counts[1] <= 256  # at most one entry per byte value
    assert summary.single_digit == 10
    # The page tells learners that numbers are read digit by digit: this is what makes that true.
    assert summary.multi_digit == 0
    assert 0.5 < summary.leading_space / summary.size < 0.8
    lengths = [len(t.encode()) for _, t in summary.longest]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > 20


def test_compare_texts_relative_to_english(real_lm):
    rows = tok.compare_texts(real_lm, tok.PARALLEL)
    assert [r.name for r in rows] == [name for name, _ in tok.PARALLEL]
    assert rows[0].relative_tokens == 1.0
    for r in rows:
        assert r.stats.tokens == len(real_lm.encode(r.text))
        assert r.fits_in_context == real_lm.info.context_length // r.stats.tokens
    by_name = {r.name: r for r in rows}
    # Scripts the tokenizer saw less need several times more tokens for the same sentence.
    assert by_name["Hindi"].relative_tokens > 2.5 and by_name["Russian"].relative_tokens > 2
    assert min(r.stats.tokens for r in rows) == rows[0].stats.tokens


def test_examples_teach_what_they_claim(real_lm):
    by_name = {e.name: tok.tokenize(real_lm, e.text) for e in tok.EXAMPLES}
    for e in tok.EXAMPLES:
        assert by_name[e.name].round_trip, e.name
    english, russian = by_name["English prose"].stats, by_name["Russian (Cyrillic)"].stats
    assert english.chars_per_token > 2 * russian.chars_per_token
    assert any(p.partial for p in by_name["Japanese"].pieces)
    assert any(p.partial for p in by_name["Emoji"].pieces)
    assert any("\n" in p.text for p in by_name["Code"].pieces)
    assert sum(p.special for p in by_name["Special tokens"].pieces) == 3  # start, end, start
    digits, digit_tokens = tok.digit_runs(by_name["Numbers"])
    assert digits == digit_tokens  # one token per digit


def test_middle_half_of_a_length_histogram():
    assert tok.middle_half({1: 1, 2: 1, 3: 1, 4: 1}) == (1, 3)
    assert tok.middle_half({5: 10}) == (5, 5)
    assert tok.middle_half({}) == (0, 0)


def test_digit_runs_ignore_hex_of_byte_pieces(real_lm):
    # '規' and the emoji become byte pieces shown as ⟨E8 A6⟩ etc.: their hex digits are not digits of the text.
    result = tok.tokenize(real_lm, "大規模 I love 🍕 in 2024")
    assert any(p.partial for p in result.pieces)
    assert tok.digit_runs(result) == (4, 4)


def test_emoji_facts_are_computed_from_the_string(real_lm):
    coder_text = "\U0001f469\u200d\U0001f4bb"  # woman technologist: 👩 + zero-width joiner + 💻
    pizza, coder = tok.character_facts(real_lm, f"I love 🍕! {coder_text} and 🍕 again")  # repeats listed once
    assert coder.text == coder_text
    assert coder.code_points == ("U+1F469", "U+200D", "U+1F4BB")
    assert (coder.symbols, coder.joiners) == (2, 1)  # two emoji joined by one joiner, not three emoji
    assert coder.names[1] == "ZERO WIDTH JOINER" and coder.utf8_bytes == 4 + 3 + 4
    assert coder.tokens == len(real_lm.encode(coder_text)) and coder.tokens > 1
    assert (pizza.symbols, pizza.joiners, pizza.utf8_bytes, pizza.code_points) == (1, 0, 4, ("U+1F355",))
    assert tok.graphemes("👍🏽e\u0301x") == ["👍🏽", "e\u0301", "x"]  # skin tone and combining accent stay attached
    assert tok.character_facts(real_lm, "plain ASCII") == []
    emoji = next(e for e in tok.EXAMPLES if e.name == "Emoji")
    assert coder_text in emoji.text and "three" not in emoji.lesson  # the lesson states no count of its own


def test_tokenization_carries_its_own_counts(real_lm):
    special = tok.tokenize(real_lm, "<|im_start|>user\n大規模 🍕<|im_end|>")
    assert special.special_count == 2
    assert special.partial_count == sum(p.partial for p in special.pieces) > 0
    assert special.round_trip and tok.tokenize(real_lm, "a\x00b").round_trip


def test_caption_picks_are_engine_functions(real_lm):
    rows = tok.compare_texts(real_lm, tok.PARALLEL)
    worst = tok.most_expensive(rows)
    assert worst.relative_tokens == max(r.relative_tokens for r in rows) > 1 and worst.name != "English"
    summary = tok.vocabulary_summary(real_lm)
    roles = {t: r for _, t, r in tok.control_token_rows(summary.specials, real_lm.info.eos_token)}
    assert set(roles) == set(summary.specials.values())
    assert "generation stops here" in roles[real_lm.info.eos_token] and "chat turn" in roles["<|im_start|>"]
    longest = tok.longest_entries(summary)
    assert [(i, t) for i, t, _ in longest] == summary.longest
    assert all(n == len(t.encode("utf-8")) for _, t, n in longest)
