"""Tokenization views: how text becomes token ids, what each id stands for, and what the vocabulary holds.

Everything here reads the model's own tokenizer (byte-level BPE for SmolLM2). Nothing is typed in by hand except the
example texts, and every count is recomputed from them.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import regex

from engine.lm import LanguageModel, byte_decoder


@dataclass(frozen=True)
class TokenPiece:
    """One token of a tokenized text.

    Attributes:
        index: Position in the sequence (0-based).
        token_id: Row of the embedding matrix.
        text: Readable text; a piece of a multi-byte character is shown as its bytes, e.g. ``⟨F0 9F⟩``.
        raw: The vocabulary entry as stored, with byte-level markers (``Ġ`` = leading space, ``Ċ`` = newline).
        n_bytes: How many bytes of UTF-8 text the token covers.
        special: Whether it is a control token such as ``<|im_end|>``.
    """

    index: int
    token_id: int
    text: str
    raw: str
    n_bytes: int
    special: bool

    @property
    def partial(self) -> bool:
        """True when the token is only part of a character (its bytes are not valid UTF-8 on their own)."""
        return "⟨" in self.text and not self.special


@dataclass(frozen=True)
class TextStats:
    """Counts for one text and its tokens."""

    characters: int
    words: int
    tokens: int
    utf8_bytes: int

    @property
    def chars_per_token(self) -> float:
        """Characters per token (higher = the tokenizer packs this text more efficiently)."""
        return self.characters / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class Tokenization:
    """A text, its tokens and its counts.

    Attributes:
        text: The text.
        pieces: Its tokens.
        stats: Characters, words, tokens, bytes.
        round_trip: Whether decoding the ids gives the text back exactly (byte-level BPE is lossless).
    """

    text: str
    pieces: list[TokenPiece]
    stats: TextStats
    round_trip: bool = True

    @property
    def ids(self) -> list[int]:
        return [p.token_id for p in self.pieces]

    @property
    def partial_count(self) -> int:
        """Tokens that are only part of one character (a few bytes of its UTF-8)."""
        return sum(p.partial for p in self.pieces)

    @property
    def special_count(self) -> int:
        """Control tokens (typed text that matched one)."""
        return sum(p.special for p in self.pieces)


def count_words(text: str) -> int:
    """Words as runs of non-space characters (Chinese and Japanese use no spaces, so a sentence counts as one)."""
    return len(text.split())


_SPECIALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def special_token_ids(lm: LanguageModel) -> dict[int, str]:
    """Every control token of the vocabulary, id → text (chat markers and the markers of the code training data).

    Read once per model under the model's tokenizer lock (a shared fast tokenizer must not be read while another
    thread changes its state), then remembered.
    """
    cached = _SPECIALS.get(lm)
    if cached is not None:
        return dict(cached)
    found: dict[int, str] = {}
    with getattr(lm, "_tok_lock", threading.RLock()):
        decoder = dict(getattr(lm.tokenizer, "added_tokens_decoder", None) or {})
    for token_id, token in decoder.items():
        if getattr(token, "special", True):
            found[int(token_id)] = str(token)
    for text, token_id in lm.special_tokens().items():
        found.setdefault(int(token_id), text)
    found = dict(sorted(found.items()))
    _SPECIALS[lm] = found
    return dict(found)


def tokenize(lm: LanguageModel, text: str) -> Tokenization:
    """Split ``text`` into the model's tokens (no BOS added, exactly what the model reads).

    Special-token text typed by the user (e.g. ``<|im_end|>``) becomes the control token, as it does in the model's
    own tokenizer; :attr:`TokenPiece.special` marks it.
    """
    ids = lm.encode(text) if text else []
    specials = special_token_ids(lm)
    pieces = []
    for i, token_id in enumerate(ids):
        special = token_id in specials
        pieces.append(
            TokenPiece(
                index=i,
                token_id=token_id,
                text=lm.token_text(token_id),
                raw=lm.raw_token(token_id),
                n_bytes=len(lm.token_bytes(token_id)),
                special=special,
            )
        )
    stats = TextStats(
        characters=len(text), words=count_words(text), tokens=len(ids), utf8_bytes=len(text.encode("utf-8", "replace"))
    )
    return Tokenization(text=text, pieces=pieces, stats=stats, round_trip=lm.decode(ids) == text)


@lru_cache(maxsize=1)
def _byte_encoder() -> dict[int, str]:
    """GPT-2's byte → printable character map (the inverse of :func:`engine.lm.byte_decoder`)."""
    return {b: ch for ch, b in byte_decoder().items()}


