"""The RLT reward: how well a frozen student understands the solution after reading the teacher's explanation.

The formula lives in `rlt_reward`; `RLTReward` aligns tokens, batches the forward passes and plugs into TRL.

Alignment is by construction (never by searching re-tokenised text): the student sequence is assembled from
token-id segments, prefix + EXPLANATION + middle + SOLUTION + suffix, where EXPLANATION is the teacher's own
explanation ids (as sampled, or tokenised once for free text). Both spans are therefore known exactly, in the
teacher's and the student's sequence alike, in time linear in the length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
from torch import nn

from rlt.formats import STRATOS, TagStyle, get_style, parse_explanation, student_segments, teacher_prompt
from rlt.logprobs import Span, span_logprobs


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
                raise ValueError(f"{name} must be two finite numbers >= 0, got {coeffs}")
        for name in ("student_temperature", "teacher_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.missing_end_tag_penalty <= 0:
            raise ValueError(f"missing_end_tag_penalty must be <= 0, got {self.missing_end_tag_penalty}")
        if self.token_budget < 1:
            raise ValueError(f"token_budget must be >= 1, got {self.token_budget}")


@dataclass
class RewardBreakdown:
    reward: float
    solution_logprob_mean: float  # NaN when the solution span is empty
    solution_logprob_min: float
    kl_mean: float  # NaN when the explanation is empty
    kl_max: float
    matched: bool  # the closing explanation tag was found
    aligned: bool = True  # False: the sample could not be scored at all and got the floor reward

    def to_dict(self) -> dict:
        """JSON-ready: NaN components (empty spans) become None."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, row: dict) -> RewardBreakdown:
        """Back from a JSON row (`to_dict`'s inverse; extra keys ignored)."""
        return cls(**{k: math.nan if row[k] is None else row[k] for k in cls.__dataclass_fields__})


