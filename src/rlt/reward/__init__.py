"""The RLT reward: how well a frozen student understands the solution after reading the teacher's explanation.

The formula lives in `rlt_reward`; `RLTReward` builds both sequences, batches the forward passes and plugs into TRL.
Which tokens are scored is decided in `rlt.reward.align`: the student's chat is tokenised whole by the student's own
tokenizer (what it is distilled on and prompted with), the teacher's tokens are the ones it sampled, and both are
located by character offsets, so teacher and student may use different tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from rlt.errors import UsageError
from rlt.reward.align import AlignedSample, AlignmentError, SampleAligner, Span, token_texts
from rlt.reward.formats import STRATOS, TagStyle, get_style
from rlt.reward.logprobs import span_logprobs


@dataclass(frozen=True)
class RewardConfig:
    """Coefficients and temperatures of the reward; the defaults are the original RL run's (spec §2.7)."""

    solution_coeffs: tuple[float, float] = (1.0, 0.01)  # on (mean, min) of the student's solution log-probs
    kl_coeffs: tuple[float, float] = (3.0, 0.03)  # on (mean, max) of the per-token teacher-student KL
    student_temperature: float = 0.7
    teacher_temperature: float = 0.7
    missing_end_tag_penalty: float = -1.0
    schulman_kl: bool = False  # k3 estimator k - 1 + exp(-k) instead of the plain log-ratio k
    teacher_entropy: bool = True  # False: the KL term becomes the student's cross-entropy, -log p_student
    # Padded tokens per forward micro-batch. On CPU, batching buys little (a 300-token sequence already fills the
    # matmuls) and large batches lose cache locality; on GPUs raise it (recipes use 32768).
    token_budget: int = 2048

    def __post_init__(self):
        for name in ("solution_coeffs", "kl_coeffs"):
            coeffs = getattr(self, name)
            if len(coeffs) != 2 or any(not math.isfinite(c) or c < 0 for c in coeffs):
                raise UsageError(f"{name} must be two finite numbers >= 0, got {coeffs}")
        for name in ("student_temperature", "teacher_temperature"):
            if not 0 < getattr(self, name) < math.inf:
                raise UsageError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not -math.inf < self.missing_end_tag_penalty <= 0:
            raise UsageError(
                f"missing_end_tag_penalty must be a finite number <= 0, got {self.missing_end_tag_penalty}"
            )
        if self.token_budget < 1:
            raise UsageError(f"token_budget must be >= 1, got {self.token_budget}")

    @property
    def uses_teacher_logprobs(self) -> bool:
        """Whether the reward reads the teacher's log-probs: not without the entropy term or with a zero KL weight."""
        return self.teacher_entropy and any(self.kl_coeffs)


@dataclass
class RewardBreakdown:
    reward: float
    solution_logprob_mean: float  # NaN when the solution span is empty
    solution_logprob_min: float
    kl_mean: float  # NaN when the explanation is empty, or when both KL coefficients are 0 (not computed)
    kl_max: float
    matched: bool  # the closing explanation tag was found
    aligned: bool = True  # False: the sample could not be scored at all and got the floor reward
    alignment_error: str | None = None  # why, when not aligned
    kl_edge_tokens_dropped: int = 0  # explanation tokens (teacher + student) outside every KL chunk
    per_token: dict | None = None  # `RLTReward.score(per_token=True)`: the numbers each reduction was taken over
    students: dict[str, RewardBreakdown] | None = None  # several students (`rlt.reward.students`): each one's own

    def to_dict(self) -> dict:
        """JSON-ready: NaN components (empty spans) become None; per-token numbers only when they were asked for;
        each student's breakdown under `students`, by name, when there are several."""
        row = {k: None if isinstance(v, float) and math.isnan(v) else v
               for k, v in asdict(self).items() if k not in ("per_token", "students")}  # fmt: skip
        if self.per_token is not None:
            row.update(self.per_token)
        if self.students is not None:
            row["students"] = {name: b.to_dict() for name, b in self.students.items()}
        return row

    @classmethod
    def from_dict(cls, row: dict) -> RewardBreakdown:
        """Back from a JSON row (`to_dict`'s inverse, per-token numbers left out; extra keys ignored)."""
        nested = ("per_token", "students")
        fields = {k: row[k] for k in cls.__dataclass_fields__ if k in row and k not in nested}  # older rows lack some
        breakdown = cls(**{k: math.nan if v is None else v for k, v in fields.items()})
        if isinstance(row.get("students"), dict):
            breakdown.students = {name: cls.from_dict(sub) for name, sub in row["students"].items()}
        return breakdown


