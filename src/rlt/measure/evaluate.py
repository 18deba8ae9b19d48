"""Evaluation: student accuracy (pass@1 greedy, pass@k sampled) and teacher quality (mean RLT reward).

A student answers in the student format; its final answer is the last solution section (its last \\boxed{} when
it has one) and is checked against the dataset's answer with math-verify. Free-form answers that math-verify
cannot parse (CHAMP's "No", "3 is the only possible value" parses, "No" does not) fall back to a normalised-text
comparison, where a yes or no must be the whole first clause ("No, because ..." matches "No", "No idea" does not);
countdown answers are checked exactly by their own checker (`rlt.data.countdown`). The report says how many
answers each method checked and how many could not be checked at all.
"""

from __future__ import annotations

import math
import re
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from math_verify import parse, verify
from tqdm.auto import tqdm

from rlt.configs import DeviceArguments
from rlt.data import Problem, boxed_answer
from rlt.data.countdown import Countdown
from rlt.errors import UsageError
from rlt.measure.leakage import YES_NO
from rlt.models import DEFAULT_MODEL
from rlt.provenance import write_record
from rlt.reward.align import tokenize_texts
from rlt.reward.formats import STRATOS, TagStyle, extract_solution, get_style, student_prompt
from rlt.sampling.generation import Sampler, SamplingConfig, hf_sampler


