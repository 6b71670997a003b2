"""LOVE-R1 training (SPEC 4): data records, sample builders and GRPO rewards.

Installed as ``lover1_plugin.train``. Samples are built with the same view planning and
prompts as inference (``lover1_plugin.video``, ``lover1_plugin.prompts``), so what a
checkpoint learns on is what the loop later shows it.

- :mod:`.schema`: ``SFTRecord`` / ``GRPORecord``, ``load_sft_records``, ``load_grpo_records``, ``DataError``.
- :mod:`.samples`: ``SampleSpec``, ``build_sft_sample``, ``drop_overlong``, ``build_grpo_step1`` / ``2``.
- :mod:`.rewards`: format / accuracy / grounding rewards, ``qa_reward``, ``group_advantages``.
"""

from .rewards import (
    Reward,
    accuracy_reward,
    format_reward,
    grounding_accuracy_reward,
    grounding_reward,
    group_advantages,
    is_masked,
    qa_reward,
    valid_zoom,
    zoom_rejection,
)
from .samples import (
    GRPO_VIEW_CONFIG,
    MAX_SFT_TOKENS,
    SFT_VIEW_CONFIG,
    SampleSpec,
    build_grpo_step1,
    build_grpo_step2,
    build_sft_sample,
    drop_overlong,
    grpo_question,
    sample_tokens,
)
from .schema import DataError, GRPORecord, SFTRecord, load_grpo_records, load_sft_records

__all__ = [
    "GRPO_VIEW_CONFIG",
    "MAX_SFT_TOKENS",
    "SFT_VIEW_CONFIG",
    "DataError",
    "GRPORecord",
    "Reward",
    "SFTRecord",
    "SampleSpec",
    "accuracy_reward",
    "build_grpo_step1",
    "build_grpo_step2",
    "build_sft_sample",
    "drop_overlong",
    "format_reward",
    "grounding_accuracy_reward",
    "grounding_reward",
    "group_advantages",
    "grpo_question",
    "is_masked",
    "load_grpo_records",
    "load_sft_records",
    "qa_reward",
    "sample_tokens",
    "valid_zoom",
    "zoom_rejection",
]