def _reduce(values: torch.Tensor, extreme: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
    if values.numel() == 0:
        return math.nan, math.nan
    return values.mean().item(), extreme(values).item()


def rlt_reward(
    solution_logprobs: torch.Tensor,
    teacher_chunk_logprobs: torch.Tensor,
    student_chunk_logprobs: torch.Tensor,
    matched: bool,
    config: RewardConfig,
) -> RewardBreakdown:
    r"""The RLT reward of one explanation (spec §2.6–2.8).

    With the student's solution tokens s_1..s_m and the explanation o cut into KL chunks o_1..o_n (`rlt.reward.align`:
    one token each when teacher and student tokenise it alike),

        l_j = log π_s^{τ_s}(s_j | q, o, s_<j)                             student, question + explanation
        k_i = log π_θ^{τ_t}(o_i | q, s, o_<i) − log π_s^{τ_s}(o_i | q, o_<i)   teacher saw the solution
        r_SS = mean_j l_j + α_SS · min_j l_j
        r_KL = mean_i k_i + α_KL · max_i k_i
        r    = λ_SS · r_SS − λ_KL · r_KL + penalty · [no closing tag]

    where a chunk's log-prob is the sum of its tokens' under each model's own tokenizer. (λ_SS, λ_SS·α_SS) =
    `solution_coeffs`, (λ_KL, λ_KL·α_KL) = `kl_coeffs`, i.e. the code form [1, 0.01]·[mean, min] −
    [3, 0.03]·[mean, max] + match. k3 option: k ← k − 1 + e^{−k}. Without the teacher-entropy term
    k_i = −log π_s(o_i). An empty span reduces to NaN, which the reward replaces by the penalty (−1 for each
    log-prob reduction, +1 for each KL reduction): an empty explanation scores −3.03.
    """
    kl = kl_terms(teacher_chunk_logprobs, student_chunk_logprobs, config)
    lp_mean, lp_min = _reduce(solution_logprobs, torch.min)
    kl_mean, kl_max = _reduce(kl, torch.max)
    reward = combine(lp_mean, lp_min, kl_mean, kl_max, matched, config)
    return RewardBreakdown(reward, lp_mean, lp_min, kl_mean, kl_max, matched)


def kl_terms(teacher_chunk_logprobs: torch.Tensor, student_chunk_logprobs: torch.Tensor, config: RewardConfig):
    """The k_i of `rlt_reward`, one per KL chunk."""
    kl = teacher_chunk_logprobs - student_chunk_logprobs if config.teacher_entropy else -student_chunk_logprobs
    return kl - 1 + torch.exp(-kl) if config.schulman_kl else kl


def nan_penalties(config: RewardConfig) -> dict[str, float]:
    """What each reduced component counts as in the reward when it is NaN (an empty span): the end-tag penalty for
    a log-prob reduction, its negative for a KL one."""
    miss = config.missing_end_tag_penalty
    return {"solution_logprob_mean": miss, "solution_logprob_min": miss, "kl_mean": -miss, "kl_max": -miss}


def combine(lp_mean: float, lp_min: float, kl_mean: float, kl_max: float, matched: bool, config: RewardConfig) -> float:
    """The reward from its reduced components (the last line of `rlt_reward`'s formula), NaN ones penalised."""
    fill = nan_penalties(config)

    def nan_to(x: float, name: str) -> float:
        return fill[name] if math.isnan(x) else x

    (a_mean, a_min), (b_mean, b_max) = config.solution_coeffs, config.kl_coeffs
    return (
        a_mean * nan_to(lp_mean, "solution_logprob_mean")
        + a_min * nan_to(lp_min, "solution_logprob_min")
        - b_mean * nan_to(kl_mean, "kl_mean")
        - b_max * nan_to(kl_max, "kl_max")
        + (0.0 if matched else config.missing_end_tag_penalty)
    )


def r_ss(breakdown: RewardBreakdown, config: RewardConfig) -> float:
    """The student-understanding term alone, λ_SS · (mean + α_SS · min) of the solution log-probs: NaN for a sample
    that could not be scored (never the floor's made-up components)."""
    if not breakdown.aligned:
        return math.nan
    (a_mean, a_min) = config.solution_coeffs
    return a_mean * breakdown.solution_logprob_mean + a_min * breakdown.solution_logprob_min


def _chunk_sums(logprobs: torch.Tensor, span_start: int, ranges: torch.Tensor) -> torch.Tensor:
    """Sum of the log-probs over each token range ([n, 2]); `logprobs` holds the span starting at token `span_start`."""
    # float64 running sums: a difference of two fp32 sums over thousands of tokens would lose ~1e-4.
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), logprobs.double().cumsum(0)])
    index = ranges - span_start
    return (cumulative[index[:, 1]] - cumulative[index[:, 0]]).float()


