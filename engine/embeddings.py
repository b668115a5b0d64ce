"""Embeddings: the model's input lookup table, similarities, projections, neighbours, analogies and contextual vectors.

The input embedding matrix ``E`` has shape ``[V, D]`` (49,152 × 576 for SmolLM2-135M): token id ``i`` is turned into
the vector ``E[i]`` before the first layer. SmolLM2 ties it to the output layer, so the same rows also score the next
token. Contextual vectors are the residual stream (``hidden_states``) at a word's position after each layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.lm import LanguageModel
from engine.text import token_label
from engine.tokens import special_token_ids

#: Most words a word list may hold (a heatmap beyond this is unreadable).
MAX_WORDS = 40
#: Longest sentence (in tokens) the contextual view runs through the model.
MAX_SENTENCE_TOKENS = 128
#: Most tokens of a prompt compared with each other layer by layer (a heatmap beyond this is unreadable).
MAX_PROMPT_TOKENS = 48


def embedding_matrix(lm: LanguageModel) -> torch.Tensor:
    """The model's input embedding table ``[V, D]`` (the real weights, read-only: never modify it)."""
    return lm.model.get_input_embeddings().weight.detach()


def is_tied(lm: LanguageModel) -> bool:
    """Whether the output layer (``lm_head``) shares its storage with the input embeddings."""
    out = lm.model.get_output_embeddings()
    return out is not None and out.weight.data_ptr() == embedding_matrix(lm).data_ptr()


@dataclass(frozen=True)
class TableSummary:
    """The embedding table's size and share of the model, read from the weights.

    Attributes:
        rows: ``V``, one row per vocabulary entry.
        dims: ``D``, numbers per token.
        numbers: ``V × D``.
        share: ``numbers`` / all parameters of the model.
        tied: Whether the output layer reuses the same table.
    """

    rows: int
    dims: int
    numbers: int
    share: float
    tied: bool


def table_summary(lm: LanguageModel) -> TableSummary:
    """Shape of the embedding table, its share of the parameters and whether it is tied to the output layer."""
    V, D = embedding_matrix(lm).shape
    return TableSummary(rows=V, dims=D, numbers=V * D, share=V * D / lm.info.parameters, tied=is_tied(lm))


# ------------------------------------------------------------------------------------------------ words → vectors
@dataclass(frozen=True)
class VectorSummary:
    """A few facts about one vector: its length, its range and its ``top`` largest dimensions (by magnitude)."""

    length: float
    low: float
    high: float
    top_dims: tuple[int, ...]


def vector_summary(vector: torch.Tensor, top: int = 3) -> VectorSummary:
    """Summarise a ``[D]`` vector: length, smallest and largest value, dimensions with the largest magnitude."""
    v = vector.double()  # [D]
    order = torch.argsort(v.abs(), descending=True, stable=True)[: max(0, int(top))]
    return VectorSummary(float(v.norm()), float(v.min()), float(v.max()), tuple(int(i) for i in order))


@dataclass(frozen=True)
class WordVector:
    """A word turned into one vector via the embedding table.

    Attributes:
        word: The word as typed.
        form: The exact text tokenized (with a leading space when the mid-sentence form is used).
        ids: Its token ids (several when the tokenizer splits it).
        pieces: The readable text of each token.
        vector: ``[D]`` the embedding row, or the mean of the rows when the word is several tokens.
    """

    word: str
    form: str
    ids: list[int]
    pieces: list[str]
    vector: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    def rows(self, lm: LanguageModel) -> tuple[np.ndarray, list[str]]:
        """The table rows of the word's tokens, plus their average when there are several, with a label each.

        Returns:
            ``[n, D]`` (or ``[n + 1, D]`` with the average last) and the labels.
        """
        rows = embedding_matrix(lm)[self.ids].float().numpy()  # [n, D]
        if self.n_tokens == 1:
            return rows, list(self.pieces)
        return np.vstack([rows, self.vector.float().numpy()[None, :]]), [*self.pieces, "average"]  # [n + 1, D]

    def summary(self, top: int = 3) -> VectorSummary:
        """Length, smallest and largest value, and the dimensions of largest magnitude of :attr:`vector`."""
        return vector_summary(self.vector, top)

    @property
    def label(self) -> str:
        """Hover/axis label, marked with the number of tokens when the word was split."""
        return self.word if self.n_tokens == 1 else f"{self.word} ({self.n_tokens} tokens)"


