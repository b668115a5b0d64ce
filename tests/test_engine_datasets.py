"""Engine: parsing and validating fine-tuning datasets (every format, every malformed kind), tokens and masks."""

from __future__ import annotations

import json

import pytest

from engine import datasets as D
from engine.datasets import DatasetError, parse_dataset


# ------------------------------------------------------------------------------------------------ the three formats
def test_txt_one_example_a_line_skips_empty_rows():
    ds = parse_dataset("facts.txt", b"First fact.\n\n  \nSecond fact.\r\nThird.\n")
    assert ds.kind == "text" and [e.response for e in ds.examples] == ["First fact.", "Second fact.", "Third."]
    assert [e.row for e in ds.examples] == [1, 4, 5] and ds.skipped == (2, 3)
    assert all(e.prompt == "" for e in ds.examples)


def test_csv_text_column_and_prompt_response_columns():
    ds = parse_dataset("a.csv", b'id,text\n1,"Hello, world"\n2,Second\n')
    assert ds.kind == "text" and [e.response for e in ds.examples] == ["Hello, world", "Second"]
    ds = parse_dataset("qa.CSV", b'Prompt,Response\nWhat is it?,"It is ""quoted"", fine."\n,\nWho?,Me.\n')
    assert ds.kind == "chat" and ds.fmt == "CSV, prompt/response columns"
    assert [(e.row, e.prompt, e.response) for e in ds.examples] == [
        (1, "What is it?", 'It is "quoted", fine.'), (3, "Who?", "Me.")]
    assert ds.skipped == (2,)
    ds = parse_dataset("qa.csv", b"prompt,completion\nQ,A\n")
    assert ds.examples[0].response == "A"


def test_jsonl_text_prompt_completion_and_messages():
    rows = [{"text": "Plain one."}, {"text": "Plain two."}]
    ds = parse_dataset("t.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    assert ds.kind == "text" and [e.response for e in ds.examples] == ["Plain one.", "Plain two."]
    ds = parse_dataset("pc.jsonl", b'{"prompt": "Hi", "completion": "Arr!"}\n\n{"prompt": "Bye", "response": "Yo"}\n')
    assert ds.kind == "chat" and [(e.prompt, e.response) for e in ds.examples] == [("Hi", "Arr!"), ("Bye", "Yo")]
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"},
                         {"role": "assistant", "content": "Because."}]}
    ds = parse_dataset("m.jsonl", json.dumps(chat).encode())
    assert ds.kind == "chat" and ds.examples[0].prompt == "Be brief.\n\nWhy?" and ds.examples[0].response == "Because."


def test_built_ins_parse_and_fit_the_caps(real_lm):
    for key in D.BUILT_INS:
        prep = D.prepare(real_lm, f"builtin:{key}", b"")
        assert 20 <= len(prep.tokens) <= D.MAX_ROWS
        assert max(len(t.ids) for t in prep.tokens) <= D.MAX_ROW_TOKENS
        assert len(prep.val_idx) == 4 and set(prep.train_idx).isdisjoint(prep.val_idx)
        assert prep.trained_tokens == sum(prep.tokens[i].n_trained for i in prep.train_idx)