class RewardFunction:
    """What an RLT reward offers on top of aligning and scoring samples: scoring rows of text, and TRL's
    reward-function interface. `RLTReward` (one student) and `rlt.reward.students.MultiStudentReward` (several)
    align and score; this class reads their `align_sampled`, `align_texts`, `score` and `encoded_prompt`."""

    __name__ = "rlt"  # TRL names reward columns after this

    def score_texts(
        self, rows: Sequence[dict], teacher: nn.Module | None = None, per_token: bool = False
    ) -> tuple[list[RewardBreakdown], list]:
        """Score rows with `question`, `solution` and `explanation` (the raw completion after the opening tag). A row
        that also holds its sampled `prompt_ids` and `completion_ids` (a run's completions.jsonl) is scored from those
        ids, as training scored it: its decoded text need not tokenise back to them."""
        by_ids = [i for i, row in enumerate(rows) if "prompt_ids" in row and "completion_ids" in row]
        by_text = [i for i in range(len(rows)) if i not in set(by_ids)]
        samples: list = [None] * len(rows)
        aligned = self.align_sampled(*([rows[i][k] for i in by_ids] for k in ("question", "solution", "prompt_ids",
                                                                               "completion_ids")))  # fmt: skip
        for i, sample in [*zip(by_ids, aligned, strict=True),
                          *zip(by_text, self.align_texts([rows[i] for i in by_text]), strict=True)]:  # fmt: skip
            samples[i] = sample
        return self.score(samples, teacher, per_token=per_token), samples

    def __call__(
        self,
        prompts: list[str],
        completions: list[str],
        completion_ids: list[list[int]],
        question: list[str],
        solution: list[str],
        log_metric: Callable[[str, float], None] | None = None,
        prompt_ids: list[list[int]] | None = None,
        teacher_logprobs: list[torch.Tensor] | None = None,
        **_: object,
    ) -> list[float | None]:
        """TRL reward-function interface: one reward per completion, every component sent to `log_metric`.

        A completion that cannot be scored gets None, TRL's "no reward": a plain GRPOTrainer leaves it out of its
        group's baseline and gives it advantage 0; `RLTGRPOTrainer` ranks it below every scored completion of its
        group. Its floor reward is never returned as if it were a score."""
        if prompt_ids is None:
            prompt_ids = [self.encoded_prompt(p) for p in prompts]
        if teacher_logprobs is not None and [len(lp) for lp in teacher_logprobs] != [len(c) for c in completion_ids]:
            raise ValueError("teacher_logprobs must hold one log-prob per completion token")
        samples = self.align_sampled(question, solution, prompt_ids, completion_ids)
        breakdowns = self.score(samples, teacher_logprobs=teacher_logprobs)
        if log_metric is not None:
            # TRL averages what it is sent over the step and over every rank. Each scored sample's own values make
            # that the mean over every scored sample, also where one rank scored none (its mean, NaN, would void the
            # step's); the failures scaled by the number of ranks average to their total.
            for b in breakdowns:
                if b.aligned:
                    for name, value in logged_values(b).items():  # with several students, each one's too
                        if not math.isnan(value):
                            log_metric(f"rlt/{name}", value)
            ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            log_metric("rlt/alignment_failures", float(sum(not b.aligned for b in breakdowns) * ranks))
        return [b.reward if b.aligned else None for b in breakdowns]


