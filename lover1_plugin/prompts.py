"""The conversation the LOVE-R1 checkpoints were trained on (SPEC section 2), as pure functions.

Every constant here is verbatim from ``SPEC.md``: one changed character is a silent
input mismatch. Each round is a fresh two-message conversation (system, user); the
user message holds the fast view, the zoom clips sorted by start, then the question
text and (in the zoom loop) the zoom instruction.

>>> text = format_question("What is shown?", ["a cat", "a dog"], "mlvu")
>>> print(text)
What is shown?
Options:
(A) a cat
(B) a dog
Provide only the single option letter (e.g., A, B, C, D, etc.) as the answer.
>>> conversation = build_conversation(600, "Q?", [(100, 130)], zoom_instruction=False)
>>> render_user_text(conversation)
'Full video [0, 600]:<|vision_start|><|video_pad|><|vision_end|>Subset zoom-in video clip [100, 130]:<|vision_start|><|video_pad|><|vision_end|>Q?'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .config import QUESTION_FORMATS
from .errors import ConfigError

SYSTEM_PROMPT = (
    "You are a helpful assistant. The red numbers on each frame represent the timestamp in seconds "
    "and you can refer them during temporal grounding."
)
# One line; build_conversation joins it to the question with a single "\n".
ZOOM_INSTRUCTION = (
    "Based on the video and the user question, determine whether the visual content is sufficient to "
    "answer the question. If you have enough information, reason using the visual content and provide "
    "your final answer within \\boxed{}. Otherwise, you may zoom in a specific interval of the video "
    "related to the question for more details based on your reasoning. Also provide the time span of the "
    "interval in seconds within \\boxed{[start_time, end_time]}."
)
ANSWER_PREFIX = "I get the answer.\n\n"  # opening of a direct answer; forced-answer assistant prefix
ZOOM_PREFIX = "I need to zoom in on the video.\n\n"  # opening of a zoom request

# Question suffixes. Each carries its own leading separator, as SPEC writes it.
MC_SUFFIX = "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
LVBENCH_SUFFIX = "Respond with only the letter (A, B, C, or D) of the correct option."  # follows "{q}\n"
LONGVIDEOBENCH_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
NUMERICAL_SUFFIX = "\nProvide the numerical value (e.g., 42 or 3.14) without units as the answer."
FREE_FORM_SUFFIX = "\nProvide your text answer."
OCR_SUFFIX = " \nTranscribe text from the image/video clearly and provide your text answer."
TEMPORAL_GROUNDING_SUFFIX = "\nProvide the answer in list format, ie, [start_time, end_time]."

# What Qwen2.5-VL's chat template writes for one video / image part.
VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"

FULL_VIDEO_LABEL = "Full video [0, %d]:"
ZOOM_CLIP_LABEL = "Subset zoom-in video clip [%d, %d]:"

_MAX_OPTIONS = 26  # option letters A-Z


def _check_format(question_format: str) -> None:
    if question_format not in QUESTION_FORMATS:
        raise ConfigError(f"unknown question_format {question_format!r}; choose one of: {', '.join(QUESTION_FORMATS)}")


def _strip_letter(option: str, letter: str) -> str:
    """Drop a leading ``"A. "`` or ``"(A)"`` for the option's own letter.

    Only the letter of the option's position is stripped, and ``"A."`` only when a space
    (or nothing) follows, so ``"A.M. shift"`` in position A stays as it is.

    >>> _strip_letter("(B) a dog", "B"), _strip_letter("B. a dog", "B"), _strip_letter("B. a dog", "A")
    ('a dog', 'a dog', 'B. a dog')
    """
    pattern = rf"(?:\({letter}\)\s*|{letter}\.(?:\s+|$))"
    match = re.match(pattern, option)
    return option[match.end() :] if match else option


def _letters(options: Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(options, str):
        raise ValueError("options must be a sequence of option texts, not one string")
    if len(options) > _MAX_OPTIONS:
        raise ValueError(f"at most {_MAX_OPTIONS} options are supported, got {len(options)}")
    pairs = []
    for index, option in enumerate(options):
        if not isinstance(option, str):
            raise ValueError(f"option {index} must be a string, got {type(option).__name__}")
        pairs.append((chr(ord("A") + index), option))
    return pairs


def format_question(
    question: str,
    options: Sequence[str] | None = None,
    question_format: str = "mlvu",
    *,
    single_pass: bool = False,
) -> str:
    """The question text of SPEC 2 for one benchmark (without the zoom instruction).

    - ``videomme``: ``{q}\\n{c_1}\\n...\\n{c_k}\\n`` + ``MC_SUFFIX``; candidates are expected
      to read ``"A. ..."`` already (a bare text gets its ``"A. "``). With ``single_pass``
      (SPEC 3b) the suffix loses its leading newline.
    - ``mlvu`` / ``mvbench`` (and any other multiple choice): ``{q}\\nOptions:\\n(A) {c_1}...``
      + ``MC_SUFFIX``; options are bare texts, a leading ``"A. "`` / ``"(A) "`` is stripped.
    - ``lvbench``: ``{q}\\n`` + ``LVBENCH_SUFFIX`` always; ``options`` are ignored because
      LVBench questions list their options themselves.
    - ``longvideobench``: ``{q}\\nA. {c_1}\\n...\\nX. {c_k}`` + ``LONGVIDEOBENCH_SUFFIX``.
    - no options (``None`` or empty), except for ``lvbench``: the question alone (free form).

    >>> format_question("Q?", ["A. x", "B. y"], "videomme", single_pass=True)
    'Q?\\nA. x\\nB. y\\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer.'
    >>> format_question("Q?", ["x", "y"], "longvideobench")
    "Q?\\nA. x\\nB. y\\nAnswer with the option's letter from the given choices directly."
    >>> format_question("Q?")
    'Q?'

    Raises ``ConfigError`` for an unknown ``question_format``, ``ValueError`` for bad options.
    """
    _check_format(question_format)
    if not isinstance(question, str):
        raise ValueError(f"question must be a string, got {type(question).__name__}")
    if question_format == "lvbench":
        return f"{question}\n{LVBENCH_SUFFIX}"
    pairs = _letters(options) if options is not None else []
    if not pairs:
        return question
    if question_format == "videomme":
        lines = [opt if opt.startswith(f"{let}.") else f"{let}. {_strip_letter(opt, let)}" for let, opt in pairs]
        suffix = MC_SUFFIX[1:] if single_pass else MC_SUFFIX
        return question + "\n" + "".join(line + "\n" for line in lines) + suffix
    if question_format == "longvideobench":
        lines = [f"{let}. {_strip_letter(opt, let)}" for let, opt in pairs]
        return question + "".join("\n" + line for line in lines) + LONGVIDEOBENCH_SUFFIX
    # mlvu, mvbench: the MLVU format, the closest to training.
    lines = [f"({let}) {_strip_letter(opt, let)}" for let, opt in pairs]
    return question + "\nOptions:\n" + "\n".join(lines) + MC_SUFFIX


def to_single_pass(question_text: str, question_format: str) -> str:
    """Turn a zoom-mode question text (from ``format_question``) into its single-pass text.

    Only Video-MME differs (SPEC 3b): the blank line before the suffix goes. Texts that
    do not end in the zoom-mode Video-MME suffix come back unchanged, so the function is
    idempotent. The lmms-eval model needs it because lmms-eval hands it finished text.

    >>> to_single_pass("Q?\\nA. x\\n" + MC_SUFFIX, "videomme") == "Q?\\nA. x\\n" + MC_SUFFIX[1:]
    True
    """
    _check_format(question_format)
    zoom_tail = "\n" + MC_SUFFIX
    if question_format == "videomme" and question_text.endswith(zoom_tail):
        return question_text[: -len(MC_SUFFIX)] + MC_SUFFIX[1:]
    return question_text


def build_conversation(
    duration_label: int,
    question_text: str,
    slow_labels: Sequence[tuple[int, int]] = (),
    *,
    zoom_instruction: bool = True,
) -> list[dict[str, Any]]:
    """The HF chat messages of one round (SPEC 2).

    ``duration_label`` is ``int(D)``; ``slow_labels`` are the zoomed intervals (seconds),
    rendered with ``int()`` and sorted by start, so the caller must pass its slow views in
    ``sorted(slow_labels)`` order after the fast view. ``zoom_instruction=False`` gives the
    single-pass message (SPEC 3b: the question text alone).

    >>> messages = build_conversation(600, "Q?", [(100, 130)])
    >>> [part.get("text", "<video>")[:26] for part in messages[1]["content"]]
    ['Full video [0, 600]:', '<video>', 'Subset zoom-in video clip ', '<video>', 'Q?\\nBased on the video and ']
    """
    if not isinstance(question_text, str):
        raise ValueError(f"question_text must be a string, got {type(question_text).__name__}")
    labels = []
    for label in slow_labels:
        if len(label) != 2:
            raise ValueError(f"a zoom interval is (start, end), got {label!r}")
        labels.append((label[0], label[1]))
    content: list[dict[str, Any]] = [
        {"type": "text", "text": FULL_VIDEO_LABEL % int(duration_label)},
        {"type": "video"},
    ]
    for start, end in sorted(labels):
        content.append({"type": "text", "text": ZOOM_CLIP_LABEL % (int(start), int(end))})
        content.append({"type": "video"})
    text = f"{question_text}\n{ZOOM_INSTRUCTION}" if zoom_instruction else question_text
    content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]


def render_user_text(conversation: Sequence[dict[str, Any]]) -> str:
    """The user text as the chat template writes it: parts joined with no separator.

    Video parts become ``<|vision_start|><|video_pad|><|vision_end|>`` (one pad token here;
    the processor expands it to the view's tokens). For tests and debugging.
    """
    pieces: list[str] = []
    for message in conversation:
        if message.get("role") != "user":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            pieces.append(content)
            continue
        for part in content:
            kind = part.get("type")
            if kind == "text":
                pieces.append(part["text"])
            elif kind == "video":
                pieces.append(VIDEO_PLACEHOLDER)
            elif kind == "image":
                pieces.append(IMAGE_PLACEHOLDER)
            else:
                raise ValueError(f"unknown content part type {kind!r}")
    return "".join(pieces)


__all__ = [
    "ANSWER_PREFIX",
    "FREE_FORM_SUFFIX",
    "FULL_VIDEO_LABEL",
    "IMAGE_PLACEHOLDER",
    "LONGVIDEOBENCH_SUFFIX",
    "LVBENCH_SUFFIX",
    "MC_SUFFIX",
    "NUMERICAL_SUFFIX",
    "OCR_SUFFIX",
    "SYSTEM_PROMPT",
    "TEMPORAL_GROUNDING_SUFFIX",
    "VIDEO_PLACEHOLDER",
    "ZOOM_CLIP_LABEL",
    "ZOOM_INSTRUCTION",
    "ZOOM_PREFIX",
    "build_conversation",
    "format_question",
    "render_user_text",
    "to_single_pass",
]
