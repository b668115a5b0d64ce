"""bertviz's head view and model view as self-contained HTML that draws with no internet.

bertviz (``html_action="return"``) emits a ``<script src=…cdnjs…/require.min.js>`` tag and a script whose
``require.config`` points d3 and jQuery at cdnjs. We swap both for our pinned copies in ``static/vendor/`` (see its
README for versions and licences), inlined into the HTML: an ``srcdoc`` iframe's links and a deployment's base path
make served URLs fragile, inlined scripts always run.

The payload is bounded: weights are rounded (3 decimals), zeros and ones are written as ``0``/``1``, the JSON is
compact, and the number of layers × heads × tokens² cells is capped by the caller (:func:`layers_within_budget`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from engine.text import visible_whitespace

VENDOR_DIR = Path(__file__).resolve().parents[2] / "static" / "vendor"
#: Most attention cells (layers × heads × tokens²) one bertviz view may ship (~1 MB of JSON at 3 decimals).
MAX_CELLS = 200_000
#: Most tokens a bertviz view shows (it is unreadable beyond that anyway).
MAX_TOKENS = 48
DECIMALS = 3


_CDN_TAG = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/[^"]*require[^"]*"></script>')
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.S)
# bertviz replaces *every* PYTHON_PARAMS, including the one in the comment after it: the params ship twice. We match
# the whole line and write it back once.
_PARAMS = re.compile(r"const params = (\{.*?\}); // HACK[^\n]*")
_NUM = re.compile(r"(?<![\d.])([01])\.0(?![\d])")


@lru_cache(maxsize=1)
def vendor_scripts() -> str:
    """The three pinned libraries as inline ``<script>`` tags, registered as the AMD modules bertviz asks for.

    d3 and jQuery run first (no AMD loader yet, so they set ``window.d3`` / ``window.jQuery``); then require.js, then
    two named ``define`` calls hand those globals to ``requirejs(['jquery', 'd3'], …)``.
    """
    parts = []
    for name in ("d3.min.js", "jquery.min.js", "require.min.js"):
        code = (VENDOR_DIR / name).read_text(encoding="utf-8")
        if "</script" in code.lower():  # would end the inline tag early
            raise RuntimeError(f"{name} contains '</script' and cannot be inlined")
        parts.append(f"<script>/* static/vendor/{name} */\n{code}\n</script>")
    parts.append(
        "<script>define('d3', [], function () { return window.d3; });"
        "define('jquery', [], function () { return window.jQuery; });</script>"
    )
    return "\n".join(parts)


def default_layers(n_layers: int) -> list[int]:
    """Six layers spread from the first to the last (fewer for a small model): the views' starting selection."""
    return sorted({0, n_layers // 5, 2 * n_layers // 5, 3 * n_layers // 5, 4 * n_layers // 5, n_layers - 1})


def layers_within_budget(layers: Sequence[int], n_heads: int, n_tokens: int, max_cells: int = MAX_CELLS) -> list[int]:
    """Keep the first layers of ``layers`` (sorted, unique) whose cells fit in ``max_cells`` (at least one layer)."""
    per_layer = max(1, n_heads * n_tokens * n_tokens)
    keep = max(1, max_cells // per_layer)
    return sorted(set(int(x) for x in layers))[:keep]


def _readable(token: str) -> str:
    """Token text for the SVG: newlines and tabs visible, empty tokens shown as ∅."""
    return visible_whitespace(token) or "∅"


def _rounded(attentions: torch.Tensor, decimals: int = DECIMALS) -> list[torch.Tensor]:
    """``[L, H, T, T]`` → list of ``[1, H, T, T]`` float64 tensors whose values print short (0.123, not 0.1230000…)."""
    scale = 10.0**decimals
    a = torch.round(attentions.double() * scale) / scale
    return [layer[None] for layer in a]


def _compact(html: str) -> str:
    """Re-write bertviz's params JSON compactly and safely: no spaces, 0.0/1.0 as 0/1, and ``<`` escaped so no
    token text can close the ``<script>`` tag it sits in."""
    match = _PARAMS.search(html)
    if match is None:
        raise RuntimeError("bertviz output changed: params not found")
    params = json.loads(match.group(1))
    attn_blobs = []
    for i, entry in enumerate(params["attention"]):
        attn_blobs.append(_NUM.sub(r"\1", json.dumps(entry["attn"], separators=(",", ":"))))
        entry["attn"] = f"@@ATTN{i}@@"
    text = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    for i, blob in enumerate(attn_blobs):
        text = text.replace(f'"@@ATTN{i}@@"', blob)
    return html[: match.start()] + f"const params = {text};" + html[match.end() :]


def _page(body: str, title: str) -> str:
    """A full HTML document: light card (readable on light and dark app themes), inline libraries, bertviz body."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>html,body{margin:0;background:#ffffff;color:#1a1a1a;color-scheme:light;}"
        "body{padding:8px 10px;border-radius:8px;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif;}"
        "select{font-size:14px;color:#1a1a1a;background:#f1f3f5;border:1px solid #adb5bd;border-radius:4px;}"
        "</style></head><body>\n"
        f"{vendor_scripts()}\n{body}\n</body></html>"
    )


def _offline(bertviz_html: str) -> str:
    html = _CDN_TAG.sub("", bertviz_html)
    html = _REQUIRE_CONFIG.sub("/* d3 and jQuery are inlined above (static/vendor) */", html, count=1)
    return _compact(html)


def head_view_html(
    tokens: Sequence[str], attentions: torch.Tensor, layers: Sequence[int], layer: int | None = None
) -> str:
    """bertviz's head view (lines from each token to the tokens it attends to, one colour per head).

    Args:
        tokens: Readable token texts (``T``).
        attentions: ``[L, H, T, T]`` weights of the real model.
        layers: Layers to include (the view's layer menu).
        layer: Layer shown first (must be in ``layers``; defaults to the first).
    """
    from bertviz import head_view

    layers = sorted(set(int(x) for x in layers))
    first = layers[0] if layer is None or int(layer) not in layers else int(layer)
    out = head_view(
        attention=_rounded(attentions),
        tokens=[_readable(t) for t in tokens],
        include_layers=layers,
        layer=first,
        prettify_tokens=False,
        html_action="return",
    )
    return _page(_offline(out.data), "bertviz head view")


def model_view_html(tokens: Sequence[str], attentions: torch.Tensor, layers: Sequence[int]) -> str:
    """bertviz's model view (a thumbnail of every head in the chosen layers; click one to enlarge it).

    Args:
        tokens: Readable token texts (``T``).
        attentions: ``[L, H, T, T]`` weights of the real model.
        layers: Layers to include (rows of the grid).
    """
    from bertviz import model_view

    out = model_view(
        attention=_rounded(attentions),
        tokens=[_readable(t) for t in tokens],
        include_layers=sorted(set(int(x) for x in layers)),
        display_mode="light",
        prettify_tokens=False,
        html_action="return",
    )
    return _page(_offline(out.data), "bertviz model view")


def head_view_height(n_tokens: int) -> int:
    """Pixel height that shows the whole head view (menu, head squares, one row per token)."""
    return int(80 + 22.5 * n_tokens + 40)


def model_view_height(n_tokens: int, n_layers: int, n_heads: int) -> int:
    """Pixel height of the model view grid (bertviz: 7·12/heads px per token row per thumbnail)."""
    thumb = n_tokens * 7 * (12 / n_heads) + 10
    detail = n_tokens * 18 + 55
    return int(max(n_layers * thumb + 40, detail) + 60)