class RLTReward(RewardFunction):
    """The RLT reward for TRL's GRPOTrainer and for scoring explanations offline.

    `teacher` is the model whose log-probs enter the KL term: during RL the trainer sets it to the policy being
    trained; offline it is any teacher. `tokenizer` is the teacher's; the student may have its own
    (`student_tokenizer`, default: the same), in which case the KL is taken over chunks both tokenizers share.

    Aligning samples is `rlt.reward.align.SampleAligner`'s job; this class holds the models and the tensors: the
    teacher's two log-prob paths (the trainer's, or a forward here), the student's batched forwards, the formula's
    inputs, and the per-token record of what each reduction read. Those share one set of tensors per call, which is
    why they stay in one class of some 170 lines.
    """

    def __init__(
        self,
        student: nn.Module,
        tokenizer,
        teacher: nn.Module | None = None,
        config: RewardConfig | None = None,
        style: TagStyle | str = STRATOS,
        student_tokenizer=None,
    ):
        self.student = student.eval().requires_grad_(False)
        self.teacher = teacher
        self.config = config or RewardConfig()
        self.aligner = SampleAligner(tokenizer, student_tokenizer or tokenizer, get_style(style))
        # How scoring reaches the student: a context yielding the model. The trainer sets it for a student sharded
        # by ZeRO-3 (gathered whole once per `score` call, the call every rank makes whatever its inputs).
        self.student_access: Callable[[], AbstractContextManager[nn.Module]] = lambda: nullcontext(self.student)
        self.encoded_prompt = self.aligner.encoded_prompt

    # The tokenizers and the format are the aligner's, read from there so that the two can never disagree.
    @property
    def tokenizer(self):
        return self.aligner.tokenizer

    @property
    def student_tokenizer(self):
        return self.aligner.student_tokenizer

    @property
    def style(self) -> TagStyle:
        return self.aligner.style

    # ------------------------------------------------------------------------------------------ alignment

    def align_sampled(self, questions: Sequence[str], solutions: Sequence[str], prompt_ids: Sequence[Sequence[int]],
                      completion_ids: Sequence[Sequence[int]]) -> list[AlignedSample | AlignmentError]:  # fmt: skip
        """Align sampled completions (the teacher's own ids); the AlignmentError where a sample cannot be scored
        (`SampleAligner.align_sampled`, checked against this reward's models)."""
        return self.aligner.align_sampled(questions, solutions, prompt_ids, completion_ids, self._models())

    def align_texts(self, rows: Sequence[dict]) -> list[AlignedSample | AlignmentError]:
        """Align free-text rows (`question`, `solution`, `explanation` = the raw completion), each tokenised once."""
        return self.aligner.align_texts(rows, self._models())

    def align_ids(
        self, question: str, solution: str, prompt_ids: Sequence[int], completion_ids: Sequence[int]
    ) -> AlignedSample:
        """One sampled completion, aligned; AlignmentError when it cannot be scored."""
        (result,) = self.align_sampled([question], [solution], [prompt_ids], [completion_ids])
        if isinstance(result, AlignmentError):
            raise result
        return result

    def explanation_of(self, completion_ids: Sequence[int]) -> str:
        return self.aligner.explanation_of(completion_ids)

    def _models(self) -> tuple[nn.Module | None, nn.Module | None]:
        return self.student, self.teacher

    # ------------------------------------------------------------------------------------------- scoring

    def floor(self, reason: str = "not scored") -> RewardBreakdown:
        """The reward of a sample that could not be aligned: every reduction penalised, end tag missing."""
        empty = torch.zeros(0)
        breakdown = rlt_reward(empty, empty, empty, matched=False, config=self.config)
        breakdown.aligned, breakdown.alignment_error = False, reason
        return breakdown

    def teacher_explanation_logprobs(
        self,
        samples: Sequence[AlignedSample | AlignmentError | None],
        teacher: nn.Module | None = None,
        teacher_logprobs: Sequence[torch.Tensor] | None = None,
    ) -> list[torch.Tensor | None]:
        """The teacher's per-token log-probs over each aligned sample's explanation span (None for the others; empty
        when the reward does not read them). `teacher_logprobs`, when given, are each sample's log-probs of its whole
        completion (the tokens after the prompt) at the teacher temperature: the trainer's own. Otherwise they are
        computed here with `teacher`, in batched forwards."""
        teacher = teacher or self.teacher
        if teacher is None and teacher_logprobs is None and self.config.uses_teacher_logprobs:
            raise ValueError("the KL term needs a teacher model: pass `teacher=` or set reward.teacher")
        indices = [i for i, s in enumerate(samples) if isinstance(s, AlignedSample)]
        explanation_lp: list[torch.Tensor | None] = [None] * len(samples)
        if not self.config.uses_teacher_logprobs:
            computed = [torch.zeros(0) for _ in indices]
        elif teacher_logprobs is not None:
            computed = []
            for i in indices:
                prompt_length = len(samples[i].teacher_input_ids) - len(teacher_logprobs[i])
                start, end = samples[i].teacher_explanation_span
                computed.append(teacher_logprobs[i][start - prompt_length : end - prompt_length])
        else:
            computed = [
                span[0]
                for span in span_logprobs(
                    teacher,
                    [samples[i].teacher_input_ids for i in indices],
                    [[samples[i].teacher_explanation_span] for i in indices],
                    self.config.teacher_temperature,
                    self.config.token_budget,
                )
            ]
        for i, logprobs in zip(indices, computed, strict=True):
            explanation_lp[i] = logprobs
        return explanation_lp

    def score(
        self,
        samples: Sequence[AlignedSample | AlignmentError | None],
        teacher: nn.Module | None = None,
        teacher_logprobs: Sequence[torch.Tensor] | None = None,
        per_token: bool = False,
        explanation_logprobs: Sequence[torch.Tensor | None] | None = None,
    ) -> list[RewardBreakdown]:
        """Rewards of aligned samples, with batched forward passes; a sample that could not be aligned (its
        AlignmentError, or None) gets the floor reward with the reason in `alignment_error`.

        The teacher's side is `teacher_explanation_logprobs(samples, teacher, teacher_logprobs)`, or
        `explanation_logprobs` when a caller already has it (several students share one teacher forward).
        `per_token` keeps what the reductions read in each breakdown's `per_token`: the student's log-prob of every
        solution and explanation token (its span order), and each KL chunk's k_i.
        """
        if explanation_logprobs is None:
            explanation_logprobs = self.teacher_explanation_logprobs(samples, teacher, teacher_logprobs)
        breakdowns = [self.floor(str(s) if s is not None else "not aligned") for s in samples]
        indices = [i for i, s in enumerate(samples) if isinstance(s, AlignedSample)]
        forwarded = [samples[i] for i in indices]
        with self.student_access() as student:  # entered once per call, even with nothing to forward
            student_lp = span_logprobs(
                student,
                [s.student_input_ids for s in forwarded],
                [[s.student_explanation_span, s.student_solution_span] for s in forwarded],
                self.config.student_temperature,
                self.config.token_budget,
            )
        teacher_lp = [explanation_logprobs[i] for i in indices]
        for i, sample, (student_expl, solution), teacher_expl in zip(
            indices, forwarded, student_lp, teacher_lp, strict=True
        ):
            chunks = torch.as_tensor(np.asarray(sample.kl_chunks, dtype=np.int64)).reshape(-1, 2, 2)
            teacher_ranges, student_ranges = chunks[:, 0], chunks[:, 1]
            student_chunks = _chunk_sums(student_expl, sample.student_explanation_span[0], student_ranges)
            if self.config.uses_teacher_logprobs:
                teacher_chunks = _chunk_sums(teacher_expl, sample.teacher_explanation_span[0], teacher_ranges)
            elif self.config.teacher_entropy:  # a KL of weight 0 is not measured (NaN), not made up
                teacher_chunks = torch.full_like(student_chunks, math.nan)
            else:
                teacher_chunks = torch.zeros_like(student_chunks)
            breakdowns[i] = rlt_reward(solution, teacher_chunks, student_chunks, sample.matched, self.config)
            breakdowns[i].kl_edge_tokens_dropped = sample.kl_edge_tokens_dropped
            if per_token:
                kl = kl_terms(teacher_chunks, student_chunks, self.config)
                breakdowns[i].per_token = self._per_token(sample, solution, student_expl, kl)
        return breakdowns

    def _per_token(self, sample: AlignedSample, solution: torch.Tensor, explanation: torch.Tensor, kl: torch.Tensor):
        """The student's tokens of both spans with their log-probs, and the KL chunks' k_i (None where not measured
        or not finite): JSON-ready, parallel lists."""

        def tokens(span: Span) -> list[str]:
            return token_texts(self.student_tokenizer, sample.student_input_ids[span[0] : span[1]])

        def values(t: torch.Tensor) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in t.tolist()]

        return {
            "solution_tokens": tokens(sample.student_solution_span),
            "solution_token_logprobs": values(solution),
            "explanation_tokens": tokens(sample.student_explanation_span),
            "explanation_token_logprobs": values(explanation),
            "kl_chunk_values": values(kl),
        }


