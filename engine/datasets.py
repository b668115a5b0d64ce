"""Fine-tuning datasets: parse and validate an upload (or a built-in file), then turn it into training examples.

Three file kinds, one example per row:

- ``.txt``: one example a line (plain text; every token after the first is trained on);
- ``.csv``: a header row, then a ``text`` column, or ``prompt`` and ``response`` (or ``completion``) columns;
- ``.jsonl``: one JSON object a line with ``text``, or ``prompt`` and ``completion`` (or ``response``), or a chat
  ``messages`` list (``role``/``content`` dicts ending with the assistant's turn).

Prompt/response rows are written into the model's chat template (the prompt as the user's turn, the response as the
assistant's, then the end-of-turn token), and only the response tokens count in the loss: the prompt tokens are
*masked*, so the model learns to answer, not to repeat questions.

Everything here is pure: :func:`parse_dataset` takes bytes and returns a :class:`Dataset` or raises one
:class:`DatasetError` whose message names the row or the problem; :func:`tokenize_dataset` checks each row's length
with the model's tokenizer. The caps (:data:`MAX_FILE_BYTES`, :data:`MAX_ROWS`, :data:`MAX_ROW_TOKENS`) keep one
session's training bounded on a shared server.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePath

from engine.lm import LanguageModel

#: Largest upload accepted (bytes): 1 MiB, the same as ``server.maxUploadSize`` in ``.streamlit/config.toml``.
MAX_FILE_MB = 1
MAX_FILE_BYTES = MAX_FILE_MB * 1024 * 1024
#: Most examples (rows) in one dataset.
MAX_ROWS = 200
#: Most tokens in one example, chat template included.
MAX_ROW_TOKENS = 96
#: Most characters in one field before tokenizing (keeps the tokenizer's work bounded).
MAX_FIELD_CHARS = 2000
#: Deepest JSON nesting accepted in a ``.jsonl`` row (a chat row needs 3: object → list → object).
MAX_JSON_DEPTH = 4
#: The file kinds accepted.
EXTENSIONS = ("txt", "csv", "jsonl")
#: Fewest examples for a held-out validation split (fewer: every example is trained on, no validation curve).
MIN_FOR_VALIDATION = 5

_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?\s*>|<!--")
_FORMULA = re.compile(r"^[=@]|^[+\-]\s*[A-Za-z_]+[A-Za-z0-9_.]*\s*\(")


class DatasetError(ValueError):
    """A dataset the page cannot use; the message names the row or the problem and is ready to show."""


@dataclass(frozen=True)
class Example:
    """One training example.

    Attributes:
        row: 1-based row number in the file (the line for ``.txt``/``.jsonl``; the data row for ``.csv``).
        prompt: The user's turn (empty for plain text).
        response: The text trained on (the assistant's turn, or the whole line for plain text).
    """

    row: int
    prompt: str
    response: str


@dataclass(frozen=True)
class Dataset:
    """A parsed dataset.

    Attributes:
        name: File name (or the built-in dataset's title).
        kind: ``"text"`` (plain lines, every token trained) or ``"chat"`` (prompt masked, response trained).
        examples: The examples, in file order.
        skipped: Row numbers of empty rows that were skipped.
        fmt: What the file was read as, e.g. ``"JSONL, prompt/completion"``.
    """

    name: str
    kind: str
    examples: tuple[Example, ...]
    skipped: tuple[int, ...] = ()
    fmt: str = ""


@dataclass(frozen=True)
class TokenizedExample:
    """One example as token ids.

    Attributes:
        row: Row number in the file.
        ids: Every token id (template included).
        n_masked: How many leading tokens are masked out of the loss (the prompt and the template around it);
            for plain text 1, since the first token has nothing before it to be predicted from.
    """

    row: int
    ids: tuple[int, ...]
    n_masked: int

    @property
    def n_trained(self) -> int:
        """Tokens that count in the loss."""
        return len(self.ids) - self.n_masked


@dataclass(frozen=True)
class BuiltIn:
    """A dataset shipped with the app (written for it; public domain like the rest of the app's text).

    Attributes:
        key: Short name used in links.
        title: Shown on the page.
        file: File name under ``engine/data/finetune/``.
        about: One sentence on what it teaches.
        paraphrase: A probe that asks about the data in words no row uses.
        unrelated: A probe unrelated to the data (did the model forget?).
    """

    key: str
    title: str
    file: str
    about: str
    paraphrase: str
    unrelated: str


BUILT_INS: dict[str, BuiltIn] = {
    b.key: b
    for b in (
        BuiltIn("room12_qa", "Our class's facts, as questions and answers", "room12_qa.csv",
                "20 questions and answers about an imaginary class, Room 12 (CSV, prompt/response).",
                "Which bird represents Room 12?", "What is the capital of France?"),
        BuiltIn("pirate", "Answer like a pirate", "pirate.jsonl",
                "22 everyday questions answered in pirate speak: a style, not facts (JSONL, prompt/completion).",
                "How do I look after a puppy?", "What is the capital of France?"),
        BuiltIn("short_answers", "A tiny instruction set: answer in one sentence", "short_answers.jsonl",
                "20 science questions, each answered in one sentence starting with \"In short:\" (JSONL, chat "
                "messages).", "How do clouds form?", "Write a haiku about the sea."),
        BuiltIn("class_facts", "Our class's facts, as plain sentences", "class_facts.txt",
                "22 sentences about the same imaginary class (TXT, one example a line, no prompts).",
                "The mascot of our class is a", "The capital of France is"),
    )
}


# ------------------------------------------------------------------------------------------------ parsing
def parse_dataset(name: str, data: bytes) -> Dataset:
    """Parse an uploaded file into examples, or raise one clear :class:`DatasetError`.

    Args:
        name: The file's name (its extension picks the format).
        data: The file's bytes.

    Raises:
        DatasetError: Wrong kind of file, too large, not UTF-8 text, missing columns or keys, a bad row, too many rows,
            or no examples at all. The message names the row where there is one.
    """
    ext = PurePath(str(name)).suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise DatasetError(f"“{_short(name)}” is not a .txt, .csv or .jsonl file.")
    if len(data) > MAX_FILE_BYTES:
        raise DatasetError(f"The file is {len(data) / 1024 / 1024:.1f} MB; the limit is {MAX_FILE_MB}"
                           " MB.")
    if not data.strip():
        raise DatasetError("The file is empty.")
    text = _decode(data)
    if ext == "txt":
        ds = _parse_txt(name, text)
    elif ext == "csv":
        ds = _parse_csv(name, text)
    else:
        ds = _parse_jsonl(name, text)
    if not ds.examples:
        raise DatasetError("The file has no examples: every row is empty.")
    if len(ds.examples) > MAX_ROWS:
        raise DatasetError(f"The file has {len(ds.examples):,} examples; the limit is {MAX_ROWS}. Keep the first "
                           f"{MAX_ROWS} rows.")
    return ds


def load_built_in(key: str) -> Dataset:
    """A built-in dataset, parsed by the same code as an upload.

    Raises:
        KeyError: If ``key`` is not in :data:`BUILT_INS`.
    """
    b = BUILT_INS[key]
    data = (resources.files("engine") / "data" / "finetune" / b.file).read_bytes()
    ds = parse_dataset(b.file, data)
    return Dataset(b.title, ds.kind, ds.examples, ds.skipped, ds.fmt)


def _short(name: object, n: int = 40) -> str:
    s = "".join(c for c in str(name) if c.isprintable())
    return s if len(s) <= n else s[: n - 1] + "…"


def _decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped) or a :class:`DatasetError` naming the line of the first bad byte."""
    if b"\x00" in data[:8192]:
        raise DatasetError("This looks like a binary file (it contains NUL bytes), not text. Upload a UTF-8 .txt, "
                           ".csv or .jsonl file.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(f"Line {line} is not valid UTF-8 (byte {err.start:,}). Save the file as UTF-8 and upload "
                           "it again.") from None
    return text


def _clean_field(value: object, row: int, what: str) -> str:
    """A field's text, checked: a string, not too long, no HTML, no spreadsheet formula, no control characters."""
    if not isinstance(value, str):
        raise DatasetError(f"Row {row}: “{what}” must be text, not {_json_kind(value)}.")
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in "\n\t"), None)
    if bad is not None:
        raise DatasetError(f"Row {row}: “{what}” contains a control character (U+{ord(bad):04X}). Remove it.")
    value = value.strip()
    if len(value) > MAX_FIELD_CHARS:
        raise DatasetError(f"Row {row}: “{what}” is {len(value):,} characters; the limit is {MAX_FIELD_CHARS:,}.")
    if _HTML_TAG.search(value):
        raise DatasetError(f"Row {row}: “{what}” contains HTML markup ({_short(_HTML_TAG.search(value).group(0), 20)})."
                           " This page trains on plain text: remove the tags.")
    return value


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", type(None): "null", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _parse_txt(name: str, text: str) -> Dataset:
    examples, skipped = [], []
    for row, line in enumerate(text.splitlines(), start=1):
        value = _clean_field(line, row, "line")
        if not value:
            skipped.append(row)
            continue
        examples.append(Example(row, "", value))
    return Dataset(name, "text", tuple(examples), tuple(skipped), "TXT, one example a line")


def _parse_csv(name: str, text: str) -> Dataset:
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        rows = list(reader)
    except csv.Error as err:
        raise DatasetError(f"The CSV could not be read: {err}. Check its quotes.") from None
    header = [h.strip().lower() for h in rows[0]]
    if "text" in header:
        cols, kind = {"text": header.index("text")}, "text"
    elif "prompt" in header and ("response" in header or "completion" in header):
        answer = "response" if "response" in header else "completion"
        cols, kind = {"prompt": header.index("prompt"), answer: header.index(answer)}, "chat"
    else:
        raise DatasetError(f"The CSV's first row must name a “text” column, or “prompt” and “response” columns; it "
                           f"has {', '.join(repr(_short(h, 20)) for h in header[:6]) or 'no columns'}.")
    examples, skipped = [], []
    for row, cells in enumerate(rows[1:], start=1):
        if not any(c.strip() for c in cells):
            skipped.append(row)
            continue
        if len(cells) < len(header):
            cells = cells + [""] * (len(header) - len(cells))
        values = {}
        for col, i in cols.items():
            cell = cells[i]
            if _FORMULA.match(cell.strip()):
                raise DatasetError(f"Row {row}: the “{col}” cell starts like a spreadsheet formula "
                                   f"({_short(cell.strip(), 20)}). Remove the leading “{cell.strip()[0]}”.")
            values[col] = _clean_field(cell, row, col)
        if kind == "text":
            if not values["text"]:
                skipped.append(row)
                continue
            examples.append(Example(row, "", values["text"]))
        else:
            prompt, response = values["prompt"], values[answer]
            if not prompt or not response:
                raise DatasetError(f"Row {row}: the {'prompt' if not prompt else answer} is empty.")
            examples.append(Example(row, prompt, response))
    fmt = "CSV, text column" if kind == "text" else f"CSV, prompt/{answer} columns"
    return Dataset(name, kind, tuple(examples), tuple(skipped), fmt)


def _depth(value: object, limit: int) -> int:
    """Nesting depth of a parsed JSON value (stops counting past ``limit``)."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def _parse_jsonl(name: str, text: str) -> Dataset:
    examples, skipped, kinds = [], [], set()
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            skipped.append(row)
            continue
        # Brackets before parsing: a deeply nested line would make the parser recurse far (a resource attack).
        if line.count("[") + line.count("{") > 200 and _bracket_depth(line) > MAX_JSON_DEPTH:
            raise DatasetError(f"Row {row}: the JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
        try:
            obj = json.loads(line)
        except RecursionError:
            raise DatasetError(f"Row {row}: the JSON is nested more than {MAX_JSON_DEPTH} levels deep.") from None
        except ValueError as err:
            raise DatasetError(f"Row {row} is not valid JSON ({err.msg} at column {err.colno}).") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"Row {row} must be a JSON object ({{…}}), not {_json_kind(obj)}.")
        if _depth(obj, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH:
            raise DatasetError(f"Row {row}: the JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
        if "messages" in obj:
            ex, kind = _chat_row(obj["messages"], row), "messages"
        elif "prompt" in obj and ("completion" in obj or "response" in obj):
            answer = "completion" if "completion" in obj else "response"
            prompt, response = _clean_field(obj["prompt"], row, "prompt"), _clean_field(obj[answer], row, answer)
            if not prompt or not response:
                raise DatasetError(f"Row {row}: the {'prompt' if not prompt else answer} is empty.")
            ex, kind = Example(row, prompt, response), "prompt/" + answer
        elif "text" in obj:
            value = _clean_field(obj["text"], row, "text")
            if not value:
                skipped.append(row)
                continue
            ex, kind = Example(row, "", value), "text"
        else:
            keys = ", ".join(repr(_short(k, 20)) for k in list(obj)[:5]) or "none"
            raise DatasetError(f"Row {row} needs a “text” key, “prompt” and “completion” keys, or a “messages” list "
                               f"(its keys: {keys}).")
        kinds.add("text" if kind == "text" else "chat")
        if len(kinds) > 1:
            raise DatasetError(f"Row {row} mixes plain text with prompt/response rows: use one kind per file.")
        examples.append(ex)
        kinds_fmt = kind
    kind = kinds.pop() if kinds else "text"
    return Dataset(name, kind, tuple(examples), tuple(skipped), f"JSONL, {kinds_fmt}" if examples else "JSONL")


def _bracket_depth(line: str) -> int:
    depth = best = 0
    in_str = esc = False
    for c in line:
        if in_str:
            esc, in_str = (False, in_str) if esc else (c == "\\", c != '"')
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth -= 1
    return best


def _chat_row(messages: object, row: int) -> Example:
    """A ``messages`` row: every turn before the last is the prompt (shown, masked); the last, the assistant's, is
    trained on. Only single-exchange prompts are written into the template here: one optional system turn, then
    user/assistant turns."""
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"Row {row}: “messages” must be a non-empty list of {{\"role\", \"content\"}} objects.")
    turns = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DatasetError(f"Row {row}: message {i} needs a “role” and a “content”.")
        role = m["role"]
        if role not in ("system", "user", "assistant"):
            raise DatasetError(f"Row {row}: message {i} has role {_short(role, 20)!r}; use system, user or assistant.")
        turns.append((role, _clean_field(m["content"], row, f"message {i}")))
    if turns[-1][0] != "assistant":
        raise DatasetError(f"Row {row}: the last message must be the assistant's (the answer to train on).")
    if not turns[-1][1]:
        raise DatasetError(f"Row {row}: the assistant's answer is empty.")
    if len(turns) < 2 or turns[-2][0] != "user":
        raise DatasetError(f"Row {row}: the assistant's answer must follow a user message.")
    prompt = "\n\n".join(c for r, c in turns[:-1] if c)
    return Example(row, prompt, turns[-1][1])


# ------------------------------------------------------------------------------------------------ tokens
def tokenize_example(lm: LanguageModel, ex: Example, kind: str) -> TokenizedExample:
    """One example's ids and how many leading ones are masked.

    Plain text: its own tokens, the first masked (nothing predicts it). Chat: the chat template's prompt (system and
    user turns, then the assistant marker) masked, followed by the response and the end-of-turn token, trained.
    """
    if kind == "text":
        ids = lm.encode(ex.response)
        return TokenizedExample(ex.row, tuple(ids), 1)
    prompt_ids = lm.encode(lm.chat_prompt([{"role": "user", "content": ex.prompt}]))
    end = lm.info.eos_token_id  # <|im_end|>: the model learns to stop after the answer
    response_ids = lm.encode(ex.response) + ([int(end)] if end is not None else [])
    return TokenizedExample(ex.row, tuple(prompt_ids + response_ids), len(prompt_ids))


def tokenize_dataset(lm: LanguageModel, ds: Dataset, max_tokens: int = MAX_ROW_TOKENS) -> list[TokenizedExample]:
    """Every example tokenized and checked against ``max_tokens``.

    Raises:
        DatasetError: Naming the first row that is too long or has nothing to train on.
    """
    out = []
    for ex in ds.examples:
        t = tokenize_example(lm, ex, ds.kind)
        if len(t.ids) > max_tokens:
            raise DatasetError(f"Row {ex.row} is {len(t.ids)} tokens (chat template included); the limit is "
                               f"{max_tokens} tokens per example. Shorten it.")
        if t.n_trained < 1:
            raise DatasetError(f"Row {ex.row} has only one token: nothing to learn from. Write a longer example.")
        out.append(t)
    return out


def split_indices(n: int, seed: int = 0, fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """A seeded train/validation split of ``n`` examples: (train indices, validation indices), each sorted.

    With fewer than :data:`MIN_FOR_VALIDATION` examples every example is trained on and the validation set is empty.
    Otherwise ``round(fraction · n)`` examples (at least 1, at most 20) are held out.
    """
    if n < MIN_FOR_VALIDATION:
        return list(range(n)), []
    k = max(1, min(20, round(fraction * n)))
    order = list(range(n))
    random.Random(int(seed)).shuffle(order)
    return sorted(order[k:]), sorted(order[:k])


def typed_dataset(text: str) -> Dataset:
    """Examples typed into the page's box: one a line, like a ``.txt`` upload."""
    try:
        return parse_dataset("typed.txt", text.encode("utf-8"))
    except DatasetError as err:
        raise DatasetError(str(err).replace("The file has", "The box has").replace("The file is", "The box is")
                           .replace("Row ", "Line ")) from None