def byte_level_form(text: str) -> str:
    """How ``text`` would be spelled in the vocabulary: each UTF-8 byte as one printable character (space → ``Ġ``)."""
    table = _byte_encoder()
    return "".join(table[b] for b in text.encode("utf-8"))


@dataclass(frozen=True)
class TokenInfo:
    """Everything about one vocabulary entry."""

    token_id: int
    text: str
    raw: str
    hex_bytes: str
    special: bool


def token_info(lm: LanguageModel, token_id: int) -> TokenInfo:
    """Look up one id.

    Raises:
        ValueError: If the id is outside ``0 .. vocab_size - 1`` (message ready to show).
    """
    token_id = int(token_id)
    if not 0 <= token_id < lm.vocab_size:
        raise ValueError(f"Token ids run from 0 to {lm.vocab_size - 1:,}; {token_id:,} is not one of them.")
    raw = lm.raw_token(token_id)
    return TokenInfo(
        token_id=token_id,
        text=lm.token_text(token_id),
        raw=raw if raw is not None else "",
        hex_bytes=" ".join(f"{b:02X}" for b in lm.token_bytes(token_id)),
        special=token_id in special_token_ids(lm),
    )


@dataclass(frozen=True)
class TextLookup:
    """Reverse lookup: is a string one token, and if not, how does it split?

    Attributes:
        query: The text looked up.
        token_id: Its id when the exact string is one vocabulary entry, else ``None``.
        pieces: How the tokenizer splits it (one piece when it is a single token).
        variants: Related spellings (leading space, capitalisation) → their id, or ``None`` when not a single token.
    """

    query: str
    token_id: int | None
    pieces: list[TokenPiece]
    variants: dict[str, int | None]


def _single_id(lm: LanguageModel, text: str) -> int | None:
    specials = {v: k for k, v in special_token_ids(lm).items()}
    if text in specials:
        return specials[text]
    return lm.token_id(byte_level_form(text))


def lookup_text(lm: LanguageModel, text: str) -> TextLookup:
    """Find the id of an exact string, its common variants, and how it splits when it is not one token.

    Args:
        lm: The model.
        text: Any non-empty string; a leading space is significant (``" Paris"`` and ``"Paris"`` are different).
    """
    if not text:
        raise ValueError("Type some text to look up.")
    base = text.strip() or text
    candidates = [base, " " + base, base.capitalize(), " " + base.capitalize(), base.lower(), " " + base.lower()]
    variants: dict[str, int | None] = {}
    for v in candidates:
        if v != text and v not in variants:
            variants[v] = _single_id(lm, v)
    return TextLookup(query=text, token_id=_single_id(lm, text), pieces=tokenize(lm, text).pieces, variants=variants)


@dataclass(frozen=True)
class VocabSummary:
    """What the vocabulary holds, counted from the tokenizer itself."""

    size: int
    specials: dict[int, str]
    leading_space: int  # entries that start with a space (Ġ): the word-start forms
    single_digit: int  # the ten digits; numbers are spelled digit by digit when no longer entry exists
    multi_digit: int  # entries made only of two or more digits
    byte_length_counts: dict[int, int]  # UTF-8 length in bytes → number of entries (specials excluded)
    longest: list[tuple[int, str]]  # a few of the longest entries (id, readable text)


def vocabulary_summary(lm: LanguageModel, longest: int = 8) -> VocabSummary:
    """Count what kinds of entries the vocabulary holds (one pass over all ``V`` entries, ~0.3 s)."""
    specials = special_token_ids(lm)
    lengths: Counter[int] = Counter()
    leading = single = multi = 0
    sized: list[tuple[int, int]] = []
    for token_id in range(lm.vocab_size):
        if token_id in specials:
            continue
        raw = lm.raw_token(token_id)
        if raw is None:
            continue
        data = lm.token_bytes(token_id)
        lengths[len(data)] += 1
        sized.append((len(data), token_id))
        if data.startswith(b" "):
            leading += 1
        if data.isdigit():
            if len(data) == 1:
                single += 1
            else:
                multi += 1
    sized.sort(reverse=True)
    return VocabSummary(
        size=lm.vocab_size,
        specials=specials,
        leading_space=leading,
        single_digit=single,
        multi_digit=multi,
        byte_length_counts=dict(sorted(lengths.items())),
        longest=[(i, lm.token_text(i)) for _, i in sized[:longest]],
    )


