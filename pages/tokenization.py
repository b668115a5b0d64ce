"""Tokenization: how text becomes the pieces (and ids) the model reads, on the model's own tokenizer.

The text tokenized is the prompt shared by every page (URL key ``prompt``).
"""

import pandas as pd
import streamlit as st

from components import caches
from components.display import cached_chart, csv_download, folded, show_error, tokenizer_chips
from components.figures.bars import byte_length_figure, comparison_figure
from components.figures.html import chips_html, wordpiece_chips_html
from components.figures.tables import tokens_table
from components.frame import ensure_frame, pending_shared_prompt
from components.inputs import cleaned, live_prompt_input, prompt_input
from components.model import require_lm
from components.state import switch_box, use_example
from engine import tokens as tok
from engine.loader import ModelLoadError
from engine.registry import ENCODER_DEFAULT_KEY
from engine.text import visible_whitespace

MULTI_KEY, EXAMPLE_KEY = "tok_multi", "tok_example"
EXAMPLES = {e.name: e for e in tok.EXAMPLES}

ensure_frame()
st.title("Tokenization")
st.markdown(
    "> **Tokenization**: splitting text into smaller pieces (tokens) that the model can process.\n\n"
    "In classic ML you would clean and vectorise your data first; for an LLM, **preprocessing becomes tokenization**. "
    "The model never sees letters: a tokenizer cuts the text into pieces from a fixed vocabulary and hands the model "
    "one **id** per piece. Everything below uses the real model's own tokenizer (byte-level BPE)."
)

lm = require_lm()
key = lm.key


# ------------------------------------------------------------------------------------------------ input
# The box holds the prompt shared by every page (URL key ``prompt``): what you type here is what Next-token,
# Attention and the other pages read, and a prompt typed there is tokenized here.
# A prompt with line breaks (carried from another page or a link) needs the multi-line box.
if "\n" in pending_shared_prompt():
    st.session_state[MULTI_KEY] = True

st.subheader("Type and watch the tokens")
st.caption(
    ":material/sync_alt: This box holds the prompt every page shares: a prompt typed on Home or Next-token is "
    "tokenized here, and what you type here is the prompt the other pages read."
)
st.pills(
    "Ready-made examples",
    list(EXAMPLES),
    key=EXAMPLE_KEY,
    on_change=use_example, args=({n: e.text for n, e in EXAMPLES.items()}, EXAMPLE_KEY, MULTI_KEY),
    help="Each example teaches something: compare how many tokens the same amount of text needs.",
)
box = st.container()
t1, t2, _ = st.columns([1, 1.6, 1.4])
with t1:
    multi = st.toggle(
        "Multi-line box",
        key=MULTI_KEY,
        on_change=switch_box, args=(MULTI_KEY,),
        bind="query-params",
        help="The one-line box updates as you type. The multi-line box accepts new lines and updates when you press "
        "Ctrl+Enter or click outside it.",
    )
with t2:
    show_markers = st.toggle(
        "Show whitespace & byte-level markers",
        key="tok_markers",
        bind="query-params",
        help="Show each token as stored in the vocabulary: Ġ is a leading space, Ċ a new line, ĉ a tab.",
    )
with box:
    if multi:
        text = prompt_input("Text (Ctrl+Enter to update)", height=130)
    else:
        text = live_prompt_input("Text (updates as you type)")

if not text:
    st.info("Type some text above, or pick an example, to see its tokens.", icon=":material/edit:")