def word_vector(lm: LanguageModel, word: str, leading_space: bool = True) -> WordVector:
    """Embed one word: its token row, or the mean of its token rows when the tokenizer splits it.

    Args:
        lm: The model.
        word: A word or short phrase.
        leading_space: Embed the mid-sentence form ``" word"`` (how a word usually appears), not ``"word"``.

    Raises:
        ValueError: If ``word`` is empty.
    """
    word = word.strip()
    if not word:
        raise ValueError("The word is empty.")
    form = " " + word if leading_space else word
    ids = lm.encode(form)
    rows = embedding_matrix(lm)[ids]  # [n, D]
    return WordVector(word=word, form=form, ids=ids, pieces=lm.token_texts(ids), vector=rows.mean(dim=0))


def parse_words(text: str, limit: int = MAX_WORDS) -> tuple[list[str], list[str]]:
    """Split a word list on commas and new lines, drop blanks and repeats, keep at most ``limit``.

    Returns:
        The words and short notices about what was dropped.
    """
    notes: list[str] = []
    words: list[str] = []
    seen: set[str] = set()
    for part in re.split(r"[,\n;]", text or ""):
        w = " ".join(part.split())[:40]
        if w and w not in seen:
            seen.add(w)
            words.append(w)
    if len(words) > limit:
        notes.append(f"Only the first {limit} words are used (you gave {len(words)}).")
        words = words[:limit]
    return words, notes


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """``[N, N]`` cosine similarity of ``N`` vectors ``[N, D]`` (1 = same direction, 0 = unrelated)."""
    unit = torch.nn.functional.normalize(vectors.float(), dim=-1)  # [N, D]
    return unit @ unit.T


# ------------------------------------------------------------------------------------------------ projection
@dataclass(frozen=True)
class Projection:
    """Low-dimensional coordinates for plotting.

    Attributes:
        coords: ``[N, dims]`` positions.
        method: ``"pca"`` or ``"tsne"``.
        explained: For PCA, the share of the variance each axis keeps (sums to at most 1); else ``None``.
    """

    coords: np.ndarray
    method: str
    explained: list[float] | None


def project(vectors: torch.Tensor, method: str = "pca", dims: int = 2, seed: int = 0) -> Projection:
    """Project ``[N, D]`` vectors to 2 or 3 dimensions.

    PCA keeps the directions of largest variance (linear, distances along those axes are meaningful). t-SNE keeps
    each point's neighbours close and can show clusters PCA hides, but its distances between clusters mean little.

    Raises:
        ValueError: With fewer than 2 points (PCA) or 5 points (t-SNE).
    """
    dims = 3 if dims == 3 else 2
    x = vectors.double()
    n = x.shape[0]
    if method == "tsne":
        if n < 5:
            raise ValueError("t-SNE needs at least 5 points; add words or use PCA.")
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        # Exact t-SNE is O(N²) but, for the few hundred points a page shows, several times faster than Barnes-Hut
        # on 2 busy cores (measured: 120 points in 3D, 1.9 s exact vs 47 s Barnes-Hut).
        coords = TSNE(
            n_components=dims,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            metric="cosine",
            method="exact" if n <= 500 else "barnes_hut",
            max_iter=500,
        ).fit_transform(x.numpy())
        return Projection(coords=np.asarray(coords, dtype=float), method="tsne", explained=None)
    if n < 2:
        raise ValueError("A projection needs at least 2 words.")
    centred = x - x.mean(dim=0, keepdim=True)  # [N, D]
    _u, s, vh = torch.linalg.svd(centred, full_matrices=False)  # s: [min(N, D)], vh: [min(N, D), D]
    k = min(dims, vh.shape[0])
    coords = (centred @ vh[:k].T).numpy()  # [N, k]
    if k < dims:  # N points span at most N-1 directions: pad with zeros
        coords = np.hstack([coords, np.zeros((n, dims - k))])
    var = s**2
    total = float(var.sum()) or 1.0
    explained = [float(v) / total for v in var[:k]] + [0.0] * (dims - k)
    return Projection(coords=coords, method="pca", explained=explained)