@dataclass
class EvalArguments(DeviceArguments):
    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"num_samples": 0, "k": 1, "max_new_tokens": 1, "thought_samples": 0}

    model: str | None = field(
        default=None, metadata={"help": "Student to evaluate: Hub id, path, or smollm2-135m (the default)."}
    )
    teacher: str | None = field(
        default=None, metadata={"help": "Evaluate a teacher instead: mean RLT reward of its explanations."}
    )
    part: str = field(default="holdout", metadata={"help": "Which problems: all, train or holdout."})
    out: str = field(default="runs/eval/results.json", metadata={"help": "JSON results; a .md table beside it."})
    num_samples: int = field(default=0, metadata={"help": "Samples per question for pass@k (0: greedy pass@1 only)."})
    k: list[int] = field(default_factory=lambda: [1], metadata={"help": "The k of pass@k (<= num_samples)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Temperature of the pass@k samples."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call."})
    question_template: str = field(
        default="{question}", metadata={"help": "How the question is put to the student, e.g. with a boxed hint."}
    )
    thought_samples: int = field(
        default=0,
        metadata={
            "help": "A continuous measure where pass@1 is 0: sample this many of the student's own thoughts per "
            "question and report the mean log-prob of the gold solution after them (0: off)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Sampling seed."})
    use_vllm: str = field(
        default="auto",
        metadata={"help": "Sample with vLLM (long generations on GPUs): auto (when installed and on a GPU), true or "
                  "false."},
    )  # fmt: skip

    def __post_init__(self):
        try:  # the template must show the question, once, and nothing else may need filling
            shown = self.question_template.format(question="\0")
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"--question_template {self.question_template!r}: only {{question}} may be filled in "
                             f"(escape other braces as {{{{ }}}}): {e!r}") from None  # fmt: skip
        if shown.count("\0") != 1:
            raise UsageError(f"--question_template {self.question_template!r} must hold {{question}} once")
        if self.model and self.teacher:
            raise UsageError("--model (a student's accuracy) and --teacher (a teacher's reward) evaluate different "
                             "things: give one")  # fmt: skip
        if not self.teacher:
            self.model = self.model or DEFAULT_MODEL


# ----------------------------------------------------------------------------------------------- checking

_PUNCTUATION = str.maketrans("", "", string.punctuation.replace("-", "").replace(".", ""))
_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\{([^{}]*)\}")
# "The answer is X." is the solution sentence of the answer framing (`rlt.data.answer_statement`)
_ANSWER_IS = re.compile(r"^(?:the )?(?:final )?answer(?: is)?\s*[:\s]\s*")
_OPENING = " \t\n\"'“‘(["  # what may open an answer before its first word
# What may follow a yes or no that is a whole clause: the end of the text or line, punctuation, a bracket, a dash.
_CLAUSE_END = re.compile(r"[ \t]*(?:$|[\n,.;:!()\[\]\"'”’—–]|-+\s)")


def unwrapped(text: str) -> str:
    """`text` without LaTeX wrappers (\\boxed{}, \\text{}, nested ones too), math delimiters or markdown emphasis."""
    while (inner := _WRAPPER.sub(r"\1", text)) != text:
        text = inner
    return re.sub(r"[$*_`]", "", text)


def normalize(text: str) -> str:
    text = unwrapped(text).lower().translate(_PUNCTUATION)
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def stated(answer: str) -> str:
    """What `answer` says, lowercased and unwrapped, without a leading "The answer is" or an opening quote or
    bracket; its punctuation kept, which tells where its first clause ends."""
    text = unwrapped(answer).lower().lstrip(_OPENING)
    return _ANSWER_IS.sub("", text, count=1).lstrip(_OPENING)


def yes_or_no(answer: str) -> str | None:
    """The word yes or no when it is the whole first clause of `answer` ("No", "**No.**", "No, because ...", "No;
    there is none", "No - ..."), else None: "No idea", "Nobody", "Not sure", "No no yes", "Yes and no" and "No?" say
    neither."""
    text = stated(answer)
    return next((w for w in YES_NO if text.startswith(w) and _CLAUSE_END.match(text, len(w))), None)


def final_answer(completion: str, style: TagStyle = STRATOS) -> str | None:
    """What a student answered: its last \\boxed{} if any, else its last solution section."""
    solution = extract_solution(completion, style)
    text = solution if solution is not None else completion
    return boxed_answer(text) or solution


def check_answer(prediction: str | None, gold: str) -> tuple[bool, str]:
    """(correct, method): method is math-verify, text (normalised comparison) or unchecked (empty gold).

    Text is compared lowercased, without \\boxed{}, \\text{}, $, markdown emphasis, surrounding punctuation or a
    leading "The answer is". A yes or no gold (CHAMP has 33) is matched only by an answer whose whole first clause
    is that word (`yes_or_no`): a student rewarded for "No idea" or "Yes and no" would learn to say them. A gold that
    math-verify parses is graded by its value even when it opens with a yes ("Yes, and the sequence is 1/2^3, ..."):
    the value alone is right, a bare "Yes" is wrong, and so is an answer that opens with the other word. A formula
    gold ("n(n-3)/2", "2^{n} - 1", `is_formula`) is read as LaTeX, and so is an answer that is a formula; an answer
    in words ("There are 76 ways.") is read where math-verify finds its value. Other golds are
    words, equal only as a whole (`comparable`): "Alice or Bob" is not "Alice", nor "No integer solutions exist,
    except 3" "No integer solutions" — a grader that took a gold's prefix would reward a student, in cold-start RL
    too, for saying more.
    """
    said, gold_text = yes_or_no(prediction or ""), normalize(gold)
    if gold_text in YES_NO:  # before math-verify, which reads "$No$" as the product n·o
        return said == gold_text, "text"
    gold_formula = as_latex(gold) if is_formula(gold) else []  # plain parsing reads "2^{n} - 1" as its last number
    if gold_formula:  # a formula: the answer too, read as one when it is one, else found where math-verify finds it
        said = bare(prediction or "")
        said = said[m.end() :] if (m := _ANSWER_IS.match(said.lower())) else said
        answer = as_latex(said) if is_formula(said) else parse(prediction) if prediction else []
        return bool(answer) and bool(verify(gold_formula, answer)), "math-verify"
    gold_parsed = parse(gold)
    if gold_parsed:
        predicted = parse(prediction) if prediction else []
        contradicts = said is not None and yes_or_no(gold) not in (None, said)
        return not contradicts and bool(predicted) and bool(verify(gold_parsed, predicted)), "math-verify"
    if not gold_text:
        return False, "unchecked"
    return comparable(stated(prediction or "")) == comparable(gold), "text"


_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_NOT_OPERATORS = str.maketrans("", "", "".join(c for c in string.punctuation if c not in "-.+*/^=<>"))


def bare(text: str) -> str:
    """`text` without its wrappers (\\boxed{}, \\text{}, $, **emphasis**), a final full stop, unicode minus or
    plus-minus; a formula's own `*` and `_` kept (`unwrapped` drops them as markdown)."""
    while (inner := _WRAPPER.sub(r"\1", text)) != text:
        text = inner
    text = re.sub(r"\*\*(.*?)\*\*", r"\1", text).replace("$", "").replace("`", "")
    return text.replace("\u2212", "-").replace("\u00b1", "\\pm ").strip().rstrip(".").strip()


def is_formula(text: str) -> bool:
    """Whether an answer is a formula, not words: a digit, an operator, a bracket or a LaTeX command in it, and no
    run of two letters outside LaTeX commands ("n(n-3)/2", "2^n - 1", "\\sqrt{2}", "76"; not "Alice", "No integer
    solutions", "There are 76", nor a bare letter, "A" of a multiple choice, compared as a word)."""
    text = bare(text)
    return bool(re.search(r"[\d+\-*/^=()\\]", text)) and not re.search(r"[A-Za-z]{2,}", _LATEX_COMMAND.sub(" ", text))


def as_latex(text: str) -> list:
    """math-verify's reading of `text` as one LaTeX formula ([] when it cannot read it)."""
    return parse(f"${bare(text)}$")


def comparable(text: str) -> str:
    """Words as the text grader compares them: lowercased, unwrapped, spaces collapsed, punctuation dropped but not
    operators ("n + 1" is not "n 1"), no final full stop."""
    text = unwrapped(text).lower().translate(_NOT_OPERATORS)
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def grade(
    completion: str, gold: str | None, countdown: Countdown | None = None, style: TagStyle = STRATOS
) -> tuple[bool, str, str | None]:
    """(correct, method, answer) for a student's completion: a countdown problem by its exact checker (method
    countdown; any expression, or steps, that reach the target count), any other against its gold final answer."""
    if countdown is not None:  # the whole solution section: "(7 + 3) * 5 = \\boxed{50}" boxes the value, not the answer
        answer = extract_solution(completion, style) or boxed_answer(completion)
        return countdown.check(answer)[0], "countdown", answer
    answer = final_answer(completion, style)
    return *check_answer(answer, gold or ""), answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


# ------------------------------------------------------------------------------------------------ students


def evaluate_student(
    model,
    tokenizer,
    problems: list[Problem],
    args: EvalArguments,
    style: TagStyle = STRATOS,
    sampler: Sampler | None = None,
) -> dict:
    """Greedy pass@1 (and sampled pass@k) with per-question records. `sampler` draws the answers (default:
    transformers' generate on `model`, which only --thought_samples then needs)."""
    sample = sampler or hf_sampler(model, tokenizer)
    texts = [student_prompt(tokenizer, args.question_template.format(question=p.question), style) for p in problems]
    prompts = [tokens.ids for tokens in tokenize_texts(tokenizer, texts)]  # as distillation and the reward do
    greedy = SamplingConfig(args.max_new_tokens, 0.0, 1.0, args.batch_size, args.seed)
    records = []
    for index, ids in tqdm(sample(prompts, greedy), total=len(prompts), desc="greedy answers", unit="answer"):
        completion = tokenizer.decode(ids, skip_special_tokens=True)
        correct, method, answer = grade(completion, problems[index].answer, problems[index].countdown, style)
        records.append({"index": index, "question": problems[index].question, "gold": problems[index].answer,
                        "answer": answer, "correct": correct, "method": method, "completion": completion})  # fmt: skip
    methods = [r["method"] for r in records]
    result = {
        "questions": len(records),
        "pass@1_greedy": sum(r["correct"] for r in records) / max(len(records), 1),
        "checked_with_math_verify": methods.count("math-verify"),
        "checked_with_text": methods.count("text"),
        "checked_with_countdown": methods.count("countdown"),
        "unchecked": methods.count("unchecked"),
        "records": records,
    }
    if args.thought_samples:
        sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, args.seed)
        measure = solution_logprob_after_own_thought(model, tokenizer, problems, args.thought_samples, sampling, style,
                                                     sample)  # fmt: skip
        summary = measure["summary"] or {"mean": None, "low": None, "high": None, "dropped": len(problems)}
        result["solution_logprob_after_own_thought"] = summary["mean"]
        result["solution_logprob_after_own_thought_interval"] = [summary["low"], summary["high"]]
        result["solution_logprob_after_own_thought_unscoreable_questions"] = summary["dropped"]
        for record, value in zip(records, measure["per_question"], strict=True):
            record["solution_logprob_after_own_thought"] = None if math.isnan(value) else value
    if args.num_samples:
        sampled = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, args.seed)
        repeated = [ids for ids in prompts for _ in range(args.num_samples)]
        correct = [0] * len(problems)
        for j, ids in tqdm(sample(repeated, sampled), total=len(repeated), desc="sampled answers", unit="answer"):
            index = j // args.num_samples
            correct[index] += grade(
                tokenizer.decode(ids, skip_special_tokens=True),
                problems[index].answer,
                problems[index].countdown,
                style,
            )[0]
        for record, count in zip(records, correct, strict=True):
            record["samples_correct"] = count  # of num_samples: per-question pass@k, paired across students
        for k in args.k:
            if k > args.num_samples:
                raise UsageError(f"pass@{k} needs num_samples >= {k}, got {args.num_samples}")
            result[f"pass@{k}"] = sum(pass_at_k(args.num_samples, c, k) for c in correct) / len(problems)
    return result


