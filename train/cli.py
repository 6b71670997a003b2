"""``lover1 train sft|grpo|toy ...``: the training entry points behind one dispatcher.

``lover1_plugin.cli`` calls :func:`main` with ``[stage, *args]``; each stage parses its own
flags (``sft`` / ``grpo``: ``--config X.yaml`` plus any config key as a flag, TRL's
``TrlParser``; ``toy``: ``--help`` lists its settings).

>>> main(["help"])  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """usage: lover1 train {sft,grpo,toy} [options]

  sft   --config train/configs/stage1.yaml | stage2.yaml   SFT stages 1-2 (TRL SFTTrainer, video collator)
  grpo  --config train/configs/stage3.yaml                  decoupled GRPO, stage 3
  toy   [--sft_steps N ...]                                 a CPU run that proves learning; saves the demo checkpoint

Configs ship inside the package: lover1_plugin/train/configs/ (see `config_path`)."""


def _stage(name: str) -> Callable[[Sequence[str]], int]:
    if name == "sft":
        from .sft import main as run
    elif name == "grpo":
        from .grpo import main as run
    else:
        from .toy import main as run
    return run


def config_path(name: str) -> str:
    """Path of a shipped config, e.g. ``config_path("stage3.yaml")`` or ``config_path("accelerate/single_gpu.yaml")``."""
    from importlib.resources import files

    return str(files("lover1_plugin.train").joinpath("configs", name))


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``[stage, *args]``; returns the exit status (2 for a usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    if stage not in ("sft", "grpo", "toy"):
        print(f"unknown training stage {stage!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return int(_stage(stage)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["USAGE", "config_path", "main"]
