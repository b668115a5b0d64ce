"""Train the diffusion page's shipped checkpoints from the bundled data (scikit-learn's digits, the 2-D toy shapes).

The page trains exactly the same models live (same code, same configs, same seeds); this script only saves the
result so the page opens instantly (float32 safetensors, about 2 MB in all).

Usage:
    python scripts/train_diffusion.py            # all checkpoints into engine/checkpoints/
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine import diffusion as dm  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)  # the same arithmetic on every machine, whatever its core count
    dm.CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("digits", *dm.TOY_SHAPES):
        model = dm.train_digits() if name == "digits" else dm.train_toy(name)
        path = dm.checkpoint_path(name)
        dm.save_checkpoint(model, path)
        print(f"{name:10} {model.seconds:6.1f} s  loss {dm.smooth(model.losses)[0]:.3f} → "
              f"{dm.smooth(model.losses)[-1]:.3f}  {path.stat().st_size / 1e6:.2f} MB  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
