"""lover1-plugin: LOVE-R1 (arXiv 2509.24786) long-video zoom-in reasoning for lmms-eval, LangGraph and TRL."""

__version__ = "0.1.0"
