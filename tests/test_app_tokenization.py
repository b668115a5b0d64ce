"""AppTest: the tokenization page on the real tokenizer (chips, counts, examples, markers, lookups, bad input, and the
prompt shared with the other pages)."""

from __future__ import annotations

import json
import re

from components.frame import DEFAULT_PROMPT
from engine import tokens as tok
from tests.conftest import app_page, assert_no_exception, chart_specs


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def chips(at) -> str:
    """The HTML of the token chips."""
    bodies = [h.proto.body for h in at.get("html") if "llmx-chips" in h.proto.body]
    assert bodies, "no token chips on the page"
    return bodies[0]


def chip_ids(at) -> list[int]:
    return [int(x) for x in re.findall(r"text-align:center\">(\d+)</div>", chips(at))]


def test_default_text_counts_and_chips_match_the_tokenizer(real_lm):
    at = app_page("tokenization")
    assert_no_exception(at)
    text = DEFAULT_PROMPT  # the shared prompt every page starts with
    assert at.text_input(key="prompt").value == text
    ids = real_lm.encode(text)
    m = metrics(at)
    assert m["Tokens"] == str(len(ids))
    assert m["Characters"] == str(len(text))
    assert m["Words"] == str(len(text.split()))
    assert m["Characters per token"] == f"{len(text) / len(ids):.2f}"
    assert chip_ids(at) == ids
    assert m["Vocabulary size"] == "49,152" and m["Control tokens"] == "17" and m["Multi-digit entries"] == "0"
    assert any("exactly the text you typed" in c.value for c in at.caption)


def test_typing_updates_live_and_markers_toggle(real_lm):
    at = app_page("tokenization")
    at.text_input(key="prompt").set_value("Hello world").run()
    assert_no_exception(at)
    assert chip_ids(at) == real_lm.encode("Hello world")
    assert ">Hello<" in chips(at) and "> world<" in chips(at)
    at.toggle(key="tok_markers").set_value(True).run()
    assert ">Ġworld<" in chips(at)
    assert any("**Ġ** = a space" in c.value for c in at.caption)


def test_examples_fill_the_box_and_teach(real_lm):
    at = app_page("tokenization")
    at.pills(key="tok_example").set_value("Japanese").run()
    assert_no_exception(at)
    japanese = next(e for e in tok.EXAMPLES if e.name == "Japanese")
    assert at.text_input(key="prompt").value == japanese.text
    assert metrics(at)["Tokens"] == str(len(real_lm.encode(japanese.text)))
    assert "border:1px dashed" in chips(at)  # pieces of one character
    assert any("pieces of one character" in c.value for c in at.caption)
    assert any(japanese.lesson in i.value for i in at.info)
    # The code example has new lines: the page switches to the multi-line box by itself.
    at.pills(key="tok_example").set_value("Code").run()
    assert_no_exception(at)
    code = next(e for e in tok.EXAMPLES if e.name == "Code")
    assert at.toggle(key="tok_multi").value is True
    assert at.text_area(key="prompt").value == code.text
    assert chip_ids(at) == real_lm.encode(code.text)
    # Special-token text becomes dark control-token chips.
    at.pills(key="tok_example").set_value("Special tokens").run()
    assert chips(at).count("background:#343a40") == 3


def test_numbers_note_counts_digits():
    at = app_page("tokenization", query={"prompt": "Year 2024, price 1234"})
    assert_no_exception(at)
    assert any(
        "8 digits in this text take 8 tokens" in c.value and "one digit at a time" in c.value for c in at.caption
    )


def test_empty_and_hostile_text():
    at = app_page("tokenization")
    at.text_input(key="prompt").set_value("").run()
    assert_no_exception(at)
    assert any("Type some text" in i.value for i in at.info)
    at.text_input(key="prompt").set_value("<script>alert(1)</script>\x00 <img src=x onerror=alert(2)> 😀").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)
    html = chips(at)
    assert "<script" not in html and "<img" not in html
    assert "&lt;" in html and "&gt;" in html  # the angle brackets are shown as text, escaped
    at.text_input(key="prompt").set_value("word " * 30_000).run()  # 150k characters
    assert_no_exception(at)
    assert any("cut to its first 4,000 characters" in c.value for c in at.caption)
    assert metrics(at)["Characters"] == "4,000"


