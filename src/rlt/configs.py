"""Configuration dataclasses. Every field has help text, so `rlt CMD --help` and YAML recipes (`--config`) come
for free through TRL's `TrlParser`."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlt.reward import RewardConfig

_DEFAULTS = RewardConfig()


@dataclass
class RewardArguments:
    """The frozen student, the text format and the RLT reward's coefficients (spec §2.7; RL-run defaults)."""

    student: str = field(
        default="smollm2-135m",
        metadata={"help": "Student model: Hub id, local path, or an embedded name (smollm2-135m)."},
    )
    style: str = field(default="stratos", metadata={"help": "Tag style of the texts: stratos or r1."})
    solution_coeffs: list[float] = field(
        default_factory=lambda: list(_DEFAULTS.solution_coeffs),
        metadata={"help": "Coefficients on (mean, min) of the student's solution log-probs."},
    )
    kl_coeffs: list[float] = field(
        default_factory=lambda: list(_DEFAULTS.kl_coeffs),
        metadata={"help": "Coefficients on (mean, max) of the teacher-student KL over the explanation."},
    )
    student_temperature: float = field(
        default=_DEFAULTS.student_temperature, metadata={"help": "Temperature of the student's log-probs."}
    )
    missing_end_tag_penalty: float = field(
        default=_DEFAULTS.missing_end_tag_penalty,
        metadata={"help": "Added when the explanation's closing tag is missing (<= 0)."},
    )
    schulman_kl: bool = field(default=False, metadata={"help": "Use the k3 estimator k - 1 + exp(-k) for the KL."})
    teacher_entropy: bool = field(
        default=True,
        metadata={"help": "Include the teacher's log-probs in the KL term (false: student cross-entropy only)."},
    )
    reward_token_budget: int = field(
        default=_DEFAULTS.token_budget,
        metadata={"help": "Padded tokens per forward micro-batch when computing the reward."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives in their repository (runs that code)."}
    )

    def reward_config(self, teacher_temperature: float) -> RewardConfig:
        return RewardConfig(
            solution_coeffs=tuple(self.solution_coeffs),
            kl_coeffs=tuple(self.kl_coeffs),
            student_temperature=self.student_temperature,
            teacher_temperature=teacher_temperature,
            missing_end_tag_penalty=self.missing_end_tag_penalty,
            schulman_kl=self.schulman_kl,
            teacher_entropy=self.teacher_entropy,
            token_budget=self.reward_token_budget,
        )


@dataclass
class ScoreArguments(RewardArguments):
    """`rlt score ROWS.jsonl --out SCORED.jsonl`: the RLT reward of given explanations."""

    rows: str = field(
        default="",
        metadata={"help": "JSONL with question, solution and explanation (the raw completion after the open tag)."},
    )
    out: str = field(default="scored.jsonl", metadata={"help": "Where to write the scored rows (JSONL)."})
    teacher: str = field(
        default="smollm2-135m", metadata={"help": "Teacher model: Hub id, local path, or smollm2-135m."}
    )
    teacher_temperature: float = field(
        default=_DEFAULTS.teacher_temperature, metadata={"help": "Temperature of the teacher's log-probs."}
    )
    details: bool = field(
        default=False, metadata={"help": "Also write the token ids and spans each component was computed on."}
    )
    batch_rows: int = field(
        default=64,
        metadata={
            "help": "Rows scored (and written) per round; forward passes are micro-batched "
            "within a round by --reward_token_budget."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Score only the first N rows."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N, or auto."})
    dtype: str = field(default="float32", metadata={"help": "Model dtype: float32, bfloat16 or float16."})
