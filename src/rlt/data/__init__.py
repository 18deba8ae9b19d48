"""Question / solution datasets: loading from files or the Hub, and adapters that turn rows into `Problem`s.

Every adapter maps one raw row to a `Problem(question, solution, answer, reasoning_trace)`. A row that cannot be
mapped raises `DataError` naming the row index and the column, or, with `skip_invalid=True`, is counted and
dropped, so a malformed row never surfaces as a KeyError deep inside training.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from math import isfinite
from pathlib import Path

from rlt.data import countdown as countdown_task
from rlt.data.countdown import Countdown
from rlt.errors import UsageError
from rlt.reward.formats import STYLES


@dataclass
class Problem:
    question: str
    solution: str
    answer: str | None = None  # final answer, when known; what evaluation checks against
    reasoning_trace: str | None = None  # a long-form explanation, used as the warm-up target when present
    system: str | None = None  # the system prompt the dataset's answers were written under (Stratos' `system`)
    countdown: Countdown | None = None  # a countdown problem: graded by its exact checker, not against `answer`


class DataError(UsageError):
    def __init__(self, message: str, row: int | None = None, column: str | None = None):
        where = ", ".join(
            p for p in (f"row {row}" if row is not None else "", f"column {column!r}" if column else "") if p
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.message, self.row, self.column = message, row, column


_TAG_STRINGS = tuple(sorted({tag for style in STYLES.values() for tag in style.all_tags}))


def text_field(row: dict, column: str, *, optional: bool = False, number: bool = False) -> str | None:
    """A row's text in `column`, stripped; a DataError naming the column when it is missing, empty, not text (or,
    with `number`, not a number either: final answers such as 5 or 2.5 are read as text), or holds a format tag."""
    if column not in row or row[column] is None:
        if optional:
            return None
        if column in row:
            raise DataError("null, where text belongs", column=column)
        raise DataError(f"missing (columns present: {sorted(row)})", column=column)
    value = row[column]
    if number and isinstance(value, int | float) and not isinstance(value, bool) and isfinite(value):
        value = str(int(value)) if float(value).is_integer() else repr(value)
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", column=column)
    if not value.strip():
        if optional:
            return None
        raise DataError("empty", column=column)
    for tag in _TAG_STRINGS:
        if tag in value:
            raise DataError(f"contains the format tag {tag!r}, which would break the RLT text format", column=column)
    return value.strip()


# --------------------------------------------------------------------------------------------------- adapters


def answer_statement(answer: str) -> str:
    """The one-sentence statement of a final answer: the solution of the answer framing, and how the GSM8K and GPQA
    adapters end theirs."""
    return f"The answer is {answer}."


def boxed_answer(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


def generic(
    row: dict,
    question: str = "question",
    solution: str = "solution",
    answer: str = "answer",
    reasoning_trace: str = "reasoning_trace",
) -> Problem:
    """Any table with question / solution columns (names configurable), optional answer and reasoning trace."""
    sol = text_field(row, solution)
    return Problem(
        question=text_field(row, question),
        solution=sol,
        answer=text_field(row, answer, optional=True, number=True) or boxed_answer(sol),
        reasoning_trace=text_field(row, reasoning_trace, optional=True),
    )


_GSM8K_CALC = re.compile(r"<<[^<>]*>>")


def gsm8k(row: dict) -> Problem:
    """GSM8K: `answer` holds the rationale (with <<calc>> annotations), then `#### final`."""
    raw = text_field(row, "answer")
    rationale, sep, final = raw.rpartition("####")
    final = final.strip().replace(",", "")
    if not sep or not final:
        raise DataError("no '#### <final answer>' line", column="answer")
    rationale = _GSM8K_CALC.sub("", rationale).strip()
    if not rationale:
        raise DataError("empty rationale before '####'", column="answer")
    solution = f"{rationale}\n{answer_statement(final)}"
    return Problem(question=text_field(row, "question"), solution=solution, answer=final)


def math(row: dict) -> Problem:
    """MATH (Hendrycks): `problem` / `solution`, the final answer in the last \\boxed{}."""
    sol = text_field(row, "solution")
    answer = boxed_answer(sol)
    if answer is None:
        raise DataError("no \\boxed{...} final answer", column="solution")
    return Problem(question=text_field(row, "problem"), solution=sol, answer=answer)


_STRATOS_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.S)
_STRATOS_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.S)


def stratos(row: dict) -> Problem:
    """Bespoke-Stratos / Sky-T1: `conversations` = [user question, assistant thought + solution]."""
    turns = row.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        raise DataError("expected a list of at least two turns", column="conversations")
    user, assistant = turns[0], turns[1]
    if not isinstance(user, dict) or user.get("from") != "user":
        raise DataError("turn 0 must come from 'user'", column="conversations")
    if not isinstance(assistant, dict) or assistant.get("from") != "assistant":
        raise DataError("turn 1 must come from 'assistant'", column="conversations")
    value = assistant.get("value")
    thought = _STRATOS_THOUGHT.search(value) if isinstance(value, str) else None
    solution = _STRATOS_SOLUTION.search(value) if isinstance(value, str) else None
    if thought is None or solution is None:
        raise DataError("assistant turn lacks the thought or solution tags", column="conversations")
    try:
        question = text_field({"value": user.get("value")}, "value")
        sol = text_field({"value": solution.group(1)}, "value")
        trace = text_field({"value": thought.group(1)}, "value", optional=True)
    except DataError as e:
        raise DataError(e.message, column="conversations") from None
    system = row.get("system")  # the prompt its students (Bespoke-Stratos-7B) trained with; it names the tags
    if system is not None and not isinstance(system, str):
        raise DataError(f"expected a string, got {type(system).__name__}", column="system")
    return Problem(question=question, solution=sol, answer=boxed_answer(sol), reasoning_trace=trace,
                   system=system.strip() or None if system else None)  # fmt: skip


def champ(row: dict) -> Problem:
    """CHAMP rows as `load_champ` yields them: problem text, steps joined, free-form answer."""
    return Problem(
        question=text_field(row, "problem"),
        solution=text_field(row, "solution"),
        answer=text_field(row, "answer", number=True),
    )


def gpqa(row: dict) -> Problem:
    """GPQA: a question with one correct and three incorrect answers, asked as lettered choices.

    The choices are shuffled by a hash of the question, so the correct letter is stable across runs and machines.
    """
    import hashlib

    question = text_field(row, "Question")
    options = [text_field(row, "Correct Answer")] + [text_field(row, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    order = sorted(range(4), key=lambda i: hashlib.sha256(f"{question}|{i}".encode()).hexdigest())
    letters = "ABCD"
    choices = "\n".join(f"{letters[pos]}) {options[i]}" for pos, i in enumerate(order))
    answer = letters[order.index(0)]
    explanation = text_field(row, "Explanation", optional=True) or options[0]
    return Problem(
        question=f"{question}\n\n{choices}", solution=f"{explanation}\n{answer_statement(answer)}", answer=answer
    )


def countdown_problem(row: dict) -> Problem:
    """Countdown rows: numbers (or nums) and target; question, answer expression and worked solution as
    `rlt.data.countdown.generate` writes them, or, for rows with numbers and target only (TinyZero's
    Countdown-Tasks-3to4), found by `rlt.data.countdown.solve`. A given answer must check. A `reasoning_trace` (the
    generator's search) is kept, so `--framing auto` gives countdown the paper's framing."""
    column = "numbers" if "numbers" in row else "nums"
    numbers, target = row.get(column), row.get("target")
    if not isinstance(numbers, list) or not numbers or not all(type(n) is int and n > 0 for n in numbers):
        raise DataError("expected a list of positive integers", column=column)
    if type(target) is not int:
        raise DataError(f"expected an integer, got {type(target).__name__}", column="target")
    problem = Countdown(tuple(numbers), target)
    answer, solution = text_field(row, "answer", optional=True), text_field(row, "solution", optional=True)
    if answer is None:
        solved = countdown_task.solve(numbers, target)
        if solved is None:
            raise DataError(f"no expression makes {target} from {numbers} in whole-number steps", column="answer")
        answer, solution = solved[0], countdown_task.worked_solution(problem, *solved)
    verdict = problem.check(answer)[1]
    if verdict != "correct":
        raise DataError(f"{answer!r} does not make {target} from {numbers} ({verdict})", column="answer")
    if solution is None:
        raise DataError("missing: a row with an answer needs its worked solution", column="solution")
    question = text_field(row, "question", optional=True) or problem.question
    trace = text_field(row, "reasoning_trace", optional=True)
    return Problem(question=question, solution=solution, answer=answer, reasoning_trace=trace, countdown=problem)


ADAPTERS: dict[str, Callable[..., Problem]] = {
    "generic": generic,
    "gsm8k": gsm8k,
    "math": math,
    "stratos": stratos,
    "champ": champ,
    "gpqa": gpqa,
    "countdown": countdown_problem,
}


# ---------------------------------------------------------------------------------------------------- loading


def embedded_adapter(source: str) -> str | None:
    """The adapter of a dataset rlt builds itself (no file, no network), or None for any other source."""
    if source == "champ":
        return "champ"
    return "countdown" if countdown_task.parse_spec(source) is not None else None


def load_champ() -> list[dict]:
    """The 270 CHAMP competition problems shipped by the `champ-dataset` package, in a stable order."""
    import champ_dataset

    dataset = champ_dataset.load("v0")
    return [
        {
            "id": key,
            "problem": p.text,
            "solution": "\n".join(step.text for step in p.solution.steps),
            "answer": p.answer,
        }
        for key, p in dataset.problems.items()
    ]


def _json_object(raw: bytes) -> tuple[dict | None, str | None]:
    """One JSONL line: its object, or what is wrong with it (None, None for a blank line)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg})"
    return (row, None) if isinstance(row, dict) else (None, f"expected a JSON object, got {type(row).__name__}")