def solution_logprob_after_own_thought(
    model,
    tokenizer,
    problems: list[Problem],
    samples: int,
    sampling: SamplingConfig,
    style: TagStyle | str = STRATOS,
    sampler: Sampler | None = None,
) -> dict:
    """How likely the student finds the gold solution after thinking on its own: a measure that moves long before
    pass@1 does.

    For each question the student writes `samples` thoughts, started inside its think section; each thought is
    closed and followed by the gold solution in the distillation format, and scored like the reward's r_SS term
    (the student's mean per-token log-prob of the solution, at temperature 1). Per question the mean over its
    thoughts; overall the mean over questions with a 95 % bootstrap interval. `correct` says per sample whether the
    student's own continuation past its thought answered right: pass@k from the same draws.
    """
    from rlt.measure.stats import bootstrap
    from rlt.reward import RewardConfig, RLTReward
    from rlt.reward.formats import student_segments

    style = get_style(style)
    think_close = style.thought[1]
    # The scored chat's own text up to the explanation: the prompt with the think section opened.
    texts = [student_segments(tokenizer, p.question, style).prefix for p in problems]
    prompts = [tokens.ids for tokens in tokenize_texts(tokenizer, texts) for _ in range(samples)]
    thoughts, correct = [""] * len(prompts), [False] * len(prompts)
    for j, ids in (sampler or hf_sampler(model, tokenizer))(prompts, sampling):
        completion = tokenizer.decode(ids, skip_special_tokens=True)
        thoughts[j] = completion.split(think_close)[0]
        # the same sample, read on to its own solution, is a pass@k draw
        problem = problems[j // samples]
        correct[j] = grade(completion, problem.answer, problem.countdown, style)[0]
    student_only = RewardConfig(student_temperature=1.0, teacher_entropy=False)
    reward = RLTReward(model, tokenizer, config=student_only, style=style)
    end_tag = style.explanation[1]
    rows = [{"question": problems[j // samples].question, "solution": problems[j // samples].solution,
             "explanation": thought + end_tag} for j, thought in enumerate(thoughts)]  # fmt: skip
    scored, _ = reward.score_texts(rows)
    # A thought the student cannot be scored after (too long for its positions) is missing, not a number: a question
    # averages its scored thoughts, and one with none is left out of the summary (its `dropped` count).
    per_question = []
    for i in range(len(problems)):
        found = [b.solution_logprob_mean for b in scored[i * samples : (i + 1) * samples] if b.aligned]
        per_question.append(sum(found) / len(found) if found else math.nan)
    return {"summary": bootstrap(per_question), "per_question": per_question, "thoughts": thoughts, "correct": correct}


def markdown_table(rows: dict[str, dict], columns: list[str]) -> str:
    """A markdown table, one row per named result."""
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, values in rows.items():
        cells = [f"{values[c]:.3f}" if isinstance(values.get(c), float) else str(values.get(c, "")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out: str | Path, results: dict, table: str) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    write_record(out, results)  # atomically: a kill mid-write leaves the old file or none, never half of one


def run_eval(args: EvalArguments, data_args, format_args, reward_args) -> tuple[dict, str]:
    """`rlt eval`: a student's accuracy (or, with `args.teacher`, a teacher's mean RLT reward) on the selected
    problems, written with its provenance to `args.out` and as a markdown table beside it; the results and table."""
    from dataclasses import asdict

    from rlt.provenance import describe, model_identity
    from rlt.sampling.generation import vllm_usable

    problems = data_args.select(args.part)
    trained = trained_on(args.teacher or args.model, problems)
    if trained:  # as for a student distilled on them (`evaluate_model`): loud, and on record
        print(f"rlt eval: warning: {trained} of the {len(problems)} evaluated questions are in the training part of "
              f"{args.teacher or args.model}'s run", file=sys.stderr)  # fmt: skip
    use_vllm = vllm_usable(args.use_vllm, args.device)
    style = format_args.tag_style(problems)
    if args.teacher:
        results, table = evaluate_teacher(problems, args, reward_args, style, use_vllm)
    else:
        results, table = evaluate_model(problems, args, style, use_vllm)
    results["questions_trained_on"] = trained
    settings = {"model": model_identity(args.teacher or args.model), "data": {**asdict(data_args), "part": args.part},
                "eval": asdict(args), "style": style.identity}  # fmt: skip
    if args.teacher:  # a teacher is measured through the student's reward
        settings |= {"student": reward_args.student_identity(), "reward": asdict(reward_args)}
    results["provenance"] = describe("evaluation", settings)
    write_results(args.out, results, table)
    return results, table


def trained_on(spec: str, problems: list[Problem]) -> int:
    """How many of `problems` the run in `spec` (warm-up, teacher RL, student RL) trained on, from the data settings
    it recorded; 0 for a model with no such record. A usage error when rlt no longer splits those settings' data
    as it did for the run (its recorded held-out part differs from today's): the problems it trained on are then
    unknown, and may be the ones about to be evaluated."""
    from dataclasses import fields

    from rlt.configs import DataArguments, split_identity
    from rlt.provenance import read_record
    from rlt.train.runs import RUN_RECORD

    record = read_record(Path(spec) / RUN_RECORD) if Path(spec).is_dir() else None
    data = (record or {}).get("settings", {}).get("data") or {}
    if "held_out" not in data:  # not a run's output, or an older rlt's run, which did not record its split
        return 0
    known = {f.name for f in fields(DataArguments)}
    train, held_out, _ = DataArguments(**{k: v for k, v in data.items() if k in known}).load()
    now = split_identity(held_out)
    if now != data["held_out"]:
        raise UsageError(f"{spec} was trained beside another held-out part of {data['dataset']} than these settings "
                         f"give now ({data['held_out']} then, {now} now): rlt has changed how it "
                         "splits them, so the problems it trained on are unknown; evaluate it with the rlt that "
                         "trained it")  # fmt: skip
    seen = {p.question for p in train}
    return sum(p.question in seen for p in problems)


def evaluate_teacher(problems: list[Problem], args: EvalArguments, reward_args, style, use_vllm: bool):
    """A teacher's explanations of `problems`, scored by the student's reward: the mean of each component."""
    from rlt.measure.scoring import kl_temperature, load_reward
    from rlt.reward import RewardBreakdown, summarize
    from rlt.sampling.generation import sampler_for
    from rlt.sampling.traces import collect_traces

    reward = load_reward(args.teacher, reward_args, style, kl_temperature(args.temperature), args)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, args.seed)
    explanations = Path(args.out).with_suffix(".traces.jsonl")
    with sampler_for(use_vllm, args.teacher, args.dtype) as sampler:  # fresh: never another teacher's leftovers
        rows = collect_traces(problems, reward.teacher, reward, explanations, sampling, sampler=sampler, fresh=True)
    results = {"teacher": args.teacher, "questions": len(problems),
               **summarize([RewardBreakdown.from_dict(r) for r in rows])}  # fmt: skip
    return results, markdown_table(
        {args.teacher: results}, ["reward", "solution_logprob_mean", "kl_mean", "match_rate"]
    )


def evaluate_model(problems: list[Problem], args: EvalArguments, style, use_vllm: bool):
    """A student's accuracy on `problems` (`evaluate_student`), warning when it was distilled on any of them."""
    from rlt.models import load_model, load_tokenizer
    from rlt.sampling.generation import sampler_for
    from rlt.train.sft import distilled_on

    if not args.thought_samples and not any(p.answer for p in problems):
        raise UsageError(f"none of the {len(problems)} questions has a final answer to check accuracy against "
                         "(--answer_column); --thought_samples K measures a student without one")  # fmt: skip
    seen = distilled_on(args.model, [p.question for p in problems])
    if seen:  # a score on questions the student was trained on is no evaluation; say so loudly, keep it on record
        print(f"rlt eval: warning: {seen} of the {len(problems)} evaluated questions are in {args.model}'s "
              "distillation data: evaluate on the held-out part of the split its traces came from",
              file=sys.stderr)  # fmt: skip
    if use_vllm and not args.thought_samples:  # vLLM holds the only copy of the weights it needs
        model, tokenizer = None, load_tokenizer(args.model)
    else:
        model, tokenizer = load_model(args.model, args.torch_dtype(), args.torch_device())
    with sampler_for(use_vllm, args.model, args.dtype) as sampler:
        results = {"model": args.model, "questions_distilled_on": seen,
                   **evaluate_student(model, tokenizer, problems, args, style, sampler)}  # fmt: skip
    columns = ["pass@1_greedy", *(f"pass@{k}" for k in args.k if args.num_samples),
               *(["solution_logprob_after_own_thought"] if args.thought_samples else []), "questions",
               "checked_with_math_verify", "checked_with_text", "checked_with_countdown", "unchecked"]  # fmt: skip
    return results, markdown_table({args.model: results}, columns)
