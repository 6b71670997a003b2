"""The transformers backend: any Qwen2.5-VL checkpoint, greedy, SPEC 1b positions, cache reuse.

What it guarantees on every call:

- inputs come from :func:`lover1_plugin.inputs.build_inputs` (the same function the
  training collators use), checked against the view plans;
- the SPEC 1b position ids are passed to the model explicitly, for the prompt and for
  every decode step. transformers 5.x keeps explicit 3-D ``position_ids`` through
  ``generate``: the prompt's are sliced per step and each new token gets the last
  position + 1 on all three axes, which is the 4.49 rule for text after text, so no
  ``prepare_inputs_for_generation`` override is needed. When the installed
  transformers would compute other positions on its own (5.24 places text after a
  video at ``start + max(h, w) / 2``) a warning is logged once;
- greedy decoding exactly as SPEC 3: ``do_sample=False``, ``repetition_penalty=1.0``
  and neutral sampling settings are set explicitly, so a checkpoint's
  ``generation_config.json`` (Qwen2.5-VL ships ``repetition_penalty=1.05``) cannot leak
  in (transformers 5.x fills every unset field of a passed generation config from the
  checkpoint's).

With ``reuse=True`` (the default) the backend also keeps, across rounds and across
questions on one video:

- the vision tower's output per view (keyed by its plan and a pixel checksum), handed
  to the model as ``mm_encoder_outputs`` instead of pixels; the prompt is then built
  with :func:`lover1_plugin.inputs.build_text_inputs` (equal to ``build_inputs`` but
  without pixels) and only views not seen before go through the video processor;
- the KV caches of prompt prefixes ending on a ``<|vision_end|>``: system prompt,
  ``Full video [0, D]:`` and the fast view, then the same plus each zoom clip that
  stays in place. A round starts from the longest stored prefix, prefills up to its
  last view and stores that prefix for the next round (which keeps this round's clips
  and adds one) and for later questions zooming into the same clips. Each call gets a
  deep copy (``generate`` extends caches in place) plus the full ``input_ids`` and
  positions; ``generate`` only runs the uncached tokens.

Greedy outputs are token-identical with and without reuse (tested on the tiny model).
``stats`` counts prefill tokens, cached tokens, vision encodes and cache hits.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import logging
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

try:
    from huggingface_hub.errors import StrictDataclassError  # invalid config fields (transformers 5.x)
except ImportError:  # older huggingface_hub
    StrictDataclassError = ValueError

from ..errors import BackendError, CheckpointError, GenerationOOMError
from ..inputs import build_inputs, build_text_inputs, process_views
from ..tiny import resolve_model_path
from ..views import View
from .base import DEFAULT_MAX_NEW_TOKENS

logger = logging.getLogger(__name__)

QWEN2_5_VL_MODEL_TYPE = "qwen2_5_vl"
OOM_HINT = (
    "lower the visual token count: fewer or smaller fast-view frames (num_fast / fast_res) "
    "or zoom-clip frames (num_slow / slow_res)"
)


@dataclass
class BackendStats:
    """Counters benchmarks read. ``prefill_tokens + cached_tokens`` = all prompt tokens seen."""

    generate_calls: int = 0
    prefill_tokens: int = 0  # prompt tokens run through the language model
    cached_tokens: int = 0  # prompt tokens whose KV came from a stored prefix
    generated_tokens: int = 0
    vision_encodes: int = 0  # views run through the vision tower
    vision_cache_hits: int = 0  # views whose vision-tower output came from the cache

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        for name in self.as_dict():
            setattr(self, name, 0)


class _LRU:
    """A small least-recently-used map (caches hold GPU tensors: keep them bounded)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache size must be >= 0, got {size}")
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class HFBackend:
    """Qwen2.5-VL through transformers. Build it with :meth:`from_pretrained`.

    Args:
        model: a loaded ``Qwen2_5_VLForConditionalGeneration`` (eval mode).
        processor: its ``Qwen2_5_VLProcessor``.
        reuse: keep vision-tower outputs and the prompt-prefix KV cache between calls.
        vision_cache_size: views whose vision-tower outputs are kept.
        prefix_cache_size: prompt prefixes whose KV caches are kept (a 3-round question
            stores up to three: the fast view, then each zoom clip appended to it). On the
            7B checkpoints in bf16 a prefix takes 56 KiB per token (28 layers x 2 x 4 KV
            heads x 128 x 2 bytes): ~0.6 GiB for a 768-frame fast view, ~1 GiB with two
            clips; lower it when GPU memory is tight (0 turns prefix reuse off).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        reuse: bool = True,
        vision_cache_size: int = 16,
        prefix_cache_size: int = 4,
    ) -> None:
        self.model = model
        self.processor = processor
        self.reuse = reuse
        self.stats = BackendStats()
        self._vision_cache = _LRU(vision_cache_size)
        self._prefix_cache = _LRU(prefix_cache_size)
        config = model.config
        self._tokens_per_second = int(config.vision_config.tokens_per_second)
        self._vision_end_id = int(config.vision_end_token_id)
        forward_parameters = inspect.signature(model.forward).parameters
        # transformers 5.x renames `past_key_values` to `cache` (5.24 accepts both)
        self._cache_kwarg = "cache" if "cache" in forward_parameters else "past_key_values"
        if reuse and "mm_encoder_outputs" not in forward_parameters:
            logger.warning(
                "this transformers release cannot take pre-computed vision outputs (mm_encoder_outputs); "
                "running without cache reuse"
            )
            self.reuse = False
        self._rope_warned = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        attn_implementation: str | None = None,
        reuse: bool = True,
        **cache_sizes: int,
    ) -> HFBackend:
        """Load a Qwen2.5-VL checkpoint: a hub id, a local directory, or ``"tiny"``.

        Defaults: CUDA if available, else CPU; bf16 + flash_attention_2 (sdpa when
        flash-attn is not installed) on CUDA, fp32 + sdpa on CPU.

        Raises:
            CheckpointError: no ``config.json`` can be read, it is not a Qwen2.5-VL model
                (checked on the raw JSON, before any config class or weight is built), or
                the checkpoint does not load.
        """
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        path = check_checkpoint(name_or_path)
        device = torch.device(device) if device is not None else default_device()
        torch_dtype = resolve_dtype(dtype, device)
        attention = attn_implementation or default_attention(device)
        logger.info("loading %s on %s (%s, %s attention)", path, device, torch_dtype, attention)
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, dtype=torch_dtype, attn_implementation=attention, device_map=str(device)
            )
            processor = AutoProcessor.from_pretrained(path)
        except (OSError, ValueError, StrictDataclassError) as error:
            raise CheckpointError(
                f"cannot load the Qwen2.5-VL checkpoint {name_or_path!r}: {_one_line(error)}"
            ) from error
        if getattr(processor, "video_processor", None) is None:
            raise CheckpointError(f"{name_or_path!r} has no video processor; is it a Qwen2.5-VL checkpoint?")
        model.eval()
        return cls(model, processor, reuse=reuse, **cache_sizes)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def clear_caches(self) -> None:
        """Drop the cached vision-tower outputs and prefix KV caches."""
        self._vision_cache.clear()
        self._prefix_cache.clear()

    # --------------------------------------------------------------- generation
    def build_inputs(self, conversation: list[dict], views: Sequence[View], *, assistant_prefix: str | None = None):
        """The model inputs of one round (:func:`lover1_plugin.inputs.build_inputs` with this model's settings)."""
        return build_inputs(
            self.processor,
            conversation,
            views,
            assistant_prefix=assistant_prefix,
            tokens_per_second=self._tokens_per_second,
        )

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
            GenerationOOMError: the accelerator ran out of memory (the message gives the
                visual token count and what to lower).
            ViewError: the processor output disagrees with the view plans.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        build = build_text_inputs if self.reuse else build_inputs
        inputs = build(
            self.processor,
            conversation,
            views,
            assistant_prefix=assistant_prefix,
            tokens_per_second=self._tokens_per_second,
        )
        self._check_transformers_positions(inputs)
        length = inputs["input_ids"].shape[1]
        self.stats.generate_calls += 1
        try:
            inputs = inputs.to(self.device)
            config = self.generation_config(max_new_tokens)
            with torch.no_grad():
                if self.reuse:
                    output = self._generate_reusing(inputs, views, config)
                else:
                    output = self._generate_plain(inputs, views, config)
        except torch.OutOfMemoryError as error:
            self.clear_caches()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise GenerationOOMError(sum(view.plan.visual_tokens for view in views), length, OOM_HINT) from error
        new_tokens = output[0, length:]
        self.stats.generated_tokens += int(new_tokens.shape[0])
        return self.processor.tokenizer.decode(
            new_tokens, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )

    def generation_config(self, max_new_tokens: int):
        """SPEC 3 greedy decoding, every field a checkpoint default could change set explicitly."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            num_return_sequences=1,
            repetition_penalty=1.0,  # Qwen2.5-VL's generation_config.json says 1.05
            no_repeat_ngram_size=0,
            min_length=0,  # (min_new_tokens=0 would add a per-step EOS-mask processor that does nothing)
            temperature=1.0,  # neutral values: greedy ignores them, but none may come from the checkpoint
            top_p=1.0,
            top_k=50,  # transformers' neutral default (no greedy-mode warning)
        )

    def _generate_plain(self, inputs, views: Sequence[View], config) -> torch.Tensor:
        """One ``generate`` over the whole prompt, pixels included."""
        self.stats.vision_encodes += len(views)
        self.stats.prefill_tokens += int(inputs["input_ids"].shape[1])
        return self.model.generate(**inputs, generation_config=config)

    def _generate_reusing(self, inputs, views: Sequence[View], config) -> torch.Tensor:
        """``generate`` from a copy of the longest cached prefix KV, with cached vision outputs for the rest."""
        input_ids = inputs["input_ids"]
        length = input_ids.shape[1]
        view_keys = [view_key(view) for view in views]
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": inputs["attention_mask"],
            "position_ids": inputs["position_ids"],
        }
        if "mm_token_type_ids" in inputs:
            kwargs["mm_token_type_ids"] = inputs["mm_token_type_ids"]
        prefix_len, prefix_views = 0, 0
        boundaries = self._prefix_boundaries(input_ids)
        if boundaries:
            prefix_len, prefix_views = boundaries[-1]
            cache = self._prefix_kv(inputs, views, view_keys, boundaries)
            kwargs[self._cache_kwarg] = copy.deepcopy(cache)  # generate extends the cache it is given
        if prefix_views < len(views):
            features = self._video_features(views, view_keys, range(prefix_views, len(views)))
            kwargs["mm_encoder_outputs"] = _encoder_outputs(features)
        self.stats.prefill_tokens += length - prefix_len
        return self.model.generate(**kwargs, generation_config=config)

    def _prefix_kv(self, inputs, views: Sequence[View], view_keys: list, boundaries: list[tuple[int, int]]):
        """KV cache of the prompt up to its last boundary: the longest stored prefix, extended and stored if shorter."""
        token_list = inputs["input_ids"][0].tolist()

        def prefix_key(tokens: int, videos: int) -> tuple:
            return (tuple(token_list[:tokens]), tuple(view_keys[:videos]))

        cache, cached_len, cached_views = None, 0, 0
        for tokens, videos in reversed(boundaries):  # the longest stored prefix wins
            cache = self._prefix_cache.get(prefix_key(tokens, videos))
            if cache is not None:
                cached_len, cached_views = tokens, videos
                break
        self.stats.cached_tokens += cached_len
        prefix_len, prefix_views = boundaries[-1]
        if cached_len < prefix_len:
            features = self._video_features(views, view_keys, range(cached_views, prefix_views))
            cache = self._prefill(inputs, cache, cached_len, prefix_len, features)
            self._prefix_cache.put(prefix_key(prefix_len, prefix_views), cache)
        return cache

    def _prefix_boundaries(self, input_ids: torch.Tensor) -> list[tuple[int, int]]:
        """``(tokens, videos)`` of every reusable prefix: each one ends on a ``<|vision_end|>``.

        Every round is a fresh conversation whose views come first (fast view, then the
        slow views sorted by start) and whose question text comes last, so the prefix up
        to a view's end is shared by the later rounds of a question that keep that clip in
        place, and by other questions on the same video that zoom into the same clips.
        A prefix must leave at least one token to generate from.
        """
        ids = input_ids[0]
        ends = ((ids == self._vision_end_id).nonzero().flatten() + 1).tolist()
        return [(end, index + 1) for index, end in enumerate(ends) if end < ids.shape[0]]

    def _prefill(self, inputs, cache, start: int, end: int, features: list[torch.Tensor]):
        """Run prompt tokens ``start:end`` on a copy of ``cache`` (the KV of tokens ``:start``) and return the result."""
        kwargs = {self._cache_kwarg: copy.deepcopy(cache)} if cache is not None else {}
        output = self.model(
            input_ids=inputs["input_ids"][:, start:end],
            attention_mask=inputs["attention_mask"][:, :end],
            position_ids=inputs["position_ids"][..., start:end],
            mm_encoder_outputs=_encoder_outputs(features) if features else None,
            use_cache=True,
            logits_to_keep=1,  # the prefix's logits are never used
            **kwargs,
        )
        self.stats.prefill_tokens += end - start
        cache = getattr(output, self._cache_kwarg, None)
        if cache is None:
            raise BackendError("the model returned no KV cache for the prompt prefix; run with reuse=False")
        return cache

    def _video_features(self, views: Sequence[View], keys: list, indices: range) -> list[torch.Tensor]:
        """Vision-tower outputs of ``views[indices]``: cached ones reused, the others encoded in one pass."""
        features: dict[int, torch.Tensor] = {}
        missing = []
        for index in indices:
            cached = self._vision_cache.get(keys[index])
            if cached is None:
                missing.append(index)
            else:
                features[index] = cached
        self.stats.vision_cache_hits += len(indices) - len(missing)
        if missing:
            processed = process_views(self.processor, [views[index] for index in missing]).to(self.device)
            encoded = self.model.get_video_features(
                processed["pixel_values_videos"], processed["video_grid_thw"], return_dict=True
            ).pooler_output
            for index, feature in zip(missing, encoded, strict=True):
                features[index] = feature
                self._vision_cache.put(keys[index], feature)
            self.stats.vision_encodes += len(missing)
        return [features[index] for index in indices]

    def _check_transformers_positions(self, inputs) -> None:
        """Warn once when the installed transformers would place tokens differently from SPEC 1b."""
        if self._rope_warned or inputs.get("video_grid_thw") is None or "mm_token_type_ids" not in inputs:
            return
        base = getattr(self.model, "model", None)
        try:
            theirs, _ = base.get_rope_index(
                inputs["input_ids"],
                inputs["mm_token_type_ids"],
                video_grid_thw=inputs["video_grid_thw"],
                second_per_grid_ts=inputs["second_per_grid_ts"],
                attention_mask=inputs["attention_mask"],
            )
        except (AttributeError, TypeError, ValueError, RuntimeError) as error:
            logger.debug("cannot compare with transformers' get_rope_index: %s", error)
            return
        ours = inputs["position_ids"]
        if theirs.shape == ours.shape and torch.equal(theirs.to(ours.device), ours):
            return
        self._rope_warned = True
        differ = (theirs.to(ours.device) != ours).any(dim=0)[0].nonzero().flatten()
        first = int(differ[0]) if differ.numel() else -1
        logger.warning(
            "the installed transformers computes other 3-D RoPE positions than the ones LOVE-R1 was trained with "
            "(first difference at token %d: %s vs %s); the backend passes the trained (SPEC 1b) positions explicitly",
            first,
            theirs[:, 0, first].tolist() if first >= 0 else None,
            ours[:, 0, first].tolist() if first >= 0 else None,
        )


def _encoder_outputs(features: list[torch.Tensor]) -> dict[str, Any]:
    """Pre-computed vision-tower outputs in the form ``mm_encoder_outputs`` takes."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return {"video": BaseModelOutputWithPooling(pooler_output=tuple(features))}


_CHECKSUMS: weakref.WeakKeyDictionary[View, float] = weakref.WeakKeyDictionary()


def check_checkpoint(name_or_path: str) -> str:
    """Resolve ``name_or_path`` (``"tiny"`` included) and check it is a Qwen2.5-VL checkpoint, reading only its config.

    Returns the resolved path. Raises :class:`CheckpointError` otherwise, before any weights load.
    """
    path = resolve_model_path(name_or_path)
    model_type = read_model_type(path)
    if model_type != QWEN2_5_VL_MODEL_TYPE:
        raise CheckpointError(
            f"{name_or_path!r} is a {model_type!r} model; LOVE-R1 needs a Qwen2.5-VL checkpoint "
            f"(model_type {QWEN2_5_VL_MODEL_TYPE!r})"
        )
    return path


def read_model_type(path: str) -> str:
    """``model_type`` of a checkpoint's ``config.json``, read as plain JSON (no config class is built).

    Raises:
        CheckpointError: there is no readable ``config.json`` at ``path``.
    """
    from transformers import PretrainedConfig

    hint = "pass a local Qwen2.5-VL checkpoint directory, a hub id such as 'iSEE-Laboratory/love-r1-stage3', or 'tiny'"
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(path)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read a model config from {path!r} ({_one_line(error)}); {hint}") from error
    if not config_dict.get("model_type"):
        # transformers returns an empty config for a local directory without config.json
        raise CheckpointError(f"cannot read a model config from {path!r} (no config.json with a model_type); {hint}")
    return config_dict["model_type"]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def view_key(view: View) -> tuple:
    """Cache key of a view: its plan plus a pixel checksum (same plan, other font -> other key).

    The checksum is computed once per ``View`` object (views are immutable and renderers
    hand the same object to every round), so later rounds pay nothing for it.
    """
    checksum = _CHECKSUMS.get(view)
    if checksum is None:
        checksum = float(torch.sum(view.pixels, dtype=torch.float64))
        _CHECKSUMS[view] = checksum
    return (view.plan, checksum)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` -> bf16 on CUDA, fp32 elsewhere; strings such as ``"bfloat16"`` -> the torch dtype."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'bfloat16', 'float16' or 'float32'")
    return resolved


def default_attention(device: torch.device) -> str:
    """flash_attention_2 on CUDA when flash-attn is installed, else sdpa."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


__all__ = [
    "OOM_HINT",
    "BackendStats",
    "HFBackend",
    "default_attention",
    "check_checkpoint",
    "read_model_type",
    "resolve_dtype",
    "view_key",
]
