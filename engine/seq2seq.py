"""A small encoder-decoder Transformer trained on the spot: dates written out ("3 May 2024") → ISO dates
("2024-05-03"), one character per token.

The model is a 2 + 2-layer BART (``transformers.BartConfig``, a few hundred thousand weights) built from scratch and
trained on this CPU in well under a minute. Everything is seeded (data from :class:`random.Random`, weights drawn from
a private :class:`torch.Generator`, no dropout), so one seed gives one loss curve. The answer is checkable: the
learner can see whether the output is the right date, and :func:`evaluate` measures exact-match accuracy on dates the
model never saw while training.

While decoding, :func:`translate` returns the three kinds of attention an encoder-decoder has: the encoder's
self-attention (bidirectional), the decoder's self-attention (causal) and the decoder's cross-attention (every output
character reading the encoded input).
"""

from __future__ import annotations

import calendar
import ctypes
import datetime as dt
import gc
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

MONTHS = [calendar.month_name[m] for m in range(1, 13)]  # "January" … "December"
FIRST_YEAR, LAST_YEAR = 1900, 2099
PAD, BOS, EOS = 0, 1, 2
#: Every character the task uses: digits, the month names' letters, space and hyphen.
CHARS = sorted(set("0123456789 -" + "".join(MONTHS)))
VOCAB = ["<pad>", "<s>", "</s>", *CHARS]
CHAR_ID = {c: i for i, c in enumerate(VOCAB)}
#: Longest input the model reads ("30 September 2024" has 17 characters) and the output length plus one end token.
MAX_IN = 24
MAX_OUT = 11


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the training run (same config, same seed → same model and loss curve).

    Attributes:
        seed: Seed for the data split, the data order and the initial weights.
        steps: Optimiser steps.
        batch: Examples per step.
        lr: Peak learning rate (AdamW, linear warm-up then cosine decay).
        d_model: Width of every token vector.
        layers: Encoder layers (the decoder has as many).
        heads: Attention heads per layer.
        held_out: Dates kept out of training, for the accuracy check.
    """

    seed: int = 0
    steps: int = 300
    batch: int = 32
    lr: float = 3e-3
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    held_out: int = 500


@dataclass
class Seq2SeqModel:
    """A trained date model and its facts.

    Attributes:
        model: The ``BartForConditionalGeneration`` (eval mode, never modified after training).
        config: The training configuration.
        losses: The loss after each step.
        train_seconds: Training wall time.
        parameters: Number of weights.
        held_out: The dates kept out of training (as input strings).
        accuracy: Exact-match accuracy on ``held_out``.
        train_size: Number of distinct training dates.
    """

    model: object
    config: TrainConfig
    losses: list[float]
    train_seconds: float
    parameters: int
    held_out: list[str]
    accuracy: float
    train_size: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class Translation:
    """One input read and decoded greedily, with every attention that produced the output.

    Attributes:
        source: The input characters (without the end token).
        output: The generated characters (without start and end tokens).
        src_tokens: Labels of the encoder positions (input characters, then ``</s>``).
        tgt_tokens: Labels of the decoder inputs (``<s>``, then each generated character but the last).
        encoder: ``[L, H, S, S]`` encoder self-attention (bidirectional).
        decoder: ``[L, H, T, T]`` decoder self-attention (causal).
        cross: ``[L, H, T, S]`` cross-attention: decoder position ``t`` (which chooses output character ``t``) reading
            the encoded input.
        chosen: What each decoder position wrote (the output characters, then ``</s>`` if it ended).
        probs: Probability of each chosen character (including the end token).
    """

    source: str
    output: str
    src_tokens: list[str]
    tgt_tokens: list[str]
    encoder: torch.Tensor
    decoder: torch.Tensor
    cross: torch.Tensor
    chosen: list[str]
    probs: list[float]


# --------------------------------------------------------------------------------------------------------- data
def spoken(d: dt.date) -> str:
    """A date as people write it: ``3 May 2024``."""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def all_dates() -> list[dt.date]:
    """Every day from 1 January 1900 to 31 December 2099 (73,049 dates)."""
    start, end = dt.date(FIRST_YEAR, 1, 1), dt.date(LAST_YEAR, 12, 31)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def split_dates(seed: int, held_out: int) -> tuple[list[dt.date], list[dt.date]]:
    """A seeded split of :func:`all_dates` into training dates and ``held_out`` dates never trained on."""
    dates = all_dates()
    random.Random(seed).shuffle(dates)
    return dates[held_out:], dates[:held_out]


def encode_source(text: str) -> list[int]:
    """Character ids of an input, then the end token.

    Raises:
        ValueError: Empty input, too long, or a character the model has no token for (message ready to show).
    """
    if not text.strip():
        raise ValueError("The input is empty.")
    if len(text) > MAX_IN - 1:
        raise ValueError(f"The input has {len(text)} characters; this model reads at most {MAX_IN - 1}.")
    unknown = sorted({c for c in text if c not in CHAR_ID or CHAR_ID[c] < 3})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8])
        raise ValueError(
            f"The model only knows digits, spaces, hyphens and the letters of the month names; it has no token for "
            f"{shown}."
        )
    return [CHAR_ID[c] for c in text] + [EOS]


def _batch(dates: Sequence[dt.date]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded tensors for teacher forcing: source ids/mask ``[B, S]``, decoder input ``[B, T]``, labels ``[B, T]``."""
    src = [encode_source(spoken(d)) for d in dates]
    tgt = [[CHAR_ID[c] for c in d.isoformat()] for d in dates]
    S = max(len(s) for s in src)
    ids = torch.full((len(src), S), PAD)  # [B, S]
    for i, s in enumerate(src):
        ids[i, : len(s)] = torch.tensor(s)
    mask = (ids != PAD).long()  # [B, S]
    labels = torch.tensor([t + [EOS] for t in tgt])  # [B, 11]: every ISO date has 10 characters
    dec_in = torch.cat([torch.full((len(tgt), 1), BOS), labels[:, :-1]], dim=1)  # [B, 11] shifted right
    return ids, mask, dec_in, labels