def _read_jsonl(path: Path, skip_invalid: bool = False) -> tuple[list[dict], int]:
    """The JSON objects of a JSONL file, and how many bad lines `skip_invalid` dropped (else the first is an error).
    Read as bytes, so that a line that is not UTF-8 is named like any other bad line."""
    rows, skipped = [], 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            row, problem = _json_object(raw)
            if row is not None:
                rows.append(row)
            elif problem is None:
                continue
            elif skip_invalid:
                skipped += 1
            else:
                raise DataError(f"{path}:{lineno}: {problem}")
    return rows, skipped


@dataclass(frozen=True)
class Generated:
    """How the generated datasets are made: how many countdown problems, how large their numbers, whether they share
    one target, how their solutions are written and the shape of their search traces."""

    countdown_problems: int = countdown_task.DATASET_SIZE
    search: countdown_task.Search | None = field(default_factory=countdown_task.Search)
    max_number: int = countdown_task.MAX_NUMBER
    target: int | None = None  # one target for every problem (`countdown.one_target_problems`)
    solution: str = "worked"  # how solutions are written (`countdown.SOLUTIONS`)

    def __post_init__(self):
        countdown_task.check_target_and_solution(self.target, self.solution)


def read_rows(source: str, split: str = "train", subset: str | None = None) -> list[dict]:
    """Raw rows from `champ`, `countdown[:N[-M]]`, a local .jsonl/.json/.parquet/.csv file, or a Hub dataset id."""
    return _read_source(source, split, subset, skip_invalid=False)[0]


