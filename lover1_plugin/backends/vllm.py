"""The vLLM backend (optional extra, GPU only): tensor parallelism and prefix caching.

Install with ``pip install "lover1-plugin[vllm]"``. It answers the same rounds as the
transformers backend, from the same inputs:

- the prompt is the checkpoint's chat template rendered by its HF processor
  (:func:`lover1_plugin.inputs.render_text`), the assistant prefix appended verbatim;
- each view goes in ``multi_modal_data={"video": [(frames, metadata), ...]}`` as uint8
  ``(T, H, W, 3)`` frames already sampled, stamped and smart-resized by our renderer, with
  per-request ``mm_processor_kwargs`` that turn frame sampling and resizing off and give
  each view its real rate (``fps=[...]`` for transformers 4.x, ``video_metadata=[...]``
  for 5.x, as :func:`lover1_plugin.inputs.video_kwargs`). vLLM's multimodal processor
  cache is turned off (``mm_processor_cache_gb=0``): with per-request lists, a partial
  cache hit would hand the processor fewer videos than rates;
- decoding is greedy (``temperature=0``, ``repetition_penalty=1.0`` set explicitly, so
  the checkpoint's 1.05 cannot leak in), up to ``max_new_tokens``, stopping on the
  checkpoint's end-of-turn tokens; the returned text is decoded from the new token ids
  by the checkpoint's tokenizer exactly as the HF backend decodes it
  (``skip_special_tokens`` per call);
- after every call the number of ``<|video_pad|>`` tokens vLLM put in the prompt is
  checked against the view plans (:class:`~lover1_plugin.errors.ViewError` if vLLM
  resized or resampled a view).

Caveat: positions. vLLM computes Qwen2.5-VL's 3-D M-RoPE positions itself
(``get_mrope_input_positions``); there is no way to hand it the SPEC 1b positions the
HF backend passes explicitly. Results are exact only where vLLM's rule equals
transformers 4.49's (temporal id ``int(i * second_per_grid_t * tokens_per_second)``
from the block start, text after a block at the maximum position so far + 1; vLLM's
implementation in the versions read for this module follows it). A vLLM release with
another rule silently moves every token after the fast view. A warning saying so is
logged once when a model is loaded; compare a few answers with the HF backend
(``load_backend("hf", ...)``) after upgrading vLLM.

>>> backend = VLLMBackend.from_pretrained("iSEE-Laboratory/love-r1-stage3", tensor_parallel_size=2)  # doctest: +SKIP
>>> backend.generate(conversation, views)                                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import BackendError, CheckpointError, ConfigError, ViewError
from ..inputs import count_video_entries, render_text, video_kwargs
from ..tiny import resolve_model_path
from ..views import View, ViewPlan
from .base import DEFAULT_MAX_NEW_TOKENS
from .hf import QWEN2_5_VL_MODEL_TYPE, BackendStats

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "lover1-plugin[vllm]"'
DEFAULT_MAX_MODEL_LEN = 32768  # 768-frame fast view (10,752 tokens) + 3 zoom clips (12,096) + text + 2,048 new
DEFAULT_MAX_VIDEOS = 4  # fast view + up to 3 slow views per prompt
POSITIONS_WARNING = (
    "vLLM computes Qwen2.5-VL's 3-D RoPE positions itself; lover1-plugin cannot pass the positions the "
    "LOVE-R1 checkpoints were trained with (transformers 4.49's rule, SPEC 1b). Answers are exact only while "
    "this vLLM's get_mrope_input_positions follows that rule; compare with the 'hf' backend after upgrading vLLM."
)
_warned_positions = False


class VLLMUnavailableError(ConfigError, ImportError):
    """vLLM is not installed (or cannot be imported): ``pip install "lover1-plugin[vllm]"`` on a GPU machine.

    A :class:`~lover1_plugin.errors.ConfigError` (the backend setting cannot be honoured)
    and an ``ImportError``, so either ``except`` catches it.
    """


def import_vllm() -> ModuleType:
    """Import vLLM, or raise :class:`VLLMUnavailableError` naming the install command."""
    try:
        import vllm
    except ImportError as error:
        raise VLLMUnavailableError(
            f"the 'vllm' backend needs vLLM, which is not installed here ({error}); on a machine with a CUDA GPU "
            f"run: {INSTALL_HINT}  (or use the 'hf' backend)"
        ) from error
    return vllm


# --------------------------------------------------------------------------- pure conversion


class _HashableDict(dict):
    """A dict vLLM can hash: it caches HF processors keyed by the processor kwargs."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, _freeze(v)) for k, v in self.items())))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def video_metadata(plan: ViewPlan) -> dict[str, Any]:
    """What vLLM / transformers read about a view that is already sampled: its frames are the video.

    >>> plan = ViewPlan("v.mp4", "slow", (300, 315, 330, 345), 2.0, 476, 840, (10, 25), 30.0)
    >>> meta = video_metadata(plan)
    >>> meta["fps"], meta["total_num_frames"], meta["frames_indices"], meta["duration"]
    (2.0, 4, [0, 1, 2, 3], 2.0)
    """
    frames = plan.num_frames
    return {
        "fps": plan.sample_fps,
        "total_num_frames": frames,
        "frames_indices": list(range(frames)),
        "duration": frames / plan.sample_fps,
        "video_backend": "lover1_plugin",
        "do_sample_frames": False,
    }


