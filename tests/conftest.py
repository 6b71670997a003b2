"""Shared test set-up: offline hub access, a private cache, and the tiny model / scripted backend fixtures."""

from __future__ import annotations

import os
import tempfile

import pytest

# Nothing may be downloaded from a model hub, in tests or elsewhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LANGGRAPH_CLI_NO_ANALYTICS", "1")
os.environ.setdefault("LANGGRAPH_NO_VERSION_CHECK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The package caches the tiny model, demo videos and needle data here; tests get their own.
os.environ.setdefault("LOVER1_CACHE", tempfile.mkdtemp(prefix="lover1-test-cache-"))


@pytest.fixture(scope="session")
def tiny_model_path():
    """Path of the tiny random Qwen2.5-VL checkpoint (built once per test session)."""
    from lover1_plugin.tiny import build_tiny_model

    return build_tiny_model()


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_path):
    """An HF backend on the tiny model (CPU, fp32), shared by the session."""
    from lover1_plugin.backends.hf import HFBackend

    return HFBackend.from_pretrained(str(tiny_model_path), device="cpu")