def middle_half(counts: dict[int, int]) -> tuple[int, int]:
    """The 25th and 75th percentile of a length histogram (length → count): where half of the entries lie."""
    total = sum(counts.values())
    lo = hi = None
    seen = 0
    for length, n in sorted(counts.items()):
        seen += n
        if lo is None and seen >= total * 0.25:
            lo = length
        if hi is None and seen >= total * 0.75:
            hi = length
    return (lo or 0, hi or 0)


# ------------------------------------------------------------------------------------------------ examples
@dataclass(frozen=True)
class Example:
    """A ready-made text and the lesson it teaches."""

    name: str
    text: str
    lesson: str


EXAMPLES: tuple[Example, ...] = (
    Example(
        "English prose",
        "Large language models read text as tokens: common words are a single token, rarer words are split into "
        "pieces.",
        "Common English words are one token each, usually with their leading space glued on.",
    ),
    Example(
        "Russian (Cyrillic)",
        "Большие языковые модели читают текст как последовательность токенов.",
        "The same idea in Cyrillic costs several times more tokens: the vocabulary was learned mostly from English.",
    ),
    Example(
        "Japanese",
        "大規模言語モデルはテキストをトークンの列として読みます。",
        "Many characters become two or three byte-level tokens each; a ⟨..⟩ chip is a piece of one character.",
    ),
    Example(
        "Emoji",
        "I love 🍕 and 🚀! 👩‍💻 is one emoji on screen.",
        "What looks like one character can be several code points and many bytes, and so several tokens: the table "
        "of characters below counts them from the text.",
    ),
    Example(
        "Numbers",
        "In 2024 the price rose from $1,234.56 to $98,765.43 (an increase of 7900%).",
        "This tokenizer spells numbers digit by digit, one reason small models struggle with arithmetic.",
    ),
    Example(
        "Code",
        'def greet(name):\n    """Say hello."""\n    return f"Hello, {name}!"\n',
        "Indentation and newlines are tokens too; runs of spaces get their own vocabulary entries.",
    ),
    Example(
        "Special tokens",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "Typed special-token text becomes a control token: this is how a chat is laid out for the model.",
    ),
)

#: One sentence in several languages and scripts, to compare what the same meaning costs in tokens.
PARALLEL: tuple[tuple[str, str], ...] = (
    ("English", "The weather is nice today, so we are going to the park."),
    ("French", "Il fait beau aujourd'hui, alors nous allons au parc."),
    ("German", "Das Wetter ist heute schön, also gehen wir in den Park."),
    ("Russian", "Сегодня хорошая погода, поэтому мы идём в парк."),
    ("Greek", "Ο καιρός είναι ωραίος σήμερα, οπότε πάμε στο πάρκο."),
    ("Japanese", "今日は天気がいいので、公園に行きます。"),
    ("Chinese", "今天天气很好，所以我们去公园。"),
    ("Hindi", "आज मौसम अच्छा है, इसलिए हम पार्क जा रहे हैं।"),
)


@dataclass(frozen=True)
class ComparisonRow:
    """Token counts of one text, relative to a reference text."""

    name: str
    text: str
    stats: TextStats
    relative_tokens: float  # tokens / reference tokens
    fits_in_context: int  # how many copies fit in the context window


def compare_texts(lm: LanguageModel, items: Sequence[tuple[str, str]], reference: int = 0) -> list[ComparisonRow]:
    """Tokenize several texts and compare each one's token count with ``items[reference]``.

    Args:
        lm: The model.
        items: (name, text) pairs, texts non-empty.
        reference: Index of the text the others are compared with.
    """
    stats = [tokenize(lm, text).stats for _, text in items]
    ref_tokens = max(stats[reference].tokens, 1) if stats else 1
    window = lm.info.context_length
    return [
        ComparisonRow(
            name=name,
            text=text,
            stats=s,
            relative_tokens=s.tokens / ref_tokens,
            fits_in_context=window // s.tokens if s.tokens else 0,
        )
        for (name, text), s in zip(items, stats)
    ]