# ------------------------------------------------------------------------------------------------ neighbours
@dataclass(frozen=True)
class Neighbour:
    """A vocabulary entry close to a query vector."""

    rank: int
    token_id: int
    text: str
    cosine: float


def _normal(text: str) -> str:
    return text.strip().lower()


def vocab_cosines(lm: LanguageModel, vector: torch.Tensor) -> torch.Tensor:
    """``[V]`` cosine similarity between ``vector`` ``[D]`` and every row of the embedding table."""
    emb = embedding_matrix(lm)  # [V, D]
    norms = emb.norm(dim=1)  # [V]
    return (emb @ vector.float()) / (norms * vector.float().norm() + 1e-8)


def _excluded_mask(lm: LanguageModel, exclude_ids: Sequence[int], exclude_words: Sequence[str]) -> torch.Tensor:
    """``[V]`` True for entries to skip: given ids, control tokens and spellings of the excluded words."""
    mask = torch.zeros(lm.vocab_size, dtype=torch.bool)
    for i in list(exclude_ids) + list(special_token_ids(lm)):
        if 0 <= int(i) < lm.vocab_size:
            mask[int(i)] = True
    for w in {_normal(w) for w in exclude_words if w.strip()}:
        # The same word with or without a leading space, in lower, Title and UPPER case.
        for variant in {w, w.capitalize(), w.upper(), w.title()}:
            for form in (variant, " " + variant):
                ids = lm.encode(form)
                if len(ids) == 1:
                    mask[ids[0]] = True
    return mask


def nearest_tokens(
    lm: LanguageModel,
    vector: torch.Tensor,
    k: int = 10,
    exclude_ids: Sequence[int] = (),
    exclude_words: Sequence[str] = (),
) -> list[Neighbour]:
    """The ``k`` vocabulary entries whose embeddings point most nearly the same way as ``vector``.

    Args:
        lm: The model.
        vector: ``[D]`` query vector.
        k: How many to return (1..100).
        exclude_ids: Token ids to leave out (e.g. the query's own tokens).
        exclude_words: Words whose single-token spellings (any case, with or without leading space) are left out.
    """
    k = max(1, min(int(k), 100))
    sims = vocab_cosines(lm, vector).clone()  # [V]
    sims[_excluded_mask(lm, exclude_ids, exclude_words)] = -2.0
    top = torch.topk(sims, k)
    return [
        Neighbour(rank=r + 1, token_id=int(i), text=lm.token_text(int(i)), cosine=float(c))
        for r, (c, i) in enumerate(zip(top.values, top.indices))
    ]


# ------------------------------------------------------------------------------------------------ analogies
@dataclass(frozen=True)
class AnalogyResult:
    """``a − b + c`` and an honest verdict.

    Attributes:
        words: The three word vectors (a, b, c).
        neighbours: Nearest entries to ``a − b + c``, the input words excluded.
        baseline: Nearest entries to ``c`` alone (same exclusions): if the answer is the same, the arithmetic did
            little.
        expected: The answer the user hoped for, if given.
        expected_rank: Its rank near ``a − b + c`` (1 = top), or ``None`` when it is not one token / not given.
        expected_rank_baseline: Its rank near ``c`` alone.
        quality: ``"good"``, ``"weak"`` or ``"poor"``.
        verdict: One or two plain sentences explaining the quality.
    """

    words: tuple[WordVector, WordVector, WordVector]
    neighbours: list[Neighbour]
    baseline: list[Neighbour]
    expected: str | None
    expected_rank: int | None
    expected_rank_baseline: int | None
    quality: str
    verdict: str