def test_language_comparison_chart_uses_live_counts(real_lm):
    at = app_page("tokenization")
    bars = next(s for s in chart_specs(at) if s["data"][0].get("orientation") == "h")["data"][0]
    assert bars["y"][0] == "English"
    assert bars["x"] == [len(real_lm.encode(text)) for _, text in tok.PARALLEL]
    assert max(bars["x"]) > 2 * bars["x"][0]


def test_lookups_by_id_and_by_text(real_lm):
    at = app_page("tokenization", query={"tok_id": "2", "tok_find": "unbelievably"})
    assert_no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Id **2** is `'<|im_end|>'` (a control token)" in text
    pieces = real_lm.encode("unbelievably")
    assert f"splits into {len(pieces)}" in text
    at.number_input(key="tok_id").set_value(real_lm.encode(" Paris")[0]).run()
    at.text_input(key="tok_find").set_value(" Paris").run()
    text = " ".join(m.value for m in at.markdown)
    assert "is `' Paris'`" in text and "bytes `20 50 61 72 69 73`" in text
    assert f"is **one token**: id **{real_lm.encode(' Paris')[0]:,}**" in text


def test_invalid_url_values_fall_back_to_defaults():
    for bad in ("abc", "999999", "-3"):
        at = app_page("tokenization", query={"tok_id": bad, "tok_multi": "maybe"})
        assert_no_exception(at)
        assert at.number_input(key="tok_id").value == 7042
        assert at.toggle(key="tok_multi").value is False


# ------------------------------------------------------------------------------------------------ the shared prompt
def test_prompt_link_is_tokenized(real_lm):
    text = "Tokenizers split unbelievably long words"
    at = app_page("tokenization", query={"prompt": text})
    assert_no_exception(at)
    assert at.text_input(key="prompt").value == text
    ids = real_lm.encode(text)
    assert chip_ids(at) == ids
    assert metrics(at)["Tokens"] == str(len(ids))
    assert all(f">{piece}<" in chips(at) for piece in real_lm.token_texts(ids))
    # An old link with the page's former keys is ignored: the page falls back to the shared prompt.
    old = app_page("tokenization", query={"tok_text": "old link", "tok_area": "old link"})
    assert_no_exception(old)
    assert chip_ids(old) == real_lm.encode(DEFAULT_PROMPT)


def test_prompt_link_with_line_breaks_opens_the_multi_line_box(real_lm):
    text = "line one\nline two"
    at = app_page("tokenization", query={"prompt": text})
    assert_no_exception(at)
    assert at.toggle(key="tok_multi").value is True
    assert at.text_area(key="prompt").value == text
    assert chip_ids(at) == real_lm.encode(text)


def test_prompt_typed_elsewhere_is_tokenized_and_edits_travel_back(real_lm):
    at = app_page("home")
    at.text_area(key="prompt").set_value("The capital of Italy is").run()
    at.switch_page("pages/tokenization.py").run()
    assert_no_exception(at)
    assert chip_ids(at) == real_lm.encode("The capital of Italy is")
    # Edited here, the prompt is what the next page reads (and predicts from).
    at.text_input(key="prompt").set_value("The capital of Spain is").run()
    assert chip_ids(at) == real_lm.encode("The capital of Spain is")
    at.switch_page("pages/next_token.py").run()
    at.run()  # see tests/test_app_next_token.py: the bound box is read on the second run after a switch
    assert_no_exception(at)
    assert at.text_area(key="prompt").value == "The capital of Spain is"
    spec = json.dumps(chart_specs(at))
    assert "Madrid" in spec and "Paris" not in spec
    # …and coming back shows the same prompt again.
    at.switch_page("pages/tokenization.py").run()
    assert chip_ids(at) == real_lm.encode("The capital of Spain is")