else:
    result = caches.tokenize(key, text)
    stats = result.stats
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Characters", f"{stats.characters:,}", help=f"{stats.utf8_bytes:,} bytes of UTF-8")
    c2.metric("Words", f"{stats.words:,}", help="Runs of characters between spaces.")
    c3.metric("Tokens", f"{stats.tokens:,}")
    c4.metric("Characters per token", f"{stats.chars_per_token:.2f}")
    tokenizer_chips(result.pieces, show_markers)
    partial, special = result.partial_count, result.special_count
    legend = [
        "Hover a chip for its position, id and bytes. The small number is the id: the row of the embedding table "
        "the model looks up."
    ]
    if show_markers:
        legend.append(
            "**Ġ** = a space glued to the front of the token, **Ċ** = new line, **ĉ** = tab. The vocabulary stores "
            "every byte as one printable stand-in character, so non-English letters look garbled here (é is stored "
            "as Ã©): that is the raw entry, not an error."
        )
    if partial:
        legend.append(
            f"{partial} dashed chip(s) are **pieces of one character**: byte-level BPE works on UTF-8 bytes, so a "
            "character the vocabulary lacks is spelled with 2–4 byte tokens (shown as ⟨hex⟩)."
        )
    if special:
        legend.append(
            f"{special} dark chip(s) are **control tokens**: typed text that matches one becomes that single token."
        )
    if not stats.words and stats.tokens:
        legend.append("Whitespace is tokens too: the model reads every space and new line.")
    st.caption(" ".join(legend))
    lesson = next((e.lesson for e in tok.EXAMPLES if e.text == text), None)
    if lesson:
        st.info(lesson, icon=":material/lightbulb:")
    chars = caches.character_facts(key, text)
    if chars:
        st.markdown("**Characters of more than one byte**: what you see as one character, taken apart.")
        st.dataframe(pd.DataFrame([{
            "character": c.text, "code points": " + ".join(c.code_points), "names": " + ".join(c.names).lower(),
            "symbols (emoji)": c.symbols, "zero-width joiners": c.joiners, "UTF-8 bytes": c.utf8_bytes,
            "tokens on its own": c.tokens} for c in chars]), hide_index=True, width="stretch", key="tok_chars")
        joined = next((c for c in chars if c.joiners), None)
        st.caption(
            "Counted from your text: a character on screen (a *grapheme*) can be several Unicode code points, each "
            "1–4 bytes of UTF-8, and the tokenizer reads bytes."
            + (f" {joined.text} is {joined.symbols} symbol(s) glued by {joined.joiners} zero-width joiner(s): "
               f"{len(joined.code_points)} code points, {joined.utf8_bytes} bytes, {joined.tokens} tokens."
               if joined else "")
        )
    digits, digit_tokens = tok.digit_runs(result)
    if digits >= 4:
        note = f":material/pin: {digits} digits in this text take {digit_tokens} tokens"
        if caches.vocabulary_summary(key).multi_digit == 0:
            note += ": this vocabulary has no multi-digit entries, so the model sees numbers one digit at a time"
        st.caption(note + ".")
    with folded("Token table", "tok_table_open", ":material/table:") as is_open:
        if is_open:
            table = tokens_table(result.pieces)
            st.dataframe(table, hide_index=True, width="stretch")
            csv_download(table, "tokens.csv", key="tok_csv")
    st.caption(
        f"Round trip: decoding these {stats.tokens:,} ids gives back "
        + ("exactly the text you typed." if result.round_trip else "a different text (this is a bug).")
    )