#: What is logged and summarised of each scored sample.
LOGGED = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max", "match_rate",
          "kl_edge_tokens_dropped")  # fmt: skip


def logged_values(breakdown: RewardBreakdown) -> dict[str, float]:
    """A scored sample's reward, its reductions, whether its end tag matched, and the KL edge tokens dropped; with
    several students, also each one's own as `<student>/<name>`."""
    derived = {
        "match_rate": float(breakdown.matched),
        "kl_edge_tokens_dropped": float(breakdown.kl_edge_tokens_dropped),
    }
    values = {name: derived[name] if name in derived else getattr(breakdown, name) for name in LOGGED}
    for student, own in (breakdown.students or {}).items():  # the match rate is the teacher's: logged once
        values |= {f"{student}/{name}": value for name, value in logged_values(own).items() if name != "match_rate"}
    return values


def summarize(breakdowns: Sequence[RewardBreakdown]) -> dict[str, float]:
    """Means over the scored samples of every logged value (NaNs ignored), and the count of samples that could not
    be scored (`alignment_failures`): those are left out of every mean, so that their floor reward is never averaged
    in as if it were a score."""

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else math.nan

    scored = [logged_values(b) for b in breakdowns if b.aligned]
    names = dict.fromkeys([*LOGGED, *(name for values in scored for name in values)])  # in order, students last
    out = {name: mean([values[name] for values in scored if name in values]) for name in names}
    out["alignment_failures"] = float(sum(not b.aligned for b in breakdowns))
    return out


def scored_record(breakdown: RewardBreakdown, sample, details: bool) -> dict:
    """A scored sample as a JSON row: its breakdown and, with `details`, the ids, spans and KL chunks it was scored
    on; with several students, each one's beside its own numbers under `students`."""
    record = breakdown.to_dict()
    if details and isinstance(sample, AlignedSample):
        record |= sample.to_dict()
    for name, own in (breakdown.students or {}).items():
        record["students"][name] = scored_record(own, sample.by_student[name], details)
    return record
