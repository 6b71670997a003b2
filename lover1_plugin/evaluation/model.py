"""The shared core of the ``love_r1`` lmms-eval model: settings, one graph run per document.

:class:`LoveR1Model` turns ``--model_args`` into typed keywords, validates every setting
at start-up (before a model is loaded or a video decoded), loads the backend once, and
answers each request by running the one LOVE-R1 graph
(:func:`lover1_plugin.graphs.love_r1.run_love_r1`). The two lmms-eval interfaces differ
only in how a request carries its document: :class:`~lover1_plugin.evaluation.simple.LoveR1Simple`
(``Instance.args = (ctx, gen_kwargs, doc_to_visual, doc_id, task, split)``) and
:class:`~lover1_plugin.evaluation.chat.LoveR1Chat`
(``Instance.args = (ctx, doc_to_messages, gen_kwargs, doc_id, task, split)``).

What a request returns (the prediction lmms-eval hands to the task's ``process_results``
and writes to ``--log_samples``):

- ``save_trace=True`` (default): a JSON object ``{"answer": ..., "trace": {...}}``; the trace
  holds ``rounds``, ``intervals``, ``final`` (the forced-answer / single-pass turn),
  ``errors``, ``fast_view``, ``duration``, plus ``forced``, ``preset`` and ``wall_s`` (seconds
  spent on the document). The love_r1_* tasks score ``answer``; the whole string lands in
  lmms-eval's per-sample log (``resps`` / ``filtered_resps``);
- ``save_trace=False``: the answer text alone (for tasks that expect plain text).

A document that fails (unreadable video, a missing file, a backend error) never ends
the run: its answer is ``''`` (scored wrong) and the error is in its trace.

Precedence of settings: ``--model_args`` > the task's ``generation_kwargs``
(``love_r1_preset``, ``max_new_tokens``) > the preset's defaults (``config.PRESETS``).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from ..backends import Backend, load_backend
from ..config import PRESETS, Preset, get_preset
from ..errors import ConfigError
from ..graphs.context import LoveR1Context
from ..graphs.love_r1 import run_love_r1
from ..video import ViewRenderer
from . import DOCUMENT_FAILED, MODEL_ID
from .resume import ResumeLog, document_key

logger = logging.getLogger(__name__)

PRESET_KEY = "love_r1_preset"  # generation_kwargs key a task uses to pick its benchmark preset
BACKENDS = ("hf", "vllm")
MODES = ("zoom", "single")
TRACE_KEYS = ("rounds", "intervals", "final", "errors", "fast_view", "duration")
GENERATION_ONLY_TASKS = (
    "love_r1_videomme, love_r1_mlvu, love_r1_longvideobench, love_r1_lvbench, love_r1_mvbench, love_r1_needle"
)


# --------------------------------------------------------------------------- pure helpers


def make_accelerator() -> Any:
    """The ``accelerate`` process state (one process unless started by ``accelerate launch``)."""
    from accelerate import Accelerator

    return Accelerator()


def resolve_device(requested: str | None, *, num_processes: int, local_rank: int, default: str) -> str:
    """The device of this process: one GPU per local rank under ``accelerate launch``.

    >>> resolve_device(None, num_processes=1, local_rank=0, default="cpu")
    'cpu'
    >>> resolve_device("cuda", num_processes=4, local_rank=3, default="cuda:3")
    'cuda:3'
    >>> resolve_device("cpu", num_processes=2, local_rank=1, default="cpu")
    'cpu'
    """
    if requested is None:
        return default
    if num_processes > 1 and requested.startswith("cuda"):
        return f"cuda:{local_rank}"  # every rank on its own GPU, whatever index was asked for
    return requested


def check_batch_size(batch_size: Any) -> None:
    """LOVE-R1 runs one document at a time (its rounds depend on the previous round's text).

    >>> check_batch_size("1")
    >>> check_batch_size(8)
    Traceback (most recent call last):
    ...
    lover1_plugin.errors.ConfigError: batch_size=8 is not supported: love_r1 answers one document at a time (rounds depend on earlier rounds); use batch_size=1, and accelerate launch for data parallelism
    """
    if batch_size is None or str(batch_size).strip() == "1":
        return
    raise ConfigError(
        f"batch_size={batch_size} is not supported: love_r1 answers one document at a time "
        "(rounds depend on earlier rounds); use batch_size=1, and accelerate launch for data parallelism"
    )


def parse_bool(name: str, value: Any) -> bool:
    """A boolean model_arg (lmms-eval already turns ``true`` / ``False`` into bools).

    >>> parse_bool("save_trace", False), parse_bool("save_trace", "yes"), parse_bool("save_trace", 1)
    (False, True, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def preset_overrides(*, mode: str, font_path: str | None = None, **settings: Any) -> dict[str, Any]:
    """The ``get_preset`` overrides of the model_args (unset ones left to the preset).

    >>> preset_overrides(mode="zoom", num_fast=64, slow_res=None)
    {'mode': 'zoom', 'num_fast': 64}
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if font_path is not None and not Path(str(font_path)).is_file():
        raise ConfigError(f"font_path {font_path!r} is not a file")
    settings = {"mode": mode, **settings, "font_path": None if font_path is None else str(font_path)}
    return {key: value for key, value in settings.items() if value is not None}


def video_path(visual: Any) -> str:
    """The file path of one visual from ``doc_to_visual`` or a chat message's video part.

    >>> video_path("/data/a.mp4"), video_path({"url": "/data/b.mp4"}), video_path({"type": "video", "video": "c.mp4"})
    ('/data/a.mp4', '/data/b.mp4', 'c.mp4')
    """
    if isinstance(visual, (str, Path)):
        return str(visual)
    if isinstance(visual, Mapping):
        if visual.get("video_start") is not None or visual.get("video_end") is not None:
            raise ValueError(
                "video_start / video_end clips are not supported: LOVE-R1 reads the whole file "
                "(cut the clip into its own file, as SPEC 3c does for MVBench)"
            )
        for key in ("video", "url", "path"):
            if isinstance(visual.get(key), (str, Path)):
                return str(visual[key])
    raise ValueError(f"expected a video file path, got {type(visual).__name__}: {visual!r:.200}")


def first_video(visuals: Any) -> str:
    """The one video of a document (``doc_to_visual`` returns a list; LOVE-R1 reads its first entry)."""
    if visuals is None or (isinstance(visuals, Sequence) and not isinstance(visuals, str) and len(visuals) == 0):
        raise ValueError("the document has no video (doc_to_visual returned nothing)")
    if isinstance(visuals, (str, Path, Mapping)):
        return video_path(visuals)
    if len(visuals) > 1:
        logger.warning("LOVE-R1 reads one video per question; %d visuals given, using the first", len(visuals))
    return video_path(visuals[0])


def split_messages(messages: Sequence[Mapping[str, Any]], fallback_text: str) -> tuple[str, str]:
    """``(video path, question text)`` of lmms-eval chat messages (``doc_to_messages``).

    The question is the user turn's text, its parts joined with no separator (as the
    chat template joins them); ``fallback_text`` (the request's ``ctx``) when it has none.

    >>> split_messages([{"role": "user", "content": [{"type": "video", "url": "v.mp4"},
    ...                  {"type": "text", "text": "Which word?"}]}], "ctx")
    ('v.mp4', 'Which word?')
    """
    videos, texts = [], []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "video":
                videos.append(part.get("url", part.get("video")))
            elif part.get("type") == "text":
                texts.append(part.get("text", ""))
    return first_video(videos), "".join(texts) or fallback_text


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def build_response(state: Mapping[str, Any], *, save_trace: bool, preset: str, wall_s: float) -> str:
    """The prediction of one document: the answer, or ``{"answer", "trace"}`` as JSON.

    ``<`` and ``>`` are written as ``\\u003c`` / ``\\u003e`` (still valid JSON, same value):
    lmms-eval strips ``<think>...</think>`` blocks from predictions before scoring, which
    would otherwise cut the JSON apart when a model's raw text contains such tags.

    >>> build_response({"answer": "B"}, save_trace=False, preset="default", wall_s=1.0)
    'B'
    >>> json.loads(build_response({"answer": "B", "rounds": []}, save_trace=True, preset="default", wall_s=1.0))["answer"]
    'B'
    """
    answer = state.get("answer") or ""
    if not save_trace:
        return answer
    trace = {key: state.get(key) for key in TRACE_KEYS}
    trace["rounds"] = trace["rounds"] or []
    trace["intervals"] = trace["intervals"] or []
    trace["errors"] = trace["errors"] or []
    trace.update(forced=state.get("forced"), preset=preset, wall_s=round(wall_s, 3))
    text = json.dumps({"answer": answer, "trace": trace}, ensure_ascii=False, default=_jsonable)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _error_state(where: str, exc: BaseException) -> dict[str, Any]:
    return {"answer": "", "errors": [{"node": where, "type": type(exc).__name__, "message": str(exc)}]}


# --------------------------------------------------------------------------- the model


class LoveR1Model(lmms):
    """LOVE-R1 (zoom-in loop over a long video) for lmms-eval; subclasses say how a request carries its document.

    Args (``--model_args key=value,...``):
        pretrained: checkpoint directory or hub id; ``tiny`` = the built-in tiny random model.
        mode: ``zoom`` (the loop, SPEC 3) or ``single`` (one pass, the stage-1 protocol of SPEC 3b).
        device: ``cuda``, ``cuda:1``, ``cpu``...; default: the process's accelerator device
            (``cuda:{local_rank}`` under ``accelerate launch``).
        dtype: ``bfloat16`` / ``float32`` ... (backend default: bf16 on GPU, fp32 on CPU).
        attn_implementation: ``sdpa``, ``flash_attention_2``, ``eager``.
        backend: ``hf`` (transformers) or ``vllm``; from Python also a ready
            :class:`~lover1_plugin.backends.Backend` (tests inject a ``ScriptedBackend``).
        preset: benchmark preset for every task; default: the task's ``love_r1_preset``
            generation kwarg, else ``default``.
        num_fast, fast_res, num_slow, slow_res, max_rounds, max_new_tokens, font_path:
            override the preset's view / loop settings (``lover1_plugin.config``).
        save_trace: return ``{"answer", "trace"}`` JSON (default) instead of the bare answer.
        resume_log: a JSONL file of finished documents; a restarted run answers those from it
            (:mod:`lover1_plugin.evaluation.resume`).
        batch_size: must be 1. ``max_batch_size`` is accepted (lmms-eval passes it) and unused.

    Raises:
        ConfigError: an unknown key or invalid value, before any model is loaded.
        CheckpointError: ``pretrained`` is not a Qwen2.5-VL checkpoint (raised by the HF backend).
    """

    def __init__(
        self,
        pretrained: str = "tiny",
        mode: str = "zoom",
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        backend: str | Backend = "hf",
        preset: str | None = None,
        num_fast: int | None = None,
        fast_res: int | None = None,
        num_slow: int | None = None,
        slow_res: int | None = None,
        max_rounds: int | None = None,
        max_new_tokens: int | None = None,
        font_path: str | None = None,
        save_trace: bool = True,
        resume_log: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ConfigError(
                f"unknown model_args for {MODEL_ID}: {', '.join(sorted(unknown))}; valid keys: {', '.join(model_arg_names())}"
            )
        check_batch_size(batch_size)
        if isinstance(backend, str) and backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        if not isinstance(pretrained, str) or not pretrained:
            raise ConfigError(f"pretrained must be a checkpoint path or hub id, got {pretrained!r}")
        self.save_trace = parse_bool("save_trace", save_trace)
        self.preset_name = preset
        self.overrides = preset_overrides(
            mode=mode,
            num_fast=num_fast,
            fast_res=fast_res,
            num_slow=num_slow,
            slow_res=slow_res,
            max_rounds=max_rounds,
            max_new_tokens=max_new_tokens,
            font_path=font_path,
        )
        self._presets: dict[tuple[str, int | None], Preset] = {}
        self.preset_for({})  # validates every override (ConfigError) before anything is loaded

        self._join_processes(device)
        if isinstance(backend, str):
            kwargs = {"device": self._device, "dtype": dtype, "attn_implementation": attn_implementation}
            self.backend: Backend = load_backend(backend, model=pretrained, **{k: v for k, v in kwargs.items() if v})
        else:
            self.backend = backend
        self.renderer = ViewRenderer(font_path=self.overrides.get("font_path"))
        self._warned: set[str] = set()
        self.pretrained = pretrained
        self.resume_log = ResumeLog(resume_log, rank=self._rank) if resume_log else None

    def _join_processes(self, device: str | None) -> None:
        """Rank, world size and device of this process, as ``accelerate launch`` / ``torchrun`` set them."""
        self.accelerator = make_accelerator()
        self._world_size = int(self.accelerator.num_processes)
        self._rank = int(self.accelerator.process_index) if self._world_size > 1 else 0
        self._device = resolve_device(
            None if device is None else str(device),
            num_processes=self._world_size,
            local_rank=int(self.accelerator.local_process_index),
            default=str(self.accelerator.device),
        )
        if self._world_size > 1 and self.accelerator.is_local_main_process:
            logger.info("love_r1: %d processes with data parallelism", self._world_size)

    # ----------------------------------------------------------------- lmms-eval plumbing

    @property
    def device(self) -> torch.device:
        return torch.device(self._device)

    @property
    def batch_size(self) -> int:
        return 1

    def preset_for(self, gen_kwargs: Mapping[str, Any] | None) -> Preset:
        """The preset of a request: model_args > the task's generation kwargs > the preset defaults."""
        gen_kwargs = gen_kwargs or {}
        name = self.preset_name or gen_kwargs.get(PRESET_KEY) or "default"
        task_tokens = gen_kwargs.get("max_new_tokens") if "max_new_tokens" not in self.overrides else None
        if task_tokens is not None and (isinstance(task_tokens, bool) or not str(task_tokens).isdigit()):
            raise ConfigError(
                f"the task's generation_kwargs max_new_tokens must be a positive integer, got {task_tokens!r}"
            )
        key = (str(name), None if task_tokens is None else int(task_tokens))
        if key not in self._presets:
            overrides = dict(self.overrides)
            if key[1] is not None:
                overrides["max_new_tokens"] = key[1]
            self._presets[key] = get_preset(key[0], **overrides)
        return self._presets[key]

    def _warn_sampling(self, gen_kwargs: Mapping[str, Any]) -> None:
        sampling = {k: gen_kwargs[k] for k in ("temperature", "do_sample", "top_p", "num_beams") if k in gen_kwargs}
        asked = float(sampling.get("temperature") or 0) > 0 or bool(sampling.get("do_sample"))
        asked = asked or int(sampling.get("num_beams") or 1) > 1
        if asked and "sampling" not in self._warned:
            self._warned.add("sampling")
            logger.warning("love_r1 decodes greedily as the checkpoints were evaluated (SPEC 3); ignoring %s", sampling)

    # ----------------------------------------------------------------- requests

    def request_fields(self, args: tuple) -> tuple[str, Mapping[str, Any], int, str, str]:
        """``(ctx, gen_kwargs, doc_id, task, split)`` of one request."""
        raise NotImplementedError

    def video_and_question(self, args: tuple, doc: Mapping[str, Any]) -> tuple[str, str]:
        """``(video path, SPEC 2 question text)`` of one request's document."""
        raise NotImplementedError

    def answer_document(self, video: str, question_text: str, preset: Preset) -> dict[str, Any]:
        """Run the LOVE-R1 graph on one document; returns its final state."""
        context = LoveR1Context(backend=self.backend, preset=preset, renderer=self.renderer)
        return dict(run_love_r1(video, question_text, question_text=question_text, context=context, preset=preset.name))

    def _respond(self, args: tuple, preset: Preset) -> str:
        ctx, gen_kwargs, doc_id, task, split = self.request_fields(args)
        key = document_key(task, split, doc_id, ctx, self.pretrained, preset, self.save_trace)
        if self.resume_log is not None and (logged := self.resume_log.get(key)) is not None:
            return logged  # finished before the run was restarted
        start = time.perf_counter()
        try:
            doc = self.task_dict[task][split][doc_id]
            video, question_text = self.video_and_question(args, doc)
            state = self.answer_document(video, question_text, preset)
        except Exception as exc:  # one bad document must not end an evaluation of thousands
            logger.exception(
                "%s (document %s of %s/%s); it is scored as wrong and the run continues",
                DOCUMENT_FAILED,
                doc_id,
                task,
                split,
            )
            state = _error_state("request", exc)
        if state.get("errors"):
            logger.warning("love_r1: document %s of %s had errors: %s", doc_id, task, state["errors"])
        response = build_response(
            state, save_trace=self.save_trace, preset=preset.name, wall_s=time.perf_counter() - start
        )
        self.cache_hook.add_partial("generate_until", (ctx, gen_kwargs), response)
        if self.resume_log is not None and not state.get("errors"):
            self.resume_log.add(key, response)
        return response

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer every request with one LOVE-R1 graph run; results in request order."""
        fields = [self.request_fields(request.args) for request in requests]
        presets = [self.preset_for(gen_kwargs) for _, gen_kwargs, *_ in fields]  # ConfigError before any decoding
        for _, gen_kwargs, *_ in fields:
            self._warn_sampling(gen_kwargs or {})
        results = []
        with tqdm(total=len(requests), disable=(self.rank != 0), desc="Model Responding") as bar:
            for request, preset in zip(requests, presets, strict=True):
                results.append(self._respond(request.args, preset))
                bar.update(1)
        return results

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "love_r1 is generation-only: LOVE-R1 answers by zooming into the video and writing its answer in "
            "\\boxed{}, it does not score candidate continuations. Use generate_until tasks, e.g. "
            f'{GENERATION_ONLY_TASKS} (--include_path "$(lover1 tasks-path)").'
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "love_r1 is generation-only with its own zoom-in rounds inside generate_until; lmms-eval's "
            "multi-round tasks (generate_until_multi_round) are not supported. Use generate_until tasks, e.g. "
            f'{GENERATION_ONLY_TASKS} (--include_path "$(lover1 tasks-path)").'
        )


def model_arg_names() -> tuple[str, ...]:
    """Every key ``--model_args`` accepts (the typed keywords of :class:`LoveR1Model`)."""
    parameters = inspect.signature(LoveR1Model.__init__).parameters.values()
    return tuple(p.name for p in parameters if p.name != "self" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)


__all__ = [
    "BACKENDS",
    "MODES",
    "PRESET_KEY",
    "LoveR1Model",
    "build_response",
    "check_batch_size",
    "first_video",
    "make_accelerator",
    "model_arg_names",
    "parse_bool",
    "preset_overrides",
    "resolve_device",
    "split_messages",
    "video_path",
]
