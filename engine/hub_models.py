"""The post's own models, GPT-2, BERT and T5, as opt-in hub models: each loaded with the head its architecture has
and used for the job it suits (GPT-2 writes on, BERT fills a masked word, T5 turns one text into another).

Nothing here runs on the default path: a server opts in with ``LLMX_HUB_MODELS`` (see
:func:`engine.registry.hub_models_enabled`) and needs access to the Hugging Face hub (or a hub cache that already holds
the files). Only the allow-listed repositories of :data:`engine.registry.ALLOWED_HUB_MODELS` are loaded, never with
remote code, and a repository whose ``config.model_type`` is not the expected one is refused. Like the other shared
models each :class:`HubModel` is read-only (``eval()``, ``inference_mode``, forwards under a lock).

Tests load tiny random models built from ``GPT2Config``, ``BertConfig`` and ``T5Config`` through the same
:func:`load_hub_model`, pointed at a local folder with :func:`local_override` (tests only: no page, link or environment
variable can set a path).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.lm import CallStats
from engine.loader import ModelLoadError
from engine.registry import ALLOWED_HUB_MODELS, HUB_MODELS_ENV, HubModelSpec, get_hub_spec, hub_models_enabled

#: Most tokens of input a hub model reads on the page.
MAX_HUB_TOKENS = 128
#: Most new tokens GPT-2 or T5 write per request.
MAX_HUB_NEW_TOKENS = 40
#: What the learner types where the missing word goes (BERT's own mask token is also accepted).
MASK_MARK = "[MASK]"

#: Which job each family is loaded for: family → (transformers auto class, task).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "decoder": ("AutoModelForCausalLM", "generate"),
    "encoder": ("AutoModelForMaskedLM", "fill-mask"),
    "encoder-decoder": ("AutoModelForSeq2SeqLM", "text2text"),
}

#: What each task is, in the page's words.
TASKS: dict[str, str] = {
    "generate": "continue a text",
    "fill-mask": "fill in a masked word",
    "text2text": "turn one text into another (summarize, translate)",
}

#: Where a family does not apply, and why: (family, task) → reason. Pairs not listed fit.
DOES_NOT_APPLY: dict[tuple[str, str], str] = {
    ("decoder", "fill-mask"): "a decoder reads left to right, so it cannot use the words after the blank",
    ("encoder", "generate"): "an encoder has no next-token head: it reads a whole text at once and writes nothing",
    ("encoder", "text2text"): "an encoder outputs one vector per input token, not a new text of another length",
    ("encoder-decoder", "fill-mask"): "T5 fills spans with sentinel tokens (<extra_id_0>), not BERT's [MASK]",
}

#: A first input for each task.
EXAMPLES: dict[str, str] = {
    "generate": "Once upon a time, a small robot",
    "fill-mask": "The capital of France is [MASK].",
    "text2text": "translate English to German: The house is wonderful.",
}

_LOCAL_DIRS: dict[str, Path] = {}
_load_lock = threading.Lock()


@contextlib.contextmanager
def local_override(key: str, folder: str | Path) -> Iterator[None]:
    """Tests only: load the allow-listed hub model ``key`` from ``folder`` instead of the hub, through the same code.

    Args:
        key: A key of :data:`engine.registry.ALLOWED_HUB_MODELS`.
        folder: A folder written by ``save_pretrained`` (model and tokenizer).
    """
    get_hub_spec(key)
    _LOCAL_DIRS[key] = Path(folder)
    try:
        yield
    finally:
        _LOCAL_DIRS.pop(key, None)


def fits(family: str, task: str) -> tuple[bool, str]:
    """Whether a model family does ``task``, and if not, why (for the page's table)."""
    why = DOES_NOT_APPLY.get((family, task))
    return (why is None, why or "")


@dataclass(frozen=True)
class HubInfo:
    """Facts read from a loaded hub model."""

    name: str
    source: str
    architecture: str
    model_class: str
    parameters: int
    layers: int
    vocab_size: int
    load_seconds: float


@dataclass(frozen=True)
class HubResult:
    """One request to a hub model.

    Attributes:
        key: The model's key.
        task: ``"generate"``, ``"fill-mask"`` or ``"text2text"``.
        text: The input as typed.
        input_tokens: How many tokens the input became.
        output: The generated text (continuation, filled sentence or T5's output).
        candidates: For fill-mask, the top ``(word, probability)`` at the mask; empty otherwise.
    """

    key: str
    task: str
    text: str
    input_tokens: int
    output: str
    candidates: tuple[tuple[str, float], ...] = ()


class HubModel:
    """A loaded hub model with its tokenizer, shared read-only.

    Args:
        model: The transformers model with its head (causal LM, masked LM or seq2seq LM).
        tokenizer: Its tokenizer.
        spec: The allow-list entry.
        source: Where it was loaded from.
        load_seconds: Wall time of the load.
    """

    def __init__(self, model, tokenizer, spec: HubModelSpec, source: str, load_seconds: float = 0.0):
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.stats = CallStats()
        self._lock = threading.RLock()  # tokenizer and model: a shared fast tokenizer is not thread-safe
        cfg = model.config
        self.info = HubInfo(
            name=spec.label,
            source=source,
            architecture=cfg.model_type,
            model_class=type(model).__name__,
            parameters=sum(p.numel() for p in model.parameters()),
            layers=int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", 0) or 0),
            vocab_size=int(cfg.vocab_size),
            load_seconds=load_seconds,
        )

    def _ids(self, text: str, special: bool = True) -> list[int]:
        if not text or not text.strip():
            raise ValueError("The text is empty.")
        with self._lock:
            ids = list(self.tokenizer(text, add_special_tokens=special)["input_ids"])
        if len(ids) > MAX_HUB_TOKENS:
            raise ValueError(f"The text is {len(ids):,} tokens long; {self.spec.label} reads at most {MAX_HUB_TOKENS} "
                             "here. Shorten it.")
        return ids

    @property
    def _pad_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pad if pad is not None else 0)

    @torch.inference_mode()
    def generate(self, text: str, max_new_tokens: int = 20) -> HubResult:
        """Decoder (GPT-2): the greedy continuation of ``text``.

        Raises:
            ValueError: Empty text or too many tokens.
        """
        ids = self._ids(text, special=False)
        x = torch.tensor([ids])  # [1, T]
        new = max(1, min(int(max_new_tokens), MAX_HUB_NEW_TOKENS))
        with self._lock:
            out = self.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new, do_sample=False,
                                      pad_token_id=self._pad_id)  # [1, T + new]
            written = self.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
        self.stats.add(forwards=1, tokens=int(out.shape[1]) - len(ids))
        return HubResult(self.spec.key, "generate", text, len(ids), written)

    @torch.inference_mode()
    def fill_mask(self, text: str, k: int = 5) -> HubResult:
        """Encoder with a masked-LM head (BERT): the most likely words where ``[MASK]`` stands.

        Raises:
            ValueError: Empty text, no mask or more than one, or too many tokens.
        """
        if not text or not text.strip():
            raise ValueError("The text is empty.")
        mask_token = self.tokenizer.mask_token or MASK_MARK
        if text.count(MASK_MARK) + (text.count(mask_token) if mask_token != MASK_MARK else 0) != 1:
            raise ValueError(f"Write {MASK_MARK} exactly once, where the missing word goes: e.g. "
                             f"{EXAMPLES['fill-mask']!r}.")
        ids = self._ids(text.replace(MASK_MARK, mask_token))
        where = ids.index(self.tokenizer.mask_token_id)
        x = torch.tensor([ids])  # [1, T]
        with self._lock:
            logits = self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, where]  # [V]
        self.stats.add(forwards=1)
        probs = torch.softmax(logits.double(), dim=-1)  # [V]
        top = torch.topk(probs, min(int(k), probs.shape[0]))
        with self._lock:
            words = [self.tokenizer.decode([int(i)]).strip() for i in top.indices]
        filled = text.replace(MASK_MARK, words[0], 1).replace(mask_token, words[0], 1)
        return HubResult(self.spec.key, "fill-mask", text, len(ids), filled,
                         tuple((w, float(p)) for w, p in zip(words, top.values)))

    @torch.inference_mode()
    def text2text(self, text: str, max_new_tokens: int = 30) -> HubResult:
        """Encoder-decoder (T5): the encoder reads ``text`` (e.g. ``"summarize: …"``), the decoder writes the output.

        Raises:
            ValueError: Empty text or too many tokens.
        """
        ids = self._ids(text)
        x = torch.tensor([ids])  # [1, T]
        new = max(1, min(int(max_new_tokens), MAX_HUB_NEW_TOKENS))
        with self._lock:
            out = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new,
                                      do_sample=False)  # [1, 1 + new] decoder tokens, start token first
            written = self.tokenizer.decode(out[0].tolist(), skip_special_tokens=True)
        self.stats.add(forwards=1, tokens=int(out.shape[1]) - 1)
        return HubResult(self.spec.key, "text2text", text, len(ids), written)

    def run(self, text: str) -> HubResult:
        """Do the job this model's architecture is for (the task of its allow-list entry).

        Raises:
            ValueError: Input the task cannot use (message ready to show).
        """
        task = ARCHITECTURES[self.spec.family][1]
        if task == "generate":
            return self.generate(text)
        if task == "fill-mask":
            return self.fill_mask(text)
        return self.text2text(text)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_hub_model(key: str, *, require_opt_in: bool = True) -> HubModel:
    """Load an allow-listed hub model with the head its family needs (no remote code).

    Args:
        key: A key of :data:`engine.registry.ALLOWED_HUB_MODELS`.
        require_opt_in: Refuse unless the server opted in with ``LLMX_HUB_MODELS`` (tests of the loading itself pass
            ``False``; a :func:`local_override` folder is always allowed).

    Raises:
        ValueError: An unknown key.
        ModelLoadError: Not opted in, no hub access, or a repository of an unexpected architecture (says why and how
            to fix it).
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    spec = get_hub_spec(key)
    local = _LOCAL_DIRS.get(key)
    if local is None and require_opt_in and key not in hub_models_enabled():
        raise ModelLoadError(f"{spec.label} is not available on this server.",
                             f"A server with network access can opt in with {HUB_MODELS_ENV}=1.")
    source = str(local) if local is not None else spec.hub_id
    offline = local is not None or _offline()
    class_name = ARCHITECTURES[spec.family][0]
    start = time.perf_counter()
    with _load_lock:
        try:
            config = AutoConfig.from_pretrained(source, local_files_only=offline, trust_remote_code=False)
            if config.model_type not in spec.model_types:
                raise ModelLoadError(
                    f"{source} is a {config.model_type!r} model, not {'/'.join(spec.model_types)}: refused.",
                    "Only the allow-listed architectures are loaded.")
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline, trust_remote_code=False)
            model = getattr(transformers, class_name).from_pretrained(
                source, config=config, dtype=torch.float32, trust_remote_code=False, local_files_only=offline)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - one clear message
            where = "the hub's local cache (HF_HUB_OFFLINE is set)" if offline and local is None else source
            raise ModelLoadError(
                f"Could not load {spec.label} from {where} ({type(exc).__name__}: {str(exc)[:200]}).",
                "This server needs access to huggingface.co (or a hub cache holding the model); run the code below "
                "elsewhere instead.") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return HubModel(model, tokenizer, spec, source=f"local folder {source}" if local is not None
                    else f"Hugging Face hub: {source}", load_seconds=time.perf_counter() - start)


def code_snippet(spec: HubModelSpec) -> str:
    """The short ``transformers`` code that does what the page does with ``spec`` (to run elsewhere: it downloads)."""
    if spec.task == "generate":
        return (f'from transformers import pipeline\n\n'
                f'write = pipeline("text-generation", model="{spec.hub_id}")   # decoder\n'
                f'print(write("{EXAMPLES["generate"]}", max_new_tokens=20, do_sample=False)[0]["generated_text"])')
    if spec.task == "fill-mask":
        return (f'from transformers import pipeline\n\n'
                f'fill = pipeline("fill-mask", model="{spec.hub_id}")   # encoder with its masked-LM head\n'
                f'for guess in fill("{EXAMPLES["fill-mask"]}"):\n'
                f'    print(guess["token_str"], round(guess["score"], 3))')
    return (f'from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n'
            f'tok = AutoTokenizer.from_pretrained("{spec.hub_id}")\n'
            f'model = AutoModelForSeq2SeqLM.from_pretrained("{spec.hub_id}")   # encoder-decoder\n'
            f'ids = tok("{EXAMPLES["text2text"]}", return_tensors="pt").input_ids\n'
            f'print(tok.decode(model.generate(ids, max_new_tokens=30)[0], skip_special_tokens=True))')


def hub_specs() -> list[HubModelSpec]:
    """The allow-listed hub models, in the post's order (GPT-2, BERT, T5)."""
    return list(ALLOWED_HUB_MODELS.values())