@dataclass(frozen=True)
class Prepared:
    """A dataset ready to train on: parsed, tokenized, checked and split.

    Attributes:
        dataset: The parsed rows.
        tokens: Each example's ids and mask, in file order.
        train_idx / val_idx: The seeded split (indices into ``tokens``).
    """

    dataset: Dataset
    tokens: tuple[TokenizedExample, ...]
    train_idx: tuple[int, ...]
    val_idx: tuple[int, ...]

    @property
    def train(self) -> list[TokenizedExample]:
        return [self.tokens[i] for i in self.train_idx]

    @property
    def val(self) -> list[TokenizedExample]:
        return [self.tokens[i] for i in self.val_idx]

    @property
    def val_examples(self) -> list[Example]:
        return [self.dataset.examples[i] for i in self.val_idx]

    @property
    def trained_tokens(self) -> int:
        """Tokens that count in the loss over the training split."""
        return sum(t.n_trained for t in self.train)

    def rows(self) -> list[dict]:
        """One dict per example for the page's table: row, split, prompt, text trained on, token counts."""
        held = set(self.val_idx)
        return [
            {"row": ex.row, "split": "validation" if i in held else "train", "prompt (masked)": ex.prompt,
             "trained on": ex.response, "tokens": len(t.ids), "tokens trained": t.n_trained}
            for i, (ex, t) in enumerate(zip(self.dataset.examples, self.tokens))
        ]