def _rank_of(sims: torch.Tensor, mask: torch.Tensor, token_id: int) -> int:
    """1-based rank of ``token_id`` among the entries not masked out."""
    allowed = sims.masked_fill(mask, -2.0)
    return int((allowed > allowed[token_id]).sum()) + 1


def analogy(
    lm: LanguageModel, a: str, b: str, c: str, k: int = 10, expected: str | None = None, leading_space: bool = True
) -> AnalogyResult:
    """Solve "``b`` is to ``a`` as ``c`` is to ?" with ``a − b + c`` (e.g. king − man + woman).

    The input words are excluded from the answers (otherwise ``a`` or ``c`` usually wins), and the result is compared
    with the nearest words to ``c`` alone, so the page can say when the arithmetic added nothing.

    Raises:
        ValueError: If a word is empty.
    """
    wa, wb, wc = (word_vector(lm, w, leading_space) for w in (a, b, c))
    query = wa.vector - wb.vector + wc.vector  # [D]
    inputs = [wa.word, wb.word, wc.word]
    exclude_ids = wa.ids + wb.ids + wc.ids
    neighbours = nearest_tokens(lm, query, k, exclude_ids, inputs)
    baseline = nearest_tokens(lm, wc.vector, k, exclude_ids, inputs)
    top_cos = neighbours[0].cosine
    rank = rank_base = None
    expected = (expected or "").strip() or None
    exp_id = None
    if expected:
        ids = lm.encode((" " if leading_space else "") + expected)
        exp_id = ids[0] if len(ids) == 1 else None
    if exp_id is not None:
        mask = _excluded_mask(lm, exclude_ids, inputs)
        rank = _rank_of(vocab_cosines(lm, query), mask, exp_id)
        rank_base = _rank_of(vocab_cosines(lm, wc.vector), mask, exp_id)
    split = [w.word for w in (wa, wb, wc) if w.n_tokens > 1]
    notes = []
    if split:
        notes.append(
            f"{', '.join(split)} split into several tokens, so their vectors are averages of pieces; "
            "expect a worse result."
        )
    if rank is not None:
        if rank == 1:
            quality, verdict = "good", f"'{expected}' is the top answer."
        elif rank <= 5:
            quality, verdict = "weak", f"'{expected}' is only number {rank}."
        else:
            quality, verdict = "poor", f"'{expected}' is only number {rank:,} of {lm.vocab_size:,}: the analogy failed."
        if rank_base is not None and rank_base <= rank:
            quality = "poor" if quality != "good" else "weak"
            verdict += f" Near '{wc.word}' alone it is already number {rank_base:,}: the arithmetic did not help."
        elif rank_base is not None:
            verdict += f" (Near '{wc.word}' alone it is number {rank_base:,}, so a − b moved it up.)"
    elif expected:
        quality = "weak" if top_cos >= 0.5 else "poor"
        verdict = f"'{expected}' is not a single token, so its rank cannot be checked."
    elif neighbours[0].token_id == baseline[0].token_id:
        quality = "weak"
        verdict = (
            f"The top answer is also the word nearest to '{wc.word}' on its own: the a − b part may have added little."
        )
    elif top_cos < 0.45:
        quality, verdict = "poor", f"The best match has cosine {top_cos:.2f}: no vocabulary entry fits well."
    else:
        quality, verdict = "good", f"The best match has cosine {top_cos:.2f} and differs from the word nearest to c."
    if notes:
        verdict += " " + " ".join(notes)
        if quality == "good":
            quality = "weak"
    return AnalogyResult(
        words=(wa, wb, wc),
        neighbours=neighbours,
        baseline=baseline,
        expected=expected,
        expected_rank=rank,
        expected_rank_baseline=rank_base,
        quality=quality,
        verdict=verdict,
    )


