"""LOVE-R1 as an lmms-eval model (``--model love_r1``) and the ``lover1 eval`` runner.

lmms-eval finds the model through the ``lmms_eval.models`` entry point declared in
``pyproject.toml``, which points at :func:`lover1_plugin.evaluation.manifest.get_manifests`.
The chat interface (:class:`~lover1_plugin.evaluation.chat.LoveR1Chat`) is used by
default, the simple one (:class:`~lover1_plugin.evaluation.simple.LoveR1Simple`) with
``--force_simple``; both run the one LOVE-R1 graph per document.

This package imports nothing heavy: lmms-eval loads the manifest while it builds its
model registry, before it knows which model will run.

    lmms-eval --model love_r1 --model_args pretrained=tiny,max_new_tokens=16 \\
        --tasks love_r1_needle --include_path "$(lover1 tasks-path)" --limit 2
"""

MODEL_ID = "love_r1"
# Opens the log line of a document that failed with an unexpected exception (the run goes
# on); ``lover1 eval`` knows that the traceback following it is not an lmms-eval failure.
DOCUMENT_FAILED = "love_r1: a document failed"

__all__ = ["DOCUMENT_FAILED", "MODEL_ID"]