def prepare(lm: LanguageModel, name: str, data: bytes, seed: int = 0) -> Prepared:
    """Parse (an upload, ``"builtin:<key>"``, or ``"typed"`` lines), tokenize, check and split a dataset.

    Raises:
        DatasetError: With the message to show (the row or the problem).
    """
    if name.startswith("builtin:"):
        if name[8:] not in BUILT_INS:
            raise DatasetError("There is no built-in dataset of that name.")
        ds = load_built_in(name[8:])
    elif name == "typed":
        ds = typed_dataset(data.decode("utf-8", errors="replace"))
    else:
        ds = parse_dataset(name, data)
    tokens = tokenize_dataset(lm, ds)
    train, val = split_indices(len(tokens), seed)
    return Prepared(ds, tuple(tokens), tuple(train), tuple(val))


def token_pieces(lm: LanguageModel, t: TokenizedExample) -> tuple[list[str], list[int], list[bool]]:
    """An example's tokens for a chip view: (shown texts, ids, masked?) — masked tokens are read, not learned."""
    ids = list(t.ids)
    return [lm.token_text(i) for i in ids], ids, [k < max(1, t.n_masked) for k in range(len(ids))]


def held_out_probes(prepared: Prepared, limit: int = 5) -> list[tuple[str, str]]:
    """(probe, reference) pairs from the validation rows, never trained on.

    Prompt/response rows: the prompt and its response. Plain text: the first half of the line's words as the probe,
    the rest as the reference continuation.
    """
    out = []
    for ex in prepared.val_examples[:limit]:
        if prepared.dataset.kind == "chat":
            out.append((ex.prompt, ex.response))
            continue
        words = ex.response.split(" ")
        if len(words) < 2:
            continue
        cut = max(1, len(words) // 2)
        out.append((" ".join(words[:cut]), " " + " ".join(words[cut:])))
    return out


def default_probes(kind: str, builtin: str | None = None) -> tuple[str, str]:
    """The paraphrased and the unrelated probe a page starts with: the built-in dataset's, else generic ones."""
    if builtin in BUILT_INS:
        b = BUILT_INS[builtin]
        return b.paraphrase, b.unrelated
    return ("", "What is the capital of France?") if kind == "chat" else ("", "The capital of France is")
