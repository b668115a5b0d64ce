"""Make the README gallery from the browser tests' screenshots (run `make test` first, or pass their folder).

Writes ``docs/screenshots/<page>.jpg``: the top of each page, 900 px wide, plus presentation-mode examples.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "test-artifacts" / "screenshots"
DST = ROOT / "docs" / "screenshots"


def main() -> None:
    from components.frame import available_pages

    DST.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in available_pages()] + [
        "home-present", "attention-present", "attention-head-view", "first-start-progress", "first-start-unwritable",
    ]
    for name in names:
        src = SRC / f"{name}.png"
        if not src.is_file():
            print(f"missing {src}")
            continue
        im = Image.open(src).convert("RGB")
        width = 900
        im = im.crop((0, 0, im.width, min(im.height, int(im.width * 1.6))))
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im.save(DST / f"{name}.jpg", quality=80, optimize=True)
        print(f"wrote {DST / (name + '.jpg')}")


if __name__ == "__main__":
    main()