def test_picked_example_becomes_the_shared_prompt(real_lm):
    at = app_page("tokenization")
    at.pills(key="tok_example").set_value("Code").run()  # switches to the multi-line box
    code = next(e for e in tok.EXAMPLES if e.name == "Code").text
    at.switch_page("pages/attention.py").run()
    at.run()
    assert_no_exception(at)
    assert at.text_area(key="prompt").value == code
    # Back on Tokenization the multi-line box can be switched off: the line breaks become spaces, for every page.
    at.switch_page("pages/tokenization.py").run()
    assert at.toggle(key="tok_multi").value is True
    assert chip_ids(at) == real_lm.encode(code)
    at.toggle(key="tok_multi").set_value(False).run()
    flat = " ".join(code.splitlines())
    assert at.text_input(key="prompt").value == flat
    assert chip_ids(at) == real_lm.encode(flat)


def _frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_emoji_example_counts_code_points_joiners_and_bytes(real_lm):
    at = app_page("tokenization")
    at.pills(key="tok_example").set_value("Emoji").run()
    assert_no_exception(at)
    coder = "\U0001f469\u200d\U0001f4bb"
    table = _frame(at, "zero-width joiners").set_index("character")
    row = table.loc[coder]
    assert row["code points"] == "U+1F469 + U+200D + U+1F4BB" and "zero width joiner" in row["names"]
    assert (row["symbols (emoji)"], row["zero-width joiners"], row["UTF-8 bytes"]) == (2, 1, 11)
    assert row["tokens on its own"] == len(real_lm.encode(coder))
    assert table.loc["🍕", "UTF-8 bytes"] == 4 and table.loc["🍕", "symbols (emoji)"] == 1
    assert any("2 symbol(s) glued by 1 zero-width joiner(s)" in c.value for c in at.caption)
    assert not any("three emoji" in i.value for i in at.info)


def test_wordpiece_next_to_bpe_on_the_shared_prompt(real_lm):
    from components import caches

    text = "Unbelievably, Paris tokenizes 😀 differently!"
    at = app_page("tokenization", query={"prompt": text})
    assert_no_exception(at)
    _, pieces, _ = caches.encoder_model("all-minilm-l6-v2").tokenize(text)
    m = metrics(at)
    assert m["WordPiece tokens"] == str(len(pieces) - 2) and m["[UNK] in WordPiece"] == "1"
    assert m["BPE tokens (SmolLM2-135M-Instruct)"] == str(len(real_lm.encode(text))) == m["Tokens"]
    wordpiece = next(h.proto.body for h in at.get("html") if "[CLS]" in h.proto.body)
    assert "##" in wordpiece and "[UNK]" in wordpiece and "paris" in wordpiece and "Paris" not in wordpiece
    assert any("lower-cased the text first" in c.value for c in at.caption)


def test_wordpiece_section_handles_long_and_hostile_prompts():
    at = app_page("tokenization", query={"prompt": "word " * 2000})
    assert_no_exception(at)
    assert any("the encoder reads at most" in w.value for w in at.warning)
    at = app_page("tokenization", query={"prompt": "<script>alert(1)</script>\x07"})
    assert_no_exception(at)
    assert "<script>" not in "".join(h.proto.body for h in at.get("html"))


def test_folded_tables_are_sent_only_once_opened(real_lm):
    """Token table, control tokens and longest entries are folded: closed, none is sent; opened, each holds the
    tokenizer's own values (the prompt's ids in order, every control token, entries longest first)."""
    text = "Tokenizers split text into pieces."
    at = app_page("tokenization", query={"prompt": text})
    assert_no_exception(at)
    assert not any(c in d.value.columns for d in at.dataframe for c in ("vocabulary entry", "role", "bytes"))
    for key in ("tok_table_open", "tok_specials_open", "tok_longest_open"):
        at.session_state[key] = True
    at.run()
    assert_no_exception(at)
    assert _frame(at, "vocabulary entry")["id"].tolist() == real_lm.encode(text)
    specials = _frame(at, "role")
    assert len(specials) == len(real_lm.special_tokens()) and real_lm.info.eos_token in specials["token"].tolist()
    longest = next(d.value for d in at.dataframe if list(d.value.columns)[-1] == "bytes" and "position" not in d.value)
    assert longest["bytes"].is_monotonic_decreasing and longest["bytes"].iloc[0] > 10