def video_frames(view: View) -> np.ndarray:
    """The view as uint8 ``(T, H, W, 3)`` frames (its pixels are whole numbers in [0, 255]).

    >>> plan = ViewPlan("v.mp4", "fast", (0, 1), 1.0, 28, 56, (0, 2), 1.0)
    >>> video_frames(View(plan, torch.full((2, 3, 28, 56), 7.0))).shape
    (2, 28, 56, 3)
    """
    pixels = view.pixels.detach().to("cpu")
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def mm_processor_kwargs(views: Sequence[View], transformers_major: int) -> dict[str, Any]:
    """Per-request processor settings that keep every view exactly as planned (SPEC 1).

    transformers 5.x reads each view's rate from ``video_metadata``; 4.x from an ``fps``
    list (5.x rejects a list and ignores a scalar).

    >>> plan = ViewPlan("v.mp4", "fast", (0, 1), 0.5, 28, 56, (0, 4), 1.0)
    >>> view = View(plan, torch.zeros(2, 3, 28, 56))
    >>> sorted(mm_processor_kwargs([view], 4))
    ['do_resize', 'do_sample_frames', 'fps', 'size']
    >>> mm_processor_kwargs([view], 5)["video_metadata"]
    [{'fps': 0.5, 'total_num_frames': 2}]
    """
    if not views:
        return {}
    kwargs = {key: value for key, value in video_kwargs(views).items() if key != "videos"}
    metadata = kwargs.pop("video_metadata")
    if transformers_major >= 5:
        kwargs["video_metadata"] = [_HashableDict(item) for item in metadata]
    else:
        kwargs.pop("cap_pixels_per_frame", None)  # a 5.x setting
        kwargs["fps"] = [item["fps"] for item in metadata]
    if isinstance(kwargs.get("size"), dict):
        kwargs["size"] = _HashableDict(kwargs["size"])
    return kwargs


def build_request(
    processor: Any,
    conversation: list[dict],
    views: Sequence[View],
    *,
    assistant_prefix: str | None = None,
    transformers_major: int,
) -> dict[str, Any]:
    """The vLLM prompt dict of one round: ``prompt``, ``multi_modal_data``, ``mm_processor_kwargs``.

    Raises:
        ViewError: the conversation's video entries and the views do not pair up.
    """
    expected = count_video_entries(conversation)
    if expected != len(views):
        raise ViewError(f"the conversation has {expected} video entries but {len(views)} views were given")
    request: dict[str, Any] = {"prompt": render_text(processor, conversation, assistant_prefix=assistant_prefix)}
    if views:
        request["multi_modal_data"] = {"video": [(video_frames(v), video_metadata(v.plan)) for v in views]}
        request["mm_processor_kwargs"] = mm_processor_kwargs(views, transformers_major)
    return request


def greedy_sampling_kwargs(
    max_new_tokens: int, stop_token_ids: Sequence[int], *, skip_special_tokens: bool
) -> dict[str, Any]:
    """``SamplingParams`` keywords of SPEC 3's greedy decoding.

    >>> greedy_sampling_kwargs(16, [151645, 151643], skip_special_tokens=True)["repetition_penalty"]
    1.0
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return {
        "n": 1,
        "temperature": 0.0,  # greedy
        "top_p": 1.0,
        "repetition_penalty": 1.0,  # Qwen2.5-VL's generation_config.json says 1.05
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_tokens": max_new_tokens,
        "stop_token_ids": list(stop_token_ids),
        "skip_special_tokens": skip_special_tokens,
        "spaces_between_special_tokens": False,  # as the HF tokenizer decodes
    }


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _stop_token_ids(path: str, tokenizer: Any) -> list[int]:
    """The checkpoint's end-of-turn ids (``generation_config.json``), as HF ``generate`` stops on them."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:
        eos = None
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    return [int(i) for i in ids]


def _processor_cache_off(vllm: ModuleType) -> dict[str, Any]:
    """The engine argument that turns vLLM's multimodal processor cache off, for this vLLM version."""
    engine_args = getattr(vllm, "EngineArgs", None)
    names = {f.name for f in dataclasses.fields(engine_args)} if dataclasses.is_dataclass(engine_args) else set()
    if "mm_processor_cache_gb" in names:
        return {"mm_processor_cache_gb": 0}
    if "disable_mm_preprocessor_cache" in names:
        return {"disable_mm_preprocessor_cache": True}
    return {}


def _warn_positions_once() -> None:
    global _warned_positions
    if not _warned_positions:
        _warned_positions = True
        logger.warning(POSITIONS_WARNING)


# --------------------------------------------------------------------------- backend