# ------------------------------------------------------------------------------------------------ contextual
def locate_word(lm: LanguageModel, sentence: str, word: str) -> tuple[list[int], list[int]]:
    """Token ids of ``sentence`` and the positions of the tokens that spell the first whole-word ``word`` in it.

    The match ignores case. Positions come from the exact bytes of each token (byte-level BPE is lossless), so a
    word split over several tokens gets all of them.

    Returns:
        ``(ids, positions)``; positions is empty when the word is not in the sentence.
    """
    ids = lm.encode(sentence)
    word = word.strip()
    if not word:
        return ids, []
    m = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", sentence, flags=re.IGNORECASE)
    if m is None:
        return ids, []
    start = len(sentence[: m.start()].encode("utf-8"))  # byte span of the word
    end = len(sentence[: m.end()].encode("utf-8"))
    positions, offset = [], 0
    for pos, token_id in enumerate(ids):
        n = len(lm.token_bytes(token_id))
        lo, hi = offset, offset + n
        # A token overlaps the word if it covers any of its bytes (a leading space alone does not count).
        if lo < end and hi > start:
            positions.append(pos)
        offset = hi
    return ids, positions


@dataclass(frozen=True)
class ContextSentence:
    """One sentence of the contextual view."""

    text: str
    group: int  # 0 = meaning A, 1 = meaning B
    ids: list[int]
    positions: list[int]  # the word's token positions
    pieces: list[str]  # readable text of the word's tokens


@dataclass(frozen=True)
class ContextualResult:
    """The same word's vector in several sentences, after every layer.

    Attributes:
        word: The word.
        sentences: The sentences that were used.
        skipped: (sentence, reason) for sentences that could not be used.
        vectors: ``[L+1, S, D]`` the residual stream at the word's last token (entry 0 = the embedding lookup, the
            last entry is after the final norm).
        sims: ``[L+1, S, S]`` cosine similarity between sentences at each layer.
    """

    word: str
    sentences: list[ContextSentence]
    skipped: list[tuple[str, str]]
    vectors: torch.Tensor
    sims: torch.Tensor

    @property
    def layers(self) -> int:
        """Number of layer entries (embeddings + one per transformer block)."""
        return int(self.sims.shape[0])

    def group_curves(self) -> dict[str, np.ndarray]:
        """Mean similarity per layer within meaning A, within meaning B and across the two (``[L+1]`` each)."""
        groups = np.array([s.group for s in self.sentences])
        sims = self.sims.numpy()
        n = len(groups)
        iu = np.triu_indices(n, k=1)
        out: dict[str, np.ndarray] = {}
        for name, sel in (
            ("within A", (groups[iu[0]] == 0) & (groups[iu[1]] == 0)),
            ("within B", (groups[iu[0]] == 1) & (groups[iu[1]] == 1)),
            ("across A and B", groups[iu[0]] != groups[iu[1]]),
        ):
            if sel.any():
                out[name] = sims[:, iu[0][sel], iu[1][sel]].mean(axis=1)
        return out

    def gap(self, layer: int) -> ContextGap | None:
        """Same-meaning vs different-meaning similarity at ``layer``, and the layer where they differ most; ``None``
        unless both meanings have sentences."""
        curves = self.group_curves()
        across = curves.get("across A and B")
        within_curves = [v for n, v in curves.items() if n != "across A and B"]
        if across is None or not within_curves:
            return None
        within = np.mean(within_curves, axis=0)  # [L+1]
        gap = within - across  # [L+1]
        best = int(np.argmax(gap))
        return ContextGap(layer, float(within[layer]), float(across[layer]), float(gap[layer]), best, float(gap[best]))


@dataclass(frozen=True)
class ContextGap:
    """How far apart the two meanings are at one layer.

    Attributes:
        layer: The layer asked about.
        within: Mean cosine between uses of the same meaning there (average of the within-A and within-B curves).
        across: Mean cosine between uses of different meanings there.
        gap: ``within - across``.
        best_layer: The layer with the largest gap.
        best_gap: That gap.
    """

    layer: int
    within: float
    across: float
    gap: float
    best_layer: int
    best_gap: float