# --------------------------------------------------------------------------------------------------------- model
def build_model(cfg: TrainConfig):
    """A fresh BART with weights drawn from a private generator seeded with ``cfg.seed`` (the global torch RNG,
    shared by every session, is not touched)."""
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=len(VOCAB), d_model=cfg.d_model, encoder_layers=cfg.layers, decoder_layers=cfg.layers,
        encoder_attention_heads=cfg.heads, decoder_attention_heads=cfg.heads, encoder_ffn_dim=4 * cfg.d_model,
        decoder_ffn_dim=4 * cfg.d_model, max_position_embeddings=32, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS,
        forced_eos_token_id=None, scale_embedding=False, attn_implementation="eager",
    )
    model = BartForConditionalGeneration(config)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():  # the same scheme as the library's own init (normal, std 0.02; norms 1/0; biases 0)
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * config.init_std)
            elif "layer_norm" in name or "layernorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.zero_()
        model.model.shared.weight[PAD].zero_()
    return model


def train(cfg: TrainConfig = TrainConfig(), report: Callable[[int, int, float], None] | None = None) -> Seq2SeqModel:
    """Train a date model from scratch (seeded, reproducible) and measure its held-out accuracy.

    Args:
        cfg: The run's configuration.
        report: Optional ``(step, total, loss)`` callback after each step (e.g. an
            :class:`engine.jobs.BackgroundJob`'s reporter); it must not touch any UI element.

    Returns:
        The trained model in eval mode.
    """
    start = time.perf_counter()
    train_dates, held = split_dates(cfg.seed, cfg.held_out)
    order = random.Random(cfg.seed + 1)
    model = build_model(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    warm = max(1, cfg.steps // 20)

    def lr_factor(s: int) -> float:  # linear warm-up, then cosine decay to 0
        return min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    losses: list[float] = []
    for step in range(cfg.steps):
        ids, mask, dec_in, labels = _batch(order.sample(train_dates, cfg.batch))
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_in).logits  # [B, 11, V]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.detach().item())
        if report is not None:
            report(step + 1, cfg.steps, losses[-1])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    result = Seq2SeqModel(
        model=model, config=cfg, losses=losses, train_seconds=time.perf_counter() - start,
        parameters=sum(p.numel() for p in model.parameters()), held_out=[spoken(d) for d in held], accuracy=0.0,
        train_size=len(train_dates),
    )
    result.accuracy = evaluate(result, held)
    _return_freed_memory()
    return result


def _return_freed_memory() -> None:
    """Hand the heap that training freed (activations, gradients, optimiser state, the date lists) back to the system:
    glibc keeps freed blocks otherwise, and a long-running server would carry them as resident memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


# --------------------------------------------------------------------------------------------------------- use
@torch.inference_mode()
def greedy_batch(trained: Seq2SeqModel, texts: Sequence[str]) -> list[str]:
    """Greedy outputs for several inputs at once (at most :data:`MAX_OUT` characters each)."""
    model = trained.model
    src = [encode_source(t) for t in texts]
    S = max(len(s) for s in src)
    ids = torch.full((len(src), S), PAD)  # [B, S]
    for i, s in enumerate(src):
        ids[i, : len(s)] = torch.tensor(s)
    mask = (ids != PAD).long()
    with trained.lock:
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask)
        out = torch.full((len(src), 1), BOS)  # [B, 1]
        for _ in range(MAX_OUT):
            logits = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=out).logits  # [B, t, V]
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    texts_out = []
    for row in out[:, 1:].tolist():
        row = row[: row.index(EOS)] if EOS in row else row
        texts_out.append("".join(VOCAB[i] if i > 2 else "" for i in row))
    return texts_out


def evaluate(trained: Seq2SeqModel, dates: Sequence[dt.date]) -> float:
    """Exact-match accuracy: the share of ``dates`` whose written form is turned into exactly the ISO date."""
    dates = list(dates)
    if not dates:
        return 0.0
    right = 0
    for i in range(0, len(dates), 250):
        chunk = dates[i : i + 250]
        outs = greedy_batch(trained, [spoken(d) for d in chunk])
        right += sum(o == d.isoformat() for o, d in zip(outs, chunk))
    return right / len(dates)


def expected_output(text: str) -> str | None:
    """The right answer for an input written like ``3 May 2024`` (``None`` if it is not a real date in that form)."""
    parts = text.strip().split()
    if len(parts) != 3 or parts[1] not in MONTHS or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    try:
        d = dt.date(int(parts[2]), MONTHS.index(parts[1]) + 1, int(parts[0]))
    except ValueError:
        return None
    return d.isoformat() if spoken(d) == text.strip() else None


def seen_years(text: str) -> bool:
    """Whether a date written like ``3 May 2024`` has a year inside the training range (False for other input)."""
    iso = expected_output(text)
    return iso is not None and FIRST_YEAR <= int(iso[:4]) <= LAST_YEAR


@torch.inference_mode()
def translate(trained: Seq2SeqModel, text: str) -> Translation:
    """Decode ``text`` greedily, then read back the attentions that produced each output character.

    The decoder is causal, so one teacher-forced pass over ``<s>`` + the generated characters gives exactly the
    weights each step used while decoding.

    Raises:
        ValueError: Input the model cannot read (message ready to show).
    """
    model = trained.model
    src = encode_source(text)
    ids = torch.tensor([src])  # [1, S]
    probs: list[float] = []
    with trained.lock:
        enc = model.get_encoder()(input_ids=ids)
        out = [BOS]
        for _ in range(MAX_OUT):
            logits = model(encoder_outputs=enc, decoder_input_ids=torch.tensor([out])).logits[0, -1]  # [V]
            p = torch.softmax(logits.double(), -1)
            token = int(p.argmax())
            out.append(token)
            probs.append(float(p[token]))
            if token == EOS:
                break
        # Position t of the decoder chose token t + 1: its inputs are every token but the last one chosen.
        res = model(input_ids=ids, decoder_input_ids=torch.tensor([out[:-1]]), output_attentions=True)
    gen = [t for t in out[1:] if t != EOS]
    label = {BOS: "<s>", EOS: "</s>", PAD: "<pad>"}
    return Translation(
        source=text,
        output="".join(VOCAB[t] for t in gen),
        src_tokens=[label.get(t, VOCAB[t]) for t in src],
        tgt_tokens=[label.get(t, VOCAB[t]) for t in out[:-1]],
        chosen=[label.get(t, VOCAB[t]) for t in out[1:]],
        encoder=torch.stack([a[0] for a in res.encoder_attentions]).float(),  # [L, H, S, S]
        decoder=torch.stack([a[0] for a in res.decoder_attentions]).float(),  # [L, H, T, T]
        cross=torch.stack([a[0] for a in res.cross_attentions]).float(),  # [L, H, T, S]
        probs=probs,
    )