# ------------------------------------------------------------------------------------------------ malformed uploads
MALFORMED = {
    "wrong extension": ("model.bin", b"hello", "not a .txt, .csv or .jsonl"),
    "binary": ("data.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    "zero bytes": ("empty.csv", b"", "empty"),
    "only blank rows": ("blank.csv", b"text\n\n,\n", "every row is empty"),
    "wrong encoding": ("latin.txt", "Caf\u00e9 ok\nna\u00efve".encode("latin-1"), "Line 1 is not valid UTF-8"),
    "too large": ("big.txt", b"x" * (D.MAX_FILE_BYTES + 1), "the limit is 1 MB"),
    "missing column": ("a.csv", b"question,answer\nQ,A\n", "must name a \u201ctext\u201d column"),
    "empty response": ("a.csv", b"prompt,response\nQ,A\nQ2,\n", "Row 2: the response is empty"),
    "formula cell": ("a.csv", b"prompt,response\nQ,A\nQ,=HYPERLINK(\"http://x\")\n", "Row 2: the \u201cresponse\u201d"
                     " cell starts like a spreadsheet formula"),
    "formula plus": ("a.csv", b"text\n+cmd(1)\n", "Row 1"),
    "html": ("a.txt", b"fine\n<script>alert(1)</script>\n", "Row 2: \u201cline\u201d contains HTML markup"),
    "html in jsonl": ("a.jsonl", b'{"text": "<img src=x onerror=alert(1)>"}', "contains HTML markup"),
    "control char": ("a.txt", "ok\nbad\u0007bell".encode(), "Row 2: \u201cline\u201d contains a control character"),
    "bad json": ("a.jsonl", b'{"text": "ok"}\n{"text": "no end}\n', "Row 2 is not valid JSON"),
    "not an object": ("a.jsonl", b"[1, 2]\n", "Row 1 must be a JSON object"),
    "deep json": ("a.jsonl", (b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"), "nested more than 4 levels"),
    "deep json under the bracket count": ("a.jsonl", b'{"text": [[[[["x"]]]]]}', "nested more than 4 levels"),
    "missing keys": ("a.jsonl", b'{"question": "Q", "answer": "A"}\n', "Row 1 needs a \u201ctext\u201d key"),
    "text not a string": ("a.jsonl", b'{"text": 42}\n', "must be text, not a number"),
    "chat ends with user": ("a.jsonl", b'{"messages": [{"role": "user", "content": "Q"}]}',
                            "the last message must be the assistant's"),
    "chat bad role": ("a.jsonl", b'{"messages": [{"role": "hacker", "content": "Q"}]}', "has role 'hacker'"),
    "mixed kinds": ("a.jsonl", b'{"text": "t"}\n{"prompt": "p", "completion": "c"}\n', "Row 2 mixes plain text"),
    "bad csv quotes": ("a.csv", b'text\n"unclosed\n', "could not be read"),
    "too many rows": ("a.txt", ("line\n" * (D.MAX_ROWS + 1)).encode(), f"the limit is {D.MAX_ROWS}"),
    "huge field": ("a.txt", ("word " * 1000).encode(), "characters; the limit is 2,000"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_upload_gets_one_clear_message(case):
    name, data, message = MALFORMED[case]
    with pytest.raises(DatasetError) as err:
        parse_dataset(name, data)
    assert message in str(err.value), str(err.value)
    assert "Traceback" not in str(err.value) and len(str(err.value)) < 300


def test_a_50_mb_file_is_refused_before_it_is_read():
    data = b"a,b\n" * (50 * 1024 * 1024 // 4)
    with pytest.raises(DatasetError, match="The file is 50.0 MB; the limit is 1 MB"):
        parse_dataset("huge.csv", data)


def test_rows_over_the_token_cap_name_the_row(real_lm):
    long_line = " ".join(["tokens"] * (D.MAX_ROW_TOKENS + 5))
    with pytest.raises(DatasetError, match=rf"Row 2 is \d+ tokens .*the limit is {D.MAX_ROW_TOKENS}"):
        D.prepare(real_lm, "x.txt", f"short one\n{long_line}\n".encode())
    with pytest.raises(DatasetError, match="Row 1 has only one token"):
        D.prepare(real_lm, "x.txt", b"Hello\n")


def test_typed_box_messages_speak_of_the_box():
    with pytest.raises(DatasetError, match="The box is empty"):
        D.typed_dataset("\n  \n")
    with pytest.raises(DatasetError, match="Line 2"):
        D.typed_dataset("ok\n<b>bold</b>")


# ------------------------------------------------------------------------------------------------ tokens and masks
def test_prompt_tokens_are_masked_and_response_ends_the_turn(real_lm):
    ex = D.Example(1, "What is our class mascot?", "A purple owl.")
    t = D.tokenize_example(real_lm, ex, "chat")
    prompt_ids = real_lm.encode(real_lm.chat_prompt([{"role": "user", "content": ex.prompt}]))
    assert list(t.ids[: t.n_masked]) == prompt_ids
    assert list(t.ids[t.n_masked:]) == real_lm.encode("A purple owl.") + [real_lm.info.eos_token_id]
    pieces, ids, masked = D.token_pieces(real_lm, t)
    assert sum(masked) == len(prompt_ids) and not any(masked[len(prompt_ids):]) and ids == list(t.ids)
    plain = D.tokenize_example(real_lm, D.Example(1, "", "Our class mascot is a purple owl."), "text")
    assert plain.n_masked == 1 and plain.n_trained == len(plain.ids) - 1


def test_split_is_seeded_disjoint_and_covers_everything():
    train, val = D.split_indices(20, seed=0)
    assert (train, val) == D.split_indices(20, seed=0)
    assert D.split_indices(20, seed=1) != (train, val)
    assert len(val) == 4 and sorted(train + val) == list(range(20))
    assert D.split_indices(4, seed=0) == ([0, 1, 2, 3], [])  # too few rows: no validation


def test_held_out_probes_come_from_validation_rows(real_lm):
    prep = D.prepare(real_lm, "builtin:room12_qa", b"")
    probes = D.held_out_probes(prep)
    assert probes == [(e.prompt, e.response) for e in prep.val_examples]
    text = D.prepare(real_lm, "builtin:class_facts", b"")
    for (probe, rest), ex in zip(D.held_out_probes(text), text.val_examples):
        assert probe + rest == ex.response and probe and rest.startswith(" ")
