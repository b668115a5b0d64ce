"""The post's map of the field, as data: AI ⊃ ML ⊃ DL ⊃ GenAI ⊃ LLM, and the generative modality table.

Definitions and examples are taken from the post this app teaches from. This is reference text, not model output.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    """One ring of the hierarchy: its name, the post's definition, its examples, and the app pages that show it."""

    key: str
    name: str
    parent: str
    definition: str
    examples: str
    pages: tuple[str, ...] = ()


HIERARCHY: tuple[Level, ...] = (
    Level("ai", "Artificial intelligence", "", "Any machine mimicking human cognition.", "Search, robotics, NLP"),
    Level("ml", "Machine learning", "ai", "AI that learns patterns from data.", "Regression, clustering",
          ("ml_to_llm",)),
    Level("traditional", "Traditional ML", "ml", "Models that learn from rows and columns of structured data.",
          "Regression, SVM, trees", ("ml_to_llm",)),
    Level("dl", "Deep learning", "ml", "ML with neural networks.", "CNNs, RNNs, Transformers", ("attention",)),
    Level("genai", "Generative AI", "dl", "Deep models that generate new content.", "GPT, DALL·E, Sora",
          ("genai_landscape",)),
    Level("llm", "Large language models", "genai", "A text-based generative AI: predicts the next token.",
          "ChatGPT, Claude, LLaMA", ("next_token", "tokenization", "attention", "temperature")),
    Level("image", "Image generators", "genai", "Create images, e.g. with diffusion models or GANs.",
          "DALL·E, Midjourney, Stable Diffusion"),
    Level("audio", "Audio generators", "genai", "Generate music or voices.", "WaveNet, MusicLM"),
    Level("video", "Video generators", "genai", "Generate moving scenes.", "Sora, Runway"),
    Level("code", "Code models", "llm", "LLMs trained on code.", "GitHub Copilot, StarCoder, Code Llama"),
    Level("3d", "3D / design generators", "genai", "Generate 3D assets or environments.", "NeRF, 3D-GAN"),
)


@dataclass(frozen=True)
class Modality:
    """A row of the post's modality table."""

    domain: str
    family: str
    examples: str
    live_here: bool


MODALITIES: tuple[Modality, ...] = (
    Modality("Text", "LLM (Transformer)", "ChatGPT, Claude, Gemini", True),
    Modality("Images", "Diffusion models, GANs", "DALL·E, Midjourney, Stable Diffusion", False),
    Modality("Audio", "WaveNet-style, MusicLM", "Generate music or voices", False),
    Modality("Video", "Diffusion / Transformer video models", "Sora, Runway", False),
    Modality("Code", "Code LLMs", "GitHub Copilot, StarCoder", True),
    Modality("3D / Design", "NeRF, 3D-GAN", "Generate 3D assets or environments", False),
)


def level(key: str) -> Level:
    """The level with ``key``."""
    for lv in HIERARCHY:
        if lv.key == key:
            return lv
    raise KeyError(key)