def contextual_vectors(
    lm: LanguageModel, word: str, sentences_a: Sequence[str], sentences_b: Sequence[str]
) -> ContextualResult:
    """Run each sentence through the model and collect ``word``'s vector after every layer.

    The vector is taken at the word's *last* token: in a left-to-right model only that token has seen the whole word.
    Sentences are skipped (with a reason) when the word is missing, when it is the very first token (the first
    position is the model's "attention sink" with huge activations, so its vector is not comparable) or when the
    sentence is longer than :data:`MAX_SENTENCE_TOKENS`.

    Raises:
        ValueError: If the word is empty or fewer than two sentences are usable.
    """
    word = " ".join(word.split())
    if not word:
        raise ValueError("Type the word to follow through the layers.")
    used: list[ContextSentence] = []
    skipped: list[tuple[str, str]] = []
    per_sentence: list[torch.Tensor] = []
    for group, sentences in ((0, sentences_a), (1, sentences_b)):
        for sentence in sentences:
            ids, positions = locate_word(lm, sentence, word)
            if not positions:
                skipped.append((sentence, f"'{word}' is not in it as a whole word."))
                continue
            if len(ids) > MAX_SENTENCE_TOKENS:
                skipped.append((sentence, f"longer than {MAX_SENTENCE_TOKENS} tokens."))
                continue
            if positions[-1] == 0:
                skipped.append((sentence, "the word is the first token: put another word before it."))
                continue
            hs = lm.forward(ids, hidden_states=True).hidden_states  # [L+1, T, D]
            per_sentence.append(hs[:, positions[-1]])  # [L+1, D]
            used.append(ContextSentence(sentence, group, ids, positions, lm.token_texts([ids[p] for p in positions])))
    if len(used) < 2:
        raise ValueError(f"At least two sentences must contain '{word}' (not as their first word) to compare.")
    vectors = torch.stack(per_sentence, dim=1).float()  # [L+1, S, D]
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    sims = unit @ unit.transpose(1, 2)  # [L+1, S, S]
    return ContextualResult(word=word, sentences=used, skipped=skipped, vectors=vectors, sims=sims)


def split_sentences(text: str, limit: int = 6) -> list[str]:
    """One sentence per non-empty line, at most ``limit``."""
    return [" ".join(line.split()) for line in (text or "").splitlines() if line.strip()][:limit]


