"""The lmms-eval entry point of LOVE-R1.

``pyproject.toml`` declares::

    [project.entry-points."lmms_eval.models"]
    love_r1 = "lover1_plugin.evaluation.manifest:get_manifests"

lmms-eval (>= 0.6.1) calls :func:`get_manifests` while it builds its model registry and
imports a class only when ``--model love_r1`` asks for it: the chat class by default,
the simple class with ``--force_simple``.

>>> manifest = get_manifests()
>>> manifest.model_id, manifest.chat_class_path.rsplit(".", 1)[-1], manifest.simple_class_path.rsplit(".", 1)[-1]
('love_r1', 'LoveR1Chat', 'LoveR1Simple')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import MODEL_ID

if TYPE_CHECKING:  # lmms-eval is an optional dependency ("eval" extra)
    from lmms_eval.models.registry_v2 import ModelManifest

SIMPLE_CLASS_PATH = "lover1_plugin.evaluation.simple.LoveR1Simple"
CHAT_CLASS_PATH = "lover1_plugin.evaluation.chat.LoveR1Chat"


def get_manifests() -> ModelManifest:
    """The ``love_r1`` model: one id, a simple and a chat implementation."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=SIMPLE_CLASS_PATH, chat_class_path=CHAT_CLASS_PATH)


__all__ = ["CHAT_CLASS_PATH", "SIMPLE_CLASS_PATH", "get_manifests"]