_DIGITS = re.compile(r"\d+")


def digit_runs(tok: Tokenization) -> tuple[int, int]:
    """(number of digit characters in the text, number of tokens that contain a digit)."""
    digits = sum(len(m) for m in _DIGITS.findall(tok.text))
    # Byte pieces are shown as hex (⟨E8 A6⟩) and control tokens as names: neither holds a digit of the text.
    return digits, sum(1 for p in tok.pieces if not (p.partial or p.special) and any(ch.isdigit() for ch in p.text))


def most_expensive(rows: Sequence[ComparisonRow]) -> ComparisonRow:
    """The row that needs the most tokens relative to the reference (first of equals)."""
    return max(rows, key=lambda r: r.relative_tokens)


#: What each chat control token does (the others mark structure in the code and notebook training data).
CONTROL_ROLES: dict[str, str] = {
    "<|im_start|>": "starts a chat turn; the role (system, user, assistant) follows",
    "<|im_end|>": "ends a chat turn",
    "<|endoftext|>": "separates documents in the training data",
}


def control_token_rows(specials: dict[int, str], eos_token: str | None) -> list[tuple[int, str, str]]:
    """``(id, token, role)`` of every control token, the end-of-sequence one marked."""
    return [
        (i, t, CONTROL_ROLES.get(t, "marks structure in the code and notebook training data")
         + ("; it is the end-of-sequence token: generation stops here" if t == eos_token else ""))
        for i, t in specials.items()
    ]


def longest_entries(summary: VocabSummary) -> list[tuple[int, str, int]]:
    """``(id, readable text, UTF-8 bytes)`` of the vocabulary's longest entries."""
    return [(i, t, len(t.encode("utf-8"))) for i, t in summary.longest]


# ------------------------------------------------------------------------------------------------ characters
ZWJ = "\u200d"  # ZERO WIDTH JOINER: glues emoji into one picture


@dataclass(frozen=True)
class Grapheme:
    """One character as a reader sees it (a Unicode extended grapheme cluster), counted from the string.

    Attributes:
        text: The cluster.
        code_points: Its code points, e.g. ``("U+1F469", "U+200D", "U+1F4BB")``.
        names: Their Unicode names.
        utf8_bytes: Bytes of UTF-8.
        joiners: Zero-width joiners inside it.
        symbols: Code points that are pictures or symbols (Unicode category ``So``: emoji are among them).
        tokens: Tokens the model's tokenizer uses for the cluster on its own.
    """

    text: str
    code_points: tuple[str, ...]
    names: tuple[str, ...]
    utf8_bytes: int
    joiners: int
    symbols: int
    tokens: int


def graphemes(text: str) -> list[str]:
    """``text`` cut into what a reader sees as characters (extended grapheme clusters, Unicode UAX #29)."""
    return regex.findall(r"\X", text)


def character_facts(lm: LanguageModel, text: str, limit: int = 12) -> list[Grapheme]:
    """The characters of ``text`` that are more than one byte: what each is made of, and what it costs in tokens.

    Args:
        lm: The model (its tokenizer counts the tokens).
        text: Any text.
        limit: Most distinct characters returned, in order of first appearance.
    """
    out: list[Grapheme] = []
    seen: set[str] = set()
    for g in graphemes(text):
        data = g.encode("utf-8", "replace")
        if len(data) < 2 or g in seen:
            continue
        seen.add(g)
        out.append(Grapheme(
            text=g,
            code_points=tuple(f"U+{ord(c):04X}" for c in g),
            names=tuple(unicodedata.name(c, f"U+{ord(c):04X}") for c in g),
            utf8_bytes=len(data),
            joiners=g.count(ZWJ),
            symbols=sum(unicodedata.category(c) == "So" for c in g),
            tokens=len(lm.encode(g)),
        ))
        if len(out) >= limit:
            break
    return out