# ------------------------------------------------------------------------------------------------ cost
st.subheader("Same meaning, different cost")
rows = caches.compare_texts(key, tok.PARALLEL)
english = rows[0]
worst = tok.most_expensive(rows)
st.markdown(
    "APIs bill **per token**, and the context window is counted **in tokens**. The same sentence in different "
    f"languages needs very different numbers of tokens: here from {english.stats.tokens} in English to "
    f"{worst.stats.tokens} in {worst.name} (**{worst.relative_tokens:.1f}×**). At the same price per token the "
    f"{worst.name} text costs {worst.relative_tokens:.1f}× as much, and this model's "
    f"{lm.info.context_length:,}-token window holds {english.fits_in_context:,} copies of the English sentence but "
    f"only {worst.fits_in_context:,} of the {worst.name} one."
)
cached_chart(("tok_languages", key), lambda: comparison_figure(rows), key="tok_languages")
table = pd.DataFrame(
    {
        "language": [r.name for r in rows],
        "text": [r.text for r in rows],
        "characters": [r.stats.characters for r in rows],
        "tokens": [r.stats.tokens for r in rows],
        "characters per token": [round(r.stats.chars_per_token, 2) for r in rows],
        "× English": [round(r.relative_tokens, 2) for r in rows],
        f"copies in {lm.info.context_length:,} tokens": [r.fits_in_context for r in rows],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
csv_download(table, "tokens_per_language.csv", key="tok_lang_csv")
st.caption(
    "Why: the tokenizer's merges were learned from its training text, mostly English and code. Frequent English "
    "words became single tokens; scripts it saw less stay split into short pieces or even single bytes."
)

# ------------------------------------------------------------------------------------------------ vocabulary
st.subheader("The vocabulary")
summary = caches.vocabulary_summary(key)
v1, v2, v3, v4 = st.columns(4)
v1.metric("Vocabulary size", f"{summary.size:,}", help="Rows of the embedding table and classes of the output layer.")
v2.metric("Control tokens", f"{len(summary.specials)}")
v3.metric("Start with a space", f"{summary.leading_space:,}", help="Word-start forms such as ' Paris' (Ġ).")
v4.metric("Multi-digit entries", f"{summary.multi_digit:,}", help=f"Single digits: {summary.single_digit}.")
st.markdown(
    f"The model can only ever read or write these {summary.size:,} pieces. Most words have two forms: with a "
    "leading space (the usual mid-sentence form) and without (start of a line). The first "
    f"{len(summary.specials)} ids are **control tokens** that structure chats and the code the model was trained on."
)
special_rows = pd.DataFrame(tok.control_token_rows(summary.specials, lm.info.eos_token),
                            columns=["id", "token", "role"])
with folded(f"The {len(summary.specials)} control tokens", "tok_specials_open", ":material/key:") as is_open:
    if is_open:
        st.dataframe(special_rows, hide_index=True, width="stretch")
        st.caption("A one-message chat, laid out with them exactly as the model reads it:")
        st.code(lm.chat_prompt([{"role": "user", "content": "Hi"}]), language=None, wrap_lines=True)

look_id, look_text = st.columns(2)
with look_id:
    token_id = st.number_input(
        "Look up a token id",
        min_value=0,
        max_value=lm.vocab_size - 1,
        value=7042,
        step=1,
        key="tok_id",
        bind="query-params",
    )
    info = tok.token_info(lm, int(token_id))
    st.markdown(
        f"Id **{info.token_id:,}** is `{info.text!r}`"
        + (" (a control token)" if info.special else "")
        + f"  \nStored as `{info.raw}` · bytes `{info.hex_bytes}`"
    )
with look_text:
    query = cleaned(st.text_input("…or find the id of a text", value="Paris", key="tok_find", max_chars=60,
                                  bind="query-params"), limit=60, quiet=True)
    if not query:
        st.caption("Type a word, e.g. Paris, to find its id.")
    else:
        found = tok.lookup_text(lm, query)
        if found.token_id is not None:
            st.markdown(f"`{query!r}` is **one token**: id **{found.token_id:,}**.")
        else:
            st.markdown(
                f"`{query!r}` is not one token; it splits into {len(found.pieces)}: "
                + " + ".join(f"`{p.text!r}` ({p.token_id})" for p in found.pieces)
            )
        forms = [f"`{v!r}` → {i:,}" if i is not None else f"`{v!r}` → not one token" for v, i in found.variants.items()]
        st.caption("Other spellings: " + " · ".join(forms))

lo, hi = tok.middle_half(summary.byte_length_counts)
st.markdown(
    f"**How long are the vocabulary's pieces?** Half of the entries are {lo} to {hi} bytes long: word pieces and "
    "short words, not whole sentences."
)
cached_chart(("tok_lengths", key), lambda: byte_length_figure(summary.byte_length_counts), key="tok_lengths")
longest = pd.DataFrame(
    [{"id": i, "entry (· = space, ↵ = new line)": visible_whitespace(t, spaces=True), "bytes": n}
     for i, t, n in tok.longest_entries(summary)]
)
with folded("The longest entries", "tok_longest_open", ":material/straighten:") as is_open:
    if is_open:
        st.dataframe(longest, hide_index=True, width="stretch")

# ------------------------------------------------------------------------------------------------ wordpiece
st.subheader("Another model, another tokenizer: WordPiece")
st.markdown(
    "Every model family brings its own tokenizer. BERT-family encoders (the Encoders page runs one, "
    "all-MiniLM-L6-v2) use **WordPiece**: the text is lower-cased (for this model), split into words, and each word "
    "into the longest pieces of its vocabulary; a piece that continues a word starts with `##`. `[CLS]` opens every "
    "text and `[SEP]` closes it, and a character it cannot spell becomes `[UNK]`: that information is lost. "
    f"{lm.info.name}'s **byte-level BPE** keeps case, glues a space to the next token and can spell anything from "
    "bytes. Here both cut the same text: your prompt from the box above."
)
if not text:
    st.info("Type some text in the box above to compare the two tokenizers.", icon=":material/edit:")
else:
    try:
        encoder = caches.encoder_model(ENCODER_DEFAULT_KEY)
        cmp = caches.tokenizer_comparison(ENCODER_DEFAULT_KEY, key, text)
    except ModelLoadError as err:
        st.warning(f"The encoder is not available: {err.reason} {err.fix}", icon=":material/warning:")
    except ValueError as err:
        show_error(err)
    else:
        w1, w2, w3, w4 = st.columns(4)
        w1.metric("Words", f"{cmp.words:,}", help="Runs of characters between spaces.")
        w2.metric("WordPiece tokens", f"{cmp.wordpiece_content:,}", help="Without [CLS] and [SEP].")
        w3.metric(f"BPE tokens ({lm.info.name})", f"{len(cmp.bpe):,}")
        w4.metric("[UNK] in WordPiece", f"{cmp.unknown:,}")
        st.markdown(f"**WordPiece ({encoder.info.name})**, {len(cmp.wordpiece):,} tokens with [CLS] and [SEP]:")
        st.html(wordpiece_chips_html(cmp.wordpiece, cmp.wordpiece_ids))
        st.markdown(f"**Byte-level BPE ({lm.info.name})**, {len(cmp.bpe):,} tokens (· is a space):")
        st.html(chips_html(cmp.bpe, cmp.bpe_ids, show_whitespace=True))
        st.caption(
            f"{cmp.continued} WordPiece token(s) continue a word (dashed, `##`). "
            + ("WordPiece lower-cased the text first: 'Paris' and 'paris' are the same to it. " if cmp.lowercased
               else "")
            + (f"It had no piece for {cmp.unknown} character run(s) and wrote [UNK]: the model never sees what was "
               "there. " if cmp.unknown else "")
            + "Token ids mean nothing across models: each has its own vocabulary."
        )