def _reduce(values: torch.Tensor, extreme: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
    if values.numel() == 0:
        return math.nan, math.nan
    return values.mean().item(), extreme(values).item()


def rlt_reward(
    solution_logprobs: torch.Tensor,
    teacher_explanation_logprobs: torch.Tensor,
    student_explanation_logprobs: torch.Tensor,
    matched: bool,
    config: RewardConfig,
) -> RewardBreakdown:
    r"""The RLT reward of one explanation (spec §2.6–2.8).

    With solution tokens s_1..s_m and explanation tokens o_1..o_n,

        l_j = log π_s^{τ_s}(s_j | q, o, s_<j)                             student, question + explanation
        k_i = log π_θ^{τ_t}(o_i | q, s, o_<i) − log π_s^{τ_s}(o_i | q, o_<i)   teacher saw the solution
        r_SS = mean_j l_j + α_SS · min_j l_j
        r_KL = mean_i k_i + α_KL · max_i k_i
        r    = λ_SS · r_SS − λ_KL · r_KL + penalty · [no closing tag]

    with (λ_SS, λ_SS·α_SS) = `solution_coeffs`, (λ_KL, λ_KL·α_KL) = `kl_coeffs`, i.e. the code form
    [1, 0.01]·[mean, min] − [3, 0.03]·[mean, max] + match. k3 option: k ← k − 1 + e^{−k}. Without the
    teacher-entropy term k_i = −log π_s(o_i). An empty span reduces to NaN, which the reward replaces by the
    penalty (−1 for each log-prob reduction, +1 for each KL reduction): an empty explanation scores −3.03.
    """
    if config.teacher_entropy:
        kl = teacher_explanation_logprobs - student_explanation_logprobs
    else:
        kl = -student_explanation_logprobs
    if config.schulman_kl:
        kl = kl - 1 + torch.exp(-kl)
    lp_mean, lp_min = _reduce(solution_logprobs, torch.min)
    kl_mean, kl_max = _reduce(kl, torch.max)
    miss = config.missing_end_tag_penalty

    def nan_to(x: float, fill: float) -> float:
        return fill if math.isnan(x) else x

    (a_mean, a_min), (b_mean, b_max) = config.solution_coeffs, config.kl_coeffs
    reward = (
        a_mean * nan_to(lp_mean, miss)
        + a_min * nan_to(lp_min, miss)
        - b_mean * nan_to(kl_mean, -miss)
        - b_max * nan_to(kl_max, -miss)
        + (0.0 if matched else miss)
    )
    return RewardBreakdown(reward, lp_mean, lp_min, kl_mean, kl_max, matched)


@dataclass
class AlignedSample:
    """Token ids of both sequences and the spans the reward reads; spans are [start, end) into the ids."""

    teacher_input_ids: list[int]
    teacher_explanation_span: Span
    student_input_ids: list[int]
    student_explanation_span: Span
    student_solution_span: Span
    matched: bool

    def to_dict(self) -> dict:
        return asdict(self)


class AlignmentError(ValueError):
    pass


_STAND_IN = AlignedSample([0, 0], (1, 1), [0, 0], (1, 1), (1, 1), matched=False)


class RLTReward:
    """The RLT reward for TRL's GRPOTrainer and for scoring explanations offline.

    `teacher` is the model whose log-probs enter the KL term: during RL the trainer sets it to the policy being
    trained; offline it is any teacher. Teacher and student must share one tokenizer (ids are reused across them).
    """

    __name__ = "rlt"  # TRL names reward columns after this

    def __init__(
        self,
        student: nn.Module,
        tokenizer,
        teacher: nn.Module | None = None,
        config: RewardConfig | None = None,
        style: TagStyle | str = STRATOS,
    ):
        self.student = student.eval().requires_grad_(False)
        self.teacher = teacher
        self.tokenizer = tokenizer
        self.config = config or RewardConfig()
        self.style = get_style(style)
        self._special_ids = set(tokenizer.all_special_ids)
        # Under ZeRO-3 every rank must run as many forwards as the others: unscoreable samples then still run a
        # (discarded) two-token forward instead of being skipped.
        self.equal_forward_calls = False
        self._student_parts = lru_cache(maxsize=4096)(self._student_parts_uncached)
        self._prompt_ids = lru_cache(maxsize=4096)(self._encode_prompt)

    # ------------------------------------------------------------------------------------------ alignment

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_prompt(self, prompt: str) -> tuple[int, ...]:
        # TRL tokenises string prompts with the tokenizer's defaults; so do we, so the ids are the trainer's.
        return tuple(self.tokenizer(prompt)["input_ids"])

    def _student_parts_uncached(self, question: str, solution: str) -> tuple[tuple[int, ...], ...]:
        segments = student_segments(self.tokenizer, question, self.style)
        prefix = tuple(self.tokenizer(segments.prefix)["input_ids"])
        return (
            prefix,
            tuple(self._encode(segments.middle)),
            tuple(self._encode(solution)),
            tuple(self._encode(segments.suffix)),
        )

    def _explanation_length(self, completion_ids: Sequence[int]) -> tuple[int, bool]:
        """How many leading completion tokens form the explanation, and whether the closing tag was found.

        The closing tag is found in the decoded text; the token count is the largest prefix whose decoded text
        ends at or before the tag (binary search over prefix decodes). A token straddling the tag is left out.
        """
        text = self.tokenizer.decode(completion_ids)
        parsed = parse_explanation(text, self.style)
        if not parsed.matched:
            n = len(completion_ids)
            while n and completion_ids[n - 1] in self._special_ids:  # eos / pad never go into the think section
                n -= 1
            return n, False
        lo, hi = 0, len(completion_ids)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(self.tokenizer.decode(completion_ids[:mid]).rstrip("\ufffd")) <= parsed.end:
                lo = mid
            else:
                hi = mid - 1
        return lo, True

    def _assemble(
        self, question: str, solution: str, prompt_ids: Sequence[int], explanation_ids: Sequence[int], rest_ids, matched
    ) -> AlignedSample:
        prefix, middle, solution_ids, suffix = self._student_parts(question, solution)
        explanation_ids = list(explanation_ids)
        student = [*prefix, *explanation_ids, *middle, *solution_ids, *suffix]
        expl_start = len(prefix)
        sol_start = expl_start + len(explanation_ids) + len(middle)
        teacher = [*prompt_ids, *explanation_ids, *rest_ids]
        sample = AlignedSample(
            teacher_input_ids=teacher,
            teacher_explanation_span=(len(prompt_ids), len(prompt_ids) + len(explanation_ids)),
            student_input_ids=student,
            student_explanation_span=(expl_start, expl_start + len(explanation_ids)),
            student_solution_span=(sol_start, sol_start + len(solution_ids)),
            matched=matched,
        )
        self._check_fits(sample)
        return sample

    def _check_fits(self, sample: AlignedSample) -> None:
        """Raise AlignmentError for what the models cannot score: too long, or ids outside their vocabulary."""
        for name, model, ids in (
            ("student", self.student, sample.student_input_ids),
            ("teacher", self.teacher, sample.teacher_input_ids),
        ):
            config = getattr(model, "config", None)
            limit = getattr(config, "max_position_embeddings", None)
            if limit is not None and len(ids) > limit:
                raise AlignmentError(f"{name} sequence of {len(ids)} tokens exceeds the model's {limit} positions")
            vocab = getattr(config, "vocab_size", None)
            if vocab is not None and ids and not 0 <= min(ids) <= max(ids) < vocab:
                raise AlignmentError(f"{name} sequence holds token ids outside the model's vocabulary of {vocab}")
        if not sample.student_explanation_span[0] >= 1 or not sample.teacher_explanation_span[0] >= 1:
            raise AlignmentError("an explanation span starts at token 0 and has no context to be scored from")

    def align_ids(
        self, question: str, solution: str, prompt_ids: Sequence[int], completion_ids: Sequence[int]
    ) -> AlignedSample:
        """Align a sampled completion: the teacher's explanation ids go into the student sequence unchanged."""
        n, matched = self._explanation_length(completion_ids)
        return self._assemble(question, solution, prompt_ids, completion_ids[:n], completion_ids[n:], matched)

    def _split_and_encode(self, completions: Sequence[str]) -> list[tuple[bool, list[int], list[int]]]:
        """(matched, explanation ids, ids of the rest) per free-text completion, in one batched tokenizer call."""
        parsed = [parse_explanation(c, self.style) for c in completions]
        texts = [p.text for p in parsed] + [c[p.end :] for c, p in zip(completions, parsed, strict=True)]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        n = len(completions)
        return [(p.matched, e, r) for p, e, r in zip(parsed, ids[:n], ids[n:], strict=True)]

    def _align_encoded(self, question: str, solution: str, encoded: tuple[bool, list[int], list[int]]):
        matched, explanation_ids, rest_ids = encoded
        prompt_ids = self._prompt_ids(teacher_prompt(self.tokenizer, question, solution, self.style))
        return self._assemble(question, solution, prompt_ids, explanation_ids, rest_ids, matched)

    def align_text(self, question: str, solution: str, completion: str) -> AlignedSample:
        """Align a free-text completion: the explanation is tokenised once and the same ids serve both sides."""
        return self._align_encoded(question, solution, self._split_and_encode([completion])[0])

    # ------------------------------------------------------------------------------------------- scoring

    def floor(self) -> RewardBreakdown:
        """The reward of a sample that could not be aligned: every reduction penalised, end tag missing."""
        empty = torch.zeros(0)
        breakdown = rlt_reward(empty, empty, empty, matched=False, config=self.config)
        breakdown.aligned = False
        return breakdown

    def score(
        self,
        samples: Sequence[AlignedSample | None],
        teacher: nn.Module | None = None,
        teacher_logprobs: Sequence[torch.Tensor] | None = None,
    ) -> list[RewardBreakdown]:
        """Rewards of aligned samples (None = alignment failed: floor reward), with batched forward passes.

        `teacher_logprobs`, when given, are each sample's per-token log-probs of its completion under the teacher
        at the teacher temperature (the trainer's own); the explanation is their leading span. Otherwise they are
        computed here with `teacher`.
        """
        teacher = teacher or self.teacher
        if teacher is None and teacher_logprobs is None and self.config.teacher_entropy:
            raise ValueError("the KL term needs a teacher model: pass `teacher=` or set reward.teacher")
        # A stand-in keeps an unscoreable sample's forward when ranks must run equal numbers of them.
        indices = [i for i, s in enumerate(samples) if s is not None or self.equal_forward_calls]
        forwarded = [samples[i] or _STAND_IN for i in indices]
        student_lp = span_logprobs(
            self.student,
            [s.student_input_ids for s in forwarded],
            [[s.student_explanation_span, s.student_solution_span] for s in forwarded],
            self.config.student_temperature,
            self.config.token_budget,
        )
        if not self.config.teacher_entropy:
            teacher_lp = [[torch.zeros(0)] for _ in forwarded]
        elif teacher_logprobs is not None:
            teacher_lp = [
                [teacher_logprobs[i][: s.teacher_explanation_span[1] - s.teacher_explanation_span[0]]]
                for i, s in zip(indices, forwarded, strict=True)
            ]
        else:
            teacher_lp = span_logprobs(
                teacher,
                [s.teacher_input_ids for s in forwarded],
                [[s.teacher_explanation_span] for s in forwarded],
                self.config.teacher_temperature,
                self.config.token_budget,
            )
        breakdowns = [self.floor() for _ in samples]
        for i, (student_expl, solution), (teacher_expl,) in zip(indices, student_lp, teacher_lp, strict=True):
            if samples[i] is not None:
                breakdowns[i] = rlt_reward(solution, teacher_expl, student_expl, samples[i].matched, self.config)
        return breakdowns

    def align_or_none(self, align: Callable[..., AlignedSample], *args) -> AlignedSample | None:
        try:
            return align(*args)
        except AlignmentError:
            return None

    def score_texts(
        self, rows: Sequence[dict], teacher: nn.Module | None = None
    ) -> tuple[list[RewardBreakdown], list[AlignedSample | None]]:
        """Score rows with `question`, `solution` and `explanation` (the raw completion after the opening tag)."""
        encoded = self._split_and_encode([r["explanation"] for r in rows])
        samples = [
            self.align_or_none(self._align_encoded, r["question"], r["solution"], e)
            for r, e in zip(rows, encoded, strict=True)
        ]
        return self.score(samples, teacher), samples

    # ---------------------------------------------------------------------------------------------- TRL

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
    ) -> list[float]:
        """TRL reward-function interface: one reward per completion, every component sent to `log_metric`."""
        if prompt_ids is None:
            prompt_ids = [self._prompt_ids(p) for p in prompts]
        samples = [
            self.align_or_none(self.align_ids, q, s, p, c)
            for q, s, p, c in zip(question, solution, prompt_ids, completion_ids, strict=True)
        ]
        breakdowns = self.score(samples, teacher_logprobs=teacher_logprobs)
        if log_metric is not None:
            for name, value in summarize(breakdowns).items():
                log_metric(f"rlt/{name}", value)
        return [b.reward for b in breakdowns]


def summarize(breakdowns: Sequence[RewardBreakdown]) -> dict[str, float]:
    """Batch means of every component (NaNs ignored), the end-tag match rate and the alignment-failure count."""

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else math.nan

    fields = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")
    out = {name: mean([getattr(b, name) for b in breakdowns]) for name in fields}
    out["match_rate"] = mean([float(b.matched) for b in breakdowns])
    out["alignment_failures"] = float(sum(not b.aligned for b in breakdowns))
    return out


def check_same_tokenizer(teacher_tokenizer, student_tokenizer) -> None:
    """The reward reuses token ids across models, so both must tokenise identically."""
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ValueError(
            "teacher and student tokenizers differ; rlt needs both models to share one tokenizer "
            f"(vocab sizes {len(teacher_tokenizer)} vs {len(student_tokenizer)})"
        )
