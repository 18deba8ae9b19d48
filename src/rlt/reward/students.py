"""Several frozen students in one reward: one teacher whose explanations serve each of them.

The reward of an explanation is the weighted mean of each student's RLT reward (`rlt.reward.rlt_reward`),

    r = Σ_k w_k · r_k / Σ_k w_k,

where student k reads the explanation in its own chat (its tokenizer, chat template and the run's student system
prompt), is aligned to the teacher's tokens on its own (`rlt.reward.align`), and gives its own r_SS and r_KL. The
missing-tag penalty depends on the teacher's text alone, so it enters once. The teacher's log-probs over the
explanation depend on the teacher's tokens alone: they are computed once and shared by every student. A sample that
any student cannot score (too long for it, say) is not scored: a reward that left one student out would not be the
same reward.

With one student this is exactly `RLTReward`, which is what the loaders build then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from rlt.errors import UsageError
from rlt.reward import (
    AlignedSample,
    AlignmentError,
    RewardBreakdown,
    RewardConfig,
    RewardFunction,
    RLTReward,
    nan_penalties,
)
from rlt.reward.formats import STRATOS, TagStyle


@dataclass
class Student:
    """A frozen student of the reward: its name (in logs and outputs), model, tokenizer and weight."""

    name: str
    model: nn.Module
    tokenizer: object
    weight: float = 1.0


@dataclass
class StudentSamples:
    """One teacher completion aligned for each student: its AlignedSample, or why that student cannot score it."""

    by_student: dict[str, AlignedSample | AlignmentError]
    explanation: str = field(default="", repr=False)  # the text every student reads as the explanation


def student_names(specs: Sequence[str]) -> list[str]:
    """Short, distinct names for model specs: an embedded name as it is, a path or Hub id by its last part, repeats
    numbered (`student`, `student-2`)."""
    names: list[str] = []
    for spec in specs:
        base = Path(spec.rstrip("/")).name or spec
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def check_weights(weights: Sequence[float], count: int) -> list[float]:
    """The students' weights normalised to sum to 1; UsageError for a wrong count or a weight that cannot be one."""
    if len(weights) != count:
        raise UsageError(
            f"--student_weights takes one weight per student: {count} student(s), {len(weights)} weight(s)"
        )
    if any(not isinstance(w, int | float) or not math.isfinite(w) or w <= 0 for w in weights):
        # a student of weight 0 would still cost its forwards, and could leave samples unscored: leave it out instead
        raise UsageError(f"--student_weights must be finite numbers > 0, got {list(weights)}")
    return [w / sum(weights) for w in weights]


def students_identity(names: Sequence[str], specs: Sequence[str], weights: Sequence[float]):
    """The students as provenance records them: one student's model identity as it always was; several as a list of
    name, identity and normalised weight (a run against other students, or other weights, is another run)."""
    from rlt.provenance import model_identity

    if len(specs) == 1:
        return model_identity(specs[0])
    weights = check_weights(weights, len(specs))
    return [{"name": name, "model": model_identity(spec), "weight": weight}
            for name, spec, weight in zip(names, specs, weights, strict=True)]  # fmt: skip


def reward_identity(reward: RLTReward | MultiStudentReward):
    """`students_identity` of a loaded reward, from its student models' own paths."""
    own = student_rewards(reward)
    names = list(reward.rewards) if isinstance(reward, MultiStudentReward) else ["student"]
    weights = list(reward.weights.values()) if isinstance(reward, MultiStudentReward) else [1.0]
    return students_identity(names, [r.student.name_or_path for r in own], weights)