class VLLMBackend:
    """Qwen2.5-VL through vLLM's offline ``LLM`` engine. Build it with :meth:`from_pretrained`.

    Args:
        llm: a ``vllm.LLM``.
        processor: the checkpoint's HF processor (chat template, tokenizer).
        stop_token_ids: end-of-turn token ids.
        vllm_module: the imported ``vllm`` module (for ``SamplingParams``).
    """

    def __init__(self, llm: Any, processor: Any, *, stop_token_ids: Sequence[int], vllm_module: ModuleType) -> None:
        self.llm = llm
        self.processor = processor
        self.stop_token_ids = list(stop_token_ids)
        self._vllm = vllm_module
        self._transformers_major = _transformers_major()
        self.stats = BackendStats()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        max_videos_per_prompt: int = DEFAULT_MAX_VIDEOS,
        **engine_kwargs: Any,
    ) -> VLLMBackend:
        """Start a vLLM engine on a Qwen2.5-VL checkpoint (hub id, local directory or ``"tiny"``).

        ``engine_kwargs`` go to ``vllm.LLM`` unchanged (``dtype``, ``seed``, ``enforce_eager``...).

        Raises:
            VLLMUnavailableError: vLLM is not installed (``pip install "lover1-plugin[vllm]"``).
            CheckpointError: the checkpoint is not a Qwen2.5-VL model.
        """
        vllm = import_vllm()
        from transformers import AutoConfig, AutoProcessor

        path = resolve_model_path(name_or_path)
        try:
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot read a model config from {name_or_path!r} ({error})") from error
        if getattr(config, "model_type", None) != QWEN2_5_VL_MODEL_TYPE:
            raise CheckpointError(
                f"{name_or_path!r} is a {getattr(config, 'model_type', None)!r} model; LOVE-R1 needs a Qwen2.5-VL "
                f"checkpoint (model_type {QWEN2_5_VL_MODEL_TYPE!r})"
            )
        processor = AutoProcessor.from_pretrained(path)
        arguments: dict[str, Any] = {
            "model": path,
            "tokenizer": path,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": enable_prefix_caching,
            "max_model_len": max_model_len,
            "limit_mm_per_prompt": {"image": 0, "video": max_videos_per_prompt},
            **_processor_cache_off(vllm),
        }
        arguments.update(engine_kwargs)
        _warn_positions_once()
        logger.info("starting vLLM on %s (tensor parallel %d)", path, tensor_parallel_size)
        llm = vllm.LLM(**arguments)
        return cls(llm, processor, stop_token_ids=_stop_token_ids(path, processor.tokenizer), vllm_module=vllm)

    def generate(
        self,
        conversation: list[dict],
        views: Sequence[View],
        *,
        assistant_prefix: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        skip_special_tokens: bool = False,
    ) -> str:
        """Greedy-decode the reply to one round; return only the new text.

        Raises:
            BackendError: vLLM refused or failed the request (e.g. a prompt over ``max_model_len``).
            ViewError: vLLM's prompt has another number of video tokens than the view plans.
        """
        request = build_request(
            self.processor,
            conversation,
            views,
            assistant_prefix=assistant_prefix,
            transformers_major=self._transformers_major,
        )
        params = self._vllm.SamplingParams(
            **greedy_sampling_kwargs(max_new_tokens, self.stop_token_ids, skip_special_tokens=skip_special_tokens)
        )
        try:
            outputs = self.llm.generate([request], params, use_tqdm=False)
        except (ValueError, RuntimeError) as error:
            visual = sum(view.plan.visual_tokens for view in views)
            raise BackendError(f"vLLM failed on a prompt with {visual} visual tokens: {error}") from error
        output = outputs[0]
        self._check_video_tokens(output.prompt_token_ids, views)
        new_tokens = list(output.outputs[0].token_ids)
        cached = int(getattr(output, "num_cached_tokens", None) or 0)
        self.stats.generate_calls += 1
        self.stats.cached_tokens += cached
        self.stats.prefill_tokens += len(output.prompt_token_ids) - cached
        self.stats.generated_tokens += len(new_tokens)
        return self.processor.tokenizer.decode(
            new_tokens, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )

    def _check_video_tokens(self, prompt_token_ids: Sequence[int] | None, views: Sequence[View]) -> None:
        if prompt_token_ids is None:
            return
        video_token_id = self.processor.video_token_id
        found = sum(1 for token in prompt_token_ids if token == video_token_id)
        planned = sum(view.plan.visual_tokens for view in views)
        if found != planned:
            raise ViewError(
                f"vLLM's prompt holds {found} video tokens, the view plans need {planned}: vLLM resized or "
                "resampled the views (check mm_processor_kwargs support in this vLLM / transformers pair)"
            )


__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "INSTALL_HINT",
    "VLLMBackend",
    "VLLMUnavailableError",
    "build_request",
    "greedy_sampling_kwargs",
    "import_vllm",
    "mm_processor_kwargs",
    "video_frames",
    "video_metadata",
]
