"""The post's map of the field, as data: AI ⊃ ML ⊃ DL ⊃ GenAI ⊃ LLM, the generative modality table, and a quiz.

Definitions and examples are taken from the post this app teaches from. This is reference text, not model output.
Which parts of the map the app demonstrates live is data too (``Level.pages`` / ``Modality.pages``), so the map's
links and the "live here / described only" labels cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
          "DALL·E, Midjourney, Stable Diffusion", ("diffusion",)),
    Level("audio", "Audio generators", "genai", "Generate music or voices.", "WaveNet, MusicLM"),
    Level("video", "Video generators", "genai", "Generate moving scenes.", "Sora, Runway"),
    Level("code", "Code models", "llm", "LLMs trained on code.", "GitHub Copilot, StarCoder, Code Llama",
          ("genai_landscape", "next_token")),
    Level("3d", "3D / design generators", "genai", "Generate 3D assets or environments.", "NeRF, 3D-GAN"),
)


@dataclass(frozen=True)
class Family:
    """A model family that generates one kind of data, how it does it in one line, and examples of it."""

    name: str
    how: str
    examples: str = ""
    #: ``False`` when the app runs another family of the same domain but not this one (GANs next to diffusion).
    runs_here: bool = True


@dataclass(frozen=True)
class Modality:
    """A row of the post's modality table.

    Attributes:
        domain: What is generated (text, images, …).
        family: The model families, as the post names them.
        examples: Products or models from the post.
        live_here: Whether this app runs a model of this kind live.
        families: The families, each with how it generates.
        pages: App pages (file stems) that demonstrate this domain live.
    """

    domain: str
    family: str
    examples: str
    live_here: bool
    families: tuple[Family, ...] = field(default=())
    pages: tuple[str, ...] = field(default=())

    def family_live(self, family: Family) -> bool:
        """Whether this app runs ``family`` live (the domain is live and the family is the one that runs)."""
        return self.live_here and family.runs_here


MODALITIES: tuple[Modality, ...] = (
    Modality("Text", "LLM (Transformer)", "ChatGPT, Claude, Gemini", True,
             (Family("Transformer LLM", "Predicts the next token from the ones before it, then appends it and "
                     "repeats: p(next token | previous tokens)."),),
             ("next_token", "temperature", "prompts", "ml_to_llm")),
    Modality("Images", "Diffusion models, GANs", "DALL·E, Midjourney, Stable Diffusion", True,
             (Family("Diffusion model", "Starts from pure noise and removes it step by step, guided by the prompt.",
                     "DALL·E, Midjourney, Stable Diffusion"),
              Family("GAN", "A generator turns random noise into an image in one pass; it is trained against a "
                     "discriminator that tries to tell its output from real images.", "StyleGAN, BigGAN", runs_here=False)),
             ("diffusion",)),
    Modality("Audio", "WaveNet-style, MusicLM", "Generate music or voices", False,
             (Family("WaveNet-style audio", "Predicts the next audio sample from the previous ones: autoregressive, "
                     "like an LLM, but on sound.", "WaveNet (voices)"),
              Family("MusicLM", "Transformers predict discrete audio tokens from a text description, then decode them "
                     "to sound.", "MusicLM (music)"))),
    Modality("Video", "Diffusion / Transformer video models", "Sora, Runway", False,
             (Family("Video diffusion", "Denoises a whole clip at once (patches in space and time), guided by the "
                     "prompt; Sora uses a Transformer as the denoiser."),)),
    Modality("Code", "Code LLMs", "GitHub Copilot, StarCoder", True,
             (Family("Code LLM", "The same next-token Transformer, trained on a lot of source code."),),
             ("genai_landscape", "next_token")),
    Modality("3D / Design", "NeRF, 3D-GAN", "Generate 3D assets or environments", False,
             (Family("NeRF", "Learns a 3D scene as a neural function (colour and density at every point) from "
                     "photos, then renders views never photographed.", "NeRF scenes"),
              Family("3D-GAN", "A GAN whose generator outputs 3D shapes (voxels) instead of images.", "3D-GAN"))),
)


def level(key: str) -> Level:
    """The level with ``key``."""
    for lv in HIERARCHY:
        if lv.key == key:
            return lv
    raise KeyError(key)


def ancestors(key: str) -> list[Level]:
    """The level and every level containing it, innermost first (``llm`` → LLM, GenAI, DL, ML, AI)."""
    chain = []
    lv: Level | None = level(key)
    while lv is not None:
        chain.append(lv)
        lv = level(lv.parent) if lv.parent else None
    return chain


def children(key: str) -> list[Level]:
    """Levels directly inside ``key``."""
    return [lv for lv in HIERARCHY if lv.parent == key]


def demonstrated(lv: Level) -> bool:
    """Whether the app demonstrates this level live (it has at least one page), rather than describing it."""
    return bool(lv.pages)


@dataclass(frozen=True)
class Question:
    """One self-check question: options, the index of the right one, and why."""

    key: str
    text: str
    options: tuple[str, ...]
    answer: int
    why: str


#: ``{vocab}`` in a question is filled in with the loaded model's vocabulary size.
QUIZ: tuple[Question, ...] = (
    Question("every_genai_llm", "Is every generative AI model an LLM?",
             ("Yes: generative AI and LLMs are the same thing",
              "No: some generate images, audio, video or 3D, not text"), 1,
             "LLMs are the text branch of generative AI. Stable Diffusion (images) or WaveNet (audio) are generative "
             "AI but not language models."),
    Question("every_llm_genai", "Is every LLM a generative AI model?",
             ("Yes: it generates new text, one token at a time", "No: LLMs only classify text"), 0,
             "An LLM samples new text from p(next token | previous tokens): it creates content, so it is generative "
             "AI."),
    Question("p_of_x", "Which model learns p(x), how likely the data itself is?",
             ("A logistic-regression classifier", "A generative model, such as a Gaussian mixture or an LLM",
              "A decision tree"), 1,
             "Classifiers and trees learn p(y | x), a label given the input. A generative model learns p(x) and can "
             "therefore sample new x. Note where the post's map simplifies: it draws generative AI inside deep "
             "learning, but generative models are older than deep learning. A Gaussian mixture (the ML-to-LLM page "
             "fits one) or naive Bayes is generative with no neural network at all; today's generative AI is mostly "
             "deep, which is what the map shows."),
    Question("diffusion", "Stable Diffusion makes images from a prompt. Which family is it?",
             ("A large language model", "A diffusion model", "A WaveNet-style audio model"), 1,
             "Diffusion models start from noise and remove it step by step. An LLM may write the prompt, but the "
             "image comes from the diffusion model."),
    Question("head", "The model on these pages has {vocab} tokens in its vocabulary. Its last layer is…",
             ("A regression that outputs one number", "A classifier over {vocab} classes, one per token",
              "A clustering of the tokens"), 1,
             "Softmax over one score per vocabulary token: a linear classifier with as many classes as tokens. "
             "The ML-to-LLM page checks this on the live model."),
    Question("live", "Which part of the map does this app run live?",
             ("Music generation", "Video generation",
              "Text and code with a real LLM, and small images with a diffusion model"), 2,
             "The LLM branch runs here on a small open model on this CPU, and a small diffusion model draws 8×8 "
             "digits on the Diffusion page. Audio, video and 3D are described, not generated."),
)


# --- Transformer families: which wiring runs live here ---
@dataclass(frozen=True)
class TransformerFamily:
    """One of the three ways the post's Transformers are wired, and what of it this app runs.

    Attributes:
        name: Family name.
        examples: The models the post names.
        good_at: What the wiring suits.
        live_model: The model of this family that runs live here (``{model}``: the loaded language model's name).
        pages: App pages (file stems) that run it.
    """

    name: str
    examples: str
    good_at: str
    live_model: str
    pages: tuple[str, ...]


TRANSFORMER_FAMILIES: tuple[TransformerFamily, ...] = (
    TransformerFamily("Decoder-only", "GPT-2, GPT-4", "generating text token by token", "{model}",
                      ("next_token", "attention", "encoders")),
    TransformerFamily("Encoder-only", "BERT", "understanding: search, classification, similarity",
                      "all-MiniLM-L6-v2 (a 6-layer BERT)", ("encoders", "tokenization", "embeddings")),
    TransformerFamily("Encoder-decoder", "T5", "text to text: translation, summarization",
                      "a 2 + 2-layer model trained on this server (dates)", ("encoders",)),
)



def post_models_note(enabled: tuple[str, ...], labels: dict[str, str]) -> str:
    """Whether the post's own GPT-2, BERT and T5 run on this server (opt-in hub models) or only their small cousins.

    Args:
        enabled: Hub model keys this server opted in to (:func:`engine.registry.hub_models_enabled`).
        labels: Hub model key → human name.
    """
    if not enabled:
        return ("GPT-2, BERT and T5 themselves are opt-in hub models (`LLMX_HUB_MODELS=1` on a server with network "
                "access) and are not on this server; the Encoders page shows the code that runs each.")
    names = ", ".join(labels.get(k, k) for k in enabled)
    return f"This server also opted in to the post's own models: {names} run live on the Encoders page."


# --- where the post simplifies, and its analogy table ---
#: The post's map puts generative AI inside deep learning. True of today's generative AI, but generative models are
#: older than deep learning: shown next to the map and in the quiz's answer.
SIMPLIFICATION = (
    "The post draws generative AI inside deep learning. That is where today's generative AI lives (Transformers, "
    "diffusion models, GANs), but it simplifies: generative models predate deep learning. A Gaussian mixture or "
    "naive Bayes models p(x) with no neural network at all (the ML-to-LLM page fits a Gaussian mixture live)."
)


@dataclass(frozen=True)
class Analogy:
    """A row of the post's analogy table, tied to its level on the map."""

    term: str
    description: str
    level: str  # key into HIERARCHY


#: The post's analogy table (its words), each row tied to a ring of the map.
ANALOGY: tuple[Analogy, ...] = (
    Analogy("ML", "Learning from examples", "ml"),
    Analogy("Deep Learning", "Using neural networks to learn from complex data", "dl"),
    Analogy("Generative AI", "Using deep learning to create new data", "genai"),
    Analogy("LLM", "A Generative AI model that creates text and understands language", "llm"),
)


def analogy_rows(titles: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The analogy table with, for each row, its place on the map (the chain of rings) and where it runs live.

    Args:
        titles: Page stem → title, to name the pages (stems are shown when missing).
    """
    titles = titles or {}
    rows = []
    for a in ANALOGY:
        lv = level(a.level)
        rows.append({
            "Term": a.term,
            "The post's analogy": a.description,
            "On the map": " ⊂ ".join(x.name for x in ancestors(a.level)),
            "Live in this app": ", ".join(titles.get(p, p) for p in lv.pages) or "described only",
        })
    return rows