def _read_source(
    source: str, split: str, subset: str | None, skip_invalid: bool, generated: Generated = Generated()
) -> tuple[list[dict], int]:
    """The rows, and how many unparsable JSONL lines `skip_invalid` dropped."""
    if source == "champ":
        return load_champ(), 0
    sizes = countdown_task.parse_spec(source)
    if sizes is not None:
        # Newest first: the hold-out is the end of the list, so it is the first problems generated whatever
        # --countdown_problems is, and a longer list never trains on what a shorter one holds out.
        rows = countdown_task.generate(generated.countdown_problems, sizes, search=generated.search,
                                       max_number=generated.max_number, target=generated.target,
                                       solution=generated.solution)  # fmt: skip
        return rows[::-1], 0
    path = Path(source)
    if path.suffix == ".jsonl":
        if not path.exists():
            raise DataError(f"no such file: {path}")
        return _read_jsonl(path, skip_invalid)
    import datasets

    loaders = {".json": "json", ".parquet": "parquet", ".csv": "csv"}
    if path.suffix in loaders:
        if not path.exists():
            raise DataError(f"no such file: {path}")
        try:
            ds = datasets.load_dataset(loaders[path.suffix], data_files=str(path), split="train")
        except Exception as e:  # datasets wraps a parse error in its own exception types
            cause = e.__cause__ or e
            raise DataError(f"{path}: not a readable {path.suffix} table ({type(cause).__name__}: {cause})") from e
    elif path.is_file():  # a local file of another kind would be looked up as a Hub dataset id
        raise DataError(f"{path}: rlt reads .jsonl, .json, .parquet and .csv files")
    else:
        try:
            ds = datasets.load_dataset(source, subset, split=split)
        except Exception as e:  # datasets raises many types; the user needs the source named
            raise DataError(f"could not load dataset {source!r} (split {split!r}): {e}") from e
    return list(ds), 0