# ------------------------------------------------------------------------------------------------ a word list's map
@dataclass(frozen=True)
class WordMap:
    """A word list's vectors, their similarities and a projection (optionally with neighbours added).

    Attributes:
        words: The user's words as vectors.
        sims: ``[N, N]`` cosine similarity between the user's words.
        labels: One label per projected point (user words first, then neighbours).
        groups: Per point, ``"your words"`` or ``"near <word>"``.
        projection: The 2D/3D coordinates of every point.
    """

    words: list[WordVector]
    sims: np.ndarray
    labels: list[str]
    groups: list[str]
    projection: Projection

    def extremes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Positions of the most similar pair of different words and of the least similar pair."""
        off = self.sims + np.diag(np.full(len(self.words), -np.inf))  # [N, N], the diagonal left out
        best = np.unravel_index(np.argmax(off), off.shape)
        worst = np.unravel_index(np.argmin(self.sims), self.sims.shape)
        return (int(best[0]), int(best[1])), (int(worst[0]), int(worst[1]))


def word_map(
    lm: LanguageModel, words: Sequence[str], leading_space: bool, method: str = "pca", dims: int = 2, extra: int = 0
) -> WordMap:
    """Vectors, cosine matrix and projection for a word list.

    Args:
        lm: The model.
        words: The user's words (non-empty).
        leading_space: Embed the mid-sentence form of each word.
        method: ``"pca"`` or ``"tsne"``.
        dims: 2 or 3.
        extra: Add each word's ``extra`` nearest vocabulary entries to the projection (0 = none).

    Raises:
        ValueError: When the projection cannot be made (too few points); the message is ready to show.
    """
    vectors = [word_vector(lm, w, leading_space) for w in words]
    stacked = torch.stack([v.vector for v in vectors])  # [N, D]
    labels = [v.label for v in vectors]
    groups = ["your words"] * len(vectors)
    points = [stacked]
    if extra > 0:
        taken = {i for v in vectors for i in v.ids}
        table = embedding_matrix(lm)
        for v in vectors:
            for n in nearest_tokens(lm, v.vector, extra, exclude_ids=sorted(taken), exclude_words=words):
                taken.add(n.token_id)
                labels.append(token_label(n.text))
                groups.append(f"near {v.word}")
                points.append(table[n.token_id][None, :])  # [1, D]
    projection = project(torch.cat(points), method=method, dims=dims)
    return WordMap(vectors, cosine_matrix(stacked).numpy(), labels, groups, projection)


# ------------------------------------------------------------------------------------------------ a prompt's vectors
@dataclass(frozen=True)
class PromptVectors:
    """The first tokens of a prompt as vectors after every layer, compared with each other.

    Attributes:
        ids: The token ids compared (at most :data:`MAX_PROMPT_TOKENS`).
        total: How many tokens the whole prompt has.
        pieces: Readable text of each compared token.
        sims: ``[L+1, T, T]`` cosine similarity between the tokens' vectors at each layer (entry 0 = the lookup table
            rows, the last entry is after the final norm).
        norms: ``[L+1, T]`` length of each token's vector at each layer.
    """

    ids: tuple[int, ...]
    total: int
    pieces: list[str]
    sims: np.ndarray
    norms: np.ndarray

    def repeated_token(self) -> tuple[int, int] | None:
        """The first two positions holding the same token id, or ``None``."""
        seen: dict[int, int] = {}
        for pos, token_id in enumerate(self.ids):
            if token_id in seen:
                return seen[token_id], pos
            seen[token_id] = pos
        return None

    def most_similar_pair(self, layer: int, skip: set[int] | frozenset[int] = frozenset()) -> tuple[int, int] | None:
        """Positions ``(i, j)``, ``i < j``, of the two different tokens whose vectors at ``layer`` are most alike.

        Pairs of the same token id and positions in ``skip`` are left out; ``None`` when no pair is left.
        """
        ids = np.asarray(self.ids)
        allowed = ids[:, None] != ids[None, :]  # [T, T] different tokens (this also drops the diagonal)
        keep = np.array([i not in skip for i in range(len(ids))])
        allowed &= keep[:, None] & keep[None, :]
        allowed &= np.triu(np.ones_like(allowed), k=1).astype(bool)
        if not allowed.any():
            return None
        sims = np.where(allowed, self.sims[layer], -np.inf)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        return int(i), int(j)

    def long_vectors(self, layer: int, factor: float = 3.0) -> list[tuple[int, float]]:
        """Positions whose vector at ``layer`` is more than ``factor`` × the median length, with that ratio."""
        norms = self.norms[layer]  # [T]
        median = float(np.median(norms)) or 1.0
        return [(int(i), float(norms[i] / median)) for i in np.flatnonzero(norms > factor * median)]


def prompt_vectors(lm: LanguageModel, ids: Sequence[int], limit: int = MAX_PROMPT_TOKENS) -> PromptVectors:
    """The first ``limit`` tokens of ``ids`` after every layer, in one forward pass.

    A left-to-right model: the first T tokens' vectors do not depend on anything after them, so running only the
    tokens shown gives exactly the vectors a run over the whole prompt would.
    """
    shown = tuple(int(i) for i in ids[:limit])
    hidden = lm.forward(list(shown), hidden_states=True).hidden_states.float()  # [L+1, T, D]
    sims = torch.stack([cosine_matrix(h) for h in hidden]).numpy()  # [L+1, T, T]
    norms = hidden.norm(dim=-1).numpy()  # [L+1, T]
    return PromptVectors(ids=shown, total=len(ids), pieces=lm.token_texts(shown), sims=sims, norms=norms)