class MultiStudentReward(RewardFunction):
    """The RLT reward from several frozen students (see the module's docstring): for TRL's GRPOTrainer and for
    scoring offline, with `RLTReward`'s interface. `rewards` holds each student's own `RLTReward`, by name."""

    def __init__(
        self,
        students: Sequence[Student],
        tokenizer,
        teacher: nn.Module | None = None,
        config: RewardConfig | None = None,
        style: TagStyle | str = STRATOS,
    ):
        names = [s.name for s in students]
        if not students or len(set(names)) != len(names):
            raise UsageError(f"several students need distinct names, got {names}")
        self.weights = dict(zip(names, check_weights([s.weight for s in students], len(students)), strict=True))
        self.rewards = {s.name: _student_reward(s, tokenizer, teacher, config, style) for s in students}
        self._first = next(iter(self.rewards.values()))  # what every student shares: teacher, tokenizer, config

    @property
    def teacher(self) -> nn.Module | None:
        return self._first.teacher

    @teacher.setter
    def teacher(self, model: nn.Module | None) -> None:
        for reward in self.rewards.values():
            reward.teacher = model

    @property
    def tokenizer(self):
        return self._first.tokenizer

    @property
    def config(self) -> RewardConfig:
        return self._first.config

    @property
    def style(self) -> TagStyle:
        return self._first.style

    def encoded_prompt(self, prompt: str) -> tuple[int, ...]:
        return self._first.encoded_prompt(prompt)

    def explanation_of(self, completion_ids: Sequence[int]) -> str:
        return self._first.explanation_of(completion_ids)

    def floor(self, reason: str = "not scored") -> RewardBreakdown:
        return self._first.floor(reason)

    # ------------------------------------------------------------------------------------------ alignment

    def _joined(self, per_student: dict[str, list]) -> list[StudentSamples]:
        rows = zip(*per_student.values(), strict=True)
        joined = []
        for samples in rows:
            aligned = [s for s in samples if isinstance(s, AlignedSample)]
            by_student = dict(zip(per_student, samples, strict=True))
            joined.append(StudentSamples(by_student, aligned[0].explanation if aligned else ""))
        return joined

    def align_sampled(self, questions, solutions, prompt_ids, completion_ids) -> list[StudentSamples]:
        """`RLTReward.align_sampled` for every student."""
        return self._joined({name: reward.align_sampled(questions, solutions, prompt_ids, completion_ids)
                             for name, reward in self.rewards.items()})  # fmt: skip

    def align_texts(self, rows: Sequence[dict]) -> list[StudentSamples]:
        """`RLTReward.align_texts` for every student."""
        return self._joined({name: reward.align_texts(rows) for name, reward in self.rewards.items()})

    # ------------------------------------------------------------------------------------------- scoring

    def score(
        self,
        samples: Sequence[StudentSamples | None],
        teacher: nn.Module | None = None,
        teacher_logprobs=None,
        per_token: bool = False,
    ) -> list[RewardBreakdown]:
        """Each sample's combined breakdown, with every student's own under `students`; one teacher forward (or the
        trainer's log-probs) serves every student, and each student's forwards are batched as `RLTReward.score`'s.
        A sample some student cannot score gets the floor, with that student's reason."""
        samples = [s if isinstance(s, StudentSamples) else StudentSamples({}) for s in samples]
        # The teacher's tokens and explanation span are the same for every student that aligned a sample: any one's.
        teacher_side = [next((a for a in s.by_student.values() if isinstance(a, AlignedSample)), None) for s in samples]
        explanation_lp = self._first.teacher_explanation_logprobs(teacher_side, teacher, teacher_logprobs)
        own = {
            name: reward.score([s.by_student.get(name) for s in samples], per_token=per_token,
                               explanation_logprobs=explanation_lp)
            for name, reward in self.rewards.items()
        }  # fmt: skip
        return [self._combined({name: breakdowns[i] for name, breakdowns in own.items()}) for i in range(len(samples))]

    def weighted_mean(self, values: dict[str, float], fill: float | None = None) -> float:
        """The weighted mean of one value per student. A NaN counts as `fill` when one is given (the number the
        reward used in its place); else the weights are renormalised over the students with a number. NaN when no
        student has one."""
        if all(math.isnan(v) for v in values.values()):
            return math.nan
        if fill is not None:
            values = {name: fill if math.isnan(v) else v for name, v in values.items()}
        finite = {name: v for name, v in values.items() if not math.isnan(v)}
        return sum(self.weights[n] * v for n, v in finite.items()) / sum(self.weights[n] for n in finite)

    def _combined(self, own: dict[str, RewardBreakdown]) -> RewardBreakdown:
        unscored = [(name, b.alignment_error) for name, b in own.items() if not b.aligned]
        if unscored:
            combined = self.floor("; ".join(f"student {name}: {why}" for name, why in unscored))
        else:
            # A component NaN for one student (no KL chunk in its tokens) entered its reward as the penalty
            # (`rlt.reward.combine`): averaged as that number, the shown components reproduce the combined reward.
            fills = {"reward": None, **nan_penalties(self.config)}
            averaged = {k: self.weighted_mean({n: getattr(b, k) for n, b in own.items()}, fills[k]) for k in fills}
            first = next(iter(own.values()))  # the closing tag is the teacher's: every student found the same
            combined = replace(first, **averaged, per_token=None,
                               kl_edge_tokens_dropped=sum(b.kl_edge_tokens_dropped for b in own.values()))  # fmt: skip
        combined.students = own
        return combined


def _student_reward(student: Student, tokenizer, teacher, config, style) -> RLTReward:
    try:
        return RLTReward(student.model, tokenizer, teacher, config, style, student_tokenizer=student.tokenizer)
    except UsageError as e:
        raise UsageError(f"student {student.name}: {e}") from None


def build_reward(
    students: Sequence[Student],
    tokenizer,
    teacher: nn.Module | None = None,
    config: RewardConfig | None = None,
    style: TagStyle | str = STRATOS,
) -> RLTReward | MultiStudentReward:
    """The reward from `students`: `RLTReward` for one (today's reward, its weight irrelevant), else the weighted
    `MultiStudentReward`."""
    if len(students) == 1:
        (only,) = students
        return RLTReward(only.model, tokenizer, teacher, config, style, student_tokenizer=only.tokenizer)
    return MultiStudentReward(students, tokenizer, teacher, config, style)


def student_rewards(reward: RLTReward | MultiStudentReward) -> list[RLTReward]:
    """Each student's own `RLTReward` (the reward itself when it has one student): where its model is placed."""
    return list(reward.rewards.values()) if isinstance(reward, MultiStudentReward) else [reward]