def to_problems(
    rows: Iterable[dict], adapter: str = "generic", skip_invalid: bool = False, **adapter_options: str
) -> tuple[list[Problem], int]:
    """Apply an adapter to every row. Returns the problems and how many invalid rows were skipped."""
    if adapter not in ADAPTERS:
        raise UsageError(f"unknown adapter {adapter!r}; choose one of {sorted(ADAPTERS)}")
    convert = ADAPTERS[adapter]
    problems, skipped = [], 0
    for index, row in enumerate(rows):
        try:
            problems.append(convert(row, **adapter_options))
        except DataError as e:
            if not skip_invalid:
                role = next((k for k, v in adapter_options.items() if v == e.column), None)
                flag = {"reasoning_trace": "trace"}.get(role, role)  # the generic adapter's --*_column flags
                hint = f"; --{flag}_column names the column that holds it" if adapter == "generic" and role else ""
                raise DataError(e.message + (hint if e.message.startswith("missing") else ""), row=index,
                                column=e.column) from None  # fmt: skip
            skipped += 1
    return problems, skipped


# ---------------------------------------------------------------------------------------------------- framing

FRAMINGS = ("auto", "answer", "solution")


def dataset_system_prompt(problems: Iterable[Problem]) -> str | None:
    """The student system prompt the dataset carries (one for all its rows), or None when it carries none."""
    prompts = {p.system for p in problems if p.system}
    if len(prompts) > 1:
        raise DataError(f"the dataset's rows carry {len(prompts)} different system prompts; choose one with "
                        "--student_system_prompt")  # fmt: skip
    return prompts.pop() if prompts else None


def frame(problems: Iterable[Problem], framing: str = "auto") -> list[Problem]:
    """How a problem is posed to the teacher and the student, and what the teacher's warm-up learns to write.

    solution  the solution shown is the dataset's; the explanation target is the reasoning trace or, without one,
              the solution itself. The teacher then copies text from its own prompt, which r_KL punishes and the
              warm-up rewards, and the reward misranks real explanations (BENCHMARKS §6: reference below a shuffled
              one on GSM8K).
    answer    the solution shown is the final answer in one sentence ("The answer is N."); the explanation target
              is the reasoning trace or, without one, the worked solution. Nothing to copy, and the reward ranks
              reference > shuffled > none on GSM8K and CHAMP at the paper's coefficients (BENCHMARKS §6).
    auto      answer for problems that have a final answer and no reasoning trace, solution for the rest (the
              paper's data, Bespoke-Stratos, has traces and keeps its solutions).
    """
    if framing not in FRAMINGS:
        raise UsageError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    framed = []
    for index, p in enumerate(problems):
        use_answer = framing == "answer" or (framing == "auto" and p.answer and not p.reasoning_trace)
        if use_answer and not p.answer:
            raise DataError("no final answer, which the answer framing shows as the solution", row=index)
        if use_answer:
            p = replace(p, solution=answer_statement(p.answer), reasoning_trace=p.reasoning_trace or p.solution)
        framed.append(p)
    return framed


def load_problems(
    source: str,
    adapter: str | None = None,
    split: str = "train",
    skip_invalid: bool = False,
    limit: int | None = None,
    subset: str | None = None,
    generated: Generated = Generated(),
    **adapter_options: str,
) -> tuple[list[Problem], int]:
    """Load and adapt a dataset. The adapter defaults to the embedded set's own (champ, countdown), else `generic`."""
    adapter = adapter or embedded_adapter(source) or "generic"
    rows, bad_lines = _read_source(source, split, subset, skip_invalid, generated)
    problems, skipped = to_problems(rows, adapter, skip_invalid, **adapter_options)
    skipped += bad_lines
    if not problems:
        raise DataError(f"{source}: no usable rows ({skipped} skipped as invalid)")
    return problems[:limit] if limit else problems, skipped


def split_problems(problems: list, holdout: int, group: Callable[[object], object] | None = None) -> tuple[list, list]:
    """A deterministic train / held-out split: the last `holdout` problems are held out, and with them the rest of
    the first one's `group` when problems before it share it (the orders of one countdown multiset with a fixed
    target, `rlt.data.countdown.one_target_problems`): one problem is never on both sides in two orders."""
    if not 0 <= holdout < len(problems):  # a recipe's holdout (the CPU one's 120) meets a smaller own dataset
        raise UsageError(f"--holdout {holdout}: the data has {len(problems)} problems, and at least one must stay "
                         f"to train on; give --holdout between 0 and {len(problems) - 1}")  # fmt: skip
    cut = len(problems) - holdout
    first_held = group(problems[cut]) if group is not None and holdout else None
    while first_held is not None and cut > 0 and group(problems[cut - 1]) == first_held:
        cut -= 1
    if cut == 0:
        raise UsageError(f"--holdout {holdout}: with its whole group the held-out part takes every problem")
    return problems[:cut], problems[cut:]


def countdown_group(problem: Problem) -> tuple | None:
    """A countdown problem's numbers as a multiset, with its target: its orders are one problem (`split_problems`)."""
    if problem.countdown is None:
        return None
    return tuple(sorted(problem.countdown.numbers)), problem.countdown.target
