"""Configuration dataclasses. Every field has help text, so `rlt CMD --help` and YAML recipes (`--config`) come
for free through TRL's `TrlParser`."""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from trl import GRPOConfig, SFTConfig

from rlt.data import countdown
from rlt.errors import UsageError
from rlt.reward import RewardConfig

if TYPE_CHECKING:  # for annotations only: the methods import rlt.data where they use it, as load() does
    from rlt.data import Generated

_DEFAULTS = RewardConfig()


def parse(dataclass_types: tuple, argv: list[str], command: str | None = None, positional: str = "") -> tuple:
    """Flags and `--config RECIPE.yaml` (flags win) into the given dataclasses, with TRL's parser.

    `--help` names the command, its positional argument and `--config`, and lists rlt's own flags with the TRL and
    transformers flags a run usually sets (all of them: `--help-all`). A recipe value of the wrong type, a number
    below its flag's range, an unknown (or abbreviated) flag, or a boolean flag given both ways, is a usage error
    naming it.
    """
    from trl import TrlParser

    prog = f"rlt {command}" if command else "rlt"
    usage = " ".join(part for part in (prog, positional, "[--config RECIPE.yaml] [--flag value ...]") if part)
    parser = TrlParser(dataclass_types, prog=prog, usage=usage, allow_abbrev=False)  # --kl_coef is not --kl_coeffs
    if "--help-all" in argv:
        argv = ["--help"]
    elif "-h" in argv or "--help" in argv:
        print(_short_help(parser, dataclass_types, prog))
        raise SystemExit(0)
    _refuse_contradicting_flags(parser, argv)
    if "--config" in argv:
        at = argv.index("--config") + 1
        if at == len(argv):
            raise UsageError("--config needs the path of a YAML recipe")
        if not Path(argv[at]).is_file():
            raise UsageError(f"--config {argv[at]}: {'a directory' if Path(argv[at]).is_dir() else 'no such file'}, "
                             "where a YAML recipe belongs")  # fmt: skip
        recipe = _read_recipe(argv[at])
        _check_recipe(argv[at], recipe, dataclass_types)
        _refuse_orphaned_weights(recipe, argv)
        unused = parser.set_defaults_with_config(**recipe)  # TRL's own step, given the recipe read as YAML 1.2
        if unused:
            raise UsageError(f"the recipe's keys that {prog} does not take: {unused} ({prog} --help lists "
                             "the flags)")  # fmt: skip
        argv = argv[: at - 1] + argv[at + 1 :]
    try:
        parsed = parser.parse_args_into_dataclasses(argv)
    except UsageError:  # a dataclass's own check (__post_init__): already says what to change
        raise
    except ValueError as e:  # transformers' and TRL's "... not used by the HfArgumentParser: [...]" and the like
        unused = re.search(r"\[.*\]", str(e))
        if unused is None:
            raise UsageError(f"{e} ({prog} --help lists the flags)") from None
        raise UsageError(f"flags or stray arguments that {prog} does not take: {unused.group(0)} (the command's own "
                         f"argument comes first: `{usage}`; {prog} --help lists the flags)") from None  # fmt: skip
    for config in parsed:
        check_ranges(config)
    return parsed


def check_ranges(config) -> None:
    """The one check of numeric ranges: each flag a class (or a base) lists in its `MINIMUMS` holds at least that
    (every item of a list; None, for "no limit", passes). A number out of range is a usage error naming its flag."""
    minimums = {}
    for cls in reversed(type(config).__mro__):
        minimums |= vars(cls).get("MINIMUMS", {})
    for name, low in minimums.items():
        value = getattr(config, name, None)  # a flag the class lacks (SFT has no completion length) passes
        values = [] if value is None else value if isinstance(value, list | tuple) else [value]
        if any(v < low for v in values):
            raise UsageError(f"--{name} must be at least {low}, got {value}")


#: TRL and transformers flags a run usually sets, listed by `--help` after rlt's own.
COMMON_FLAGS = ("model_name_or_path", "output_dir", "max_steps", "num_train_epochs", "learning_rate",
                "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
                "max_completion_length", "max_length", "use_vllm", "use_peft", "bf16", "seed", "save_steps",
                "logging_steps", "report_to")  # fmt: skip


def _own_fields(dataclass_types: tuple) -> set[str]:
    """Fields declared by rlt's classes (not inherited from TRL or transformers)."""
    import inspect

    return {name for t in dataclass_types for cls in t.__mro__ if cls.__module__.startswith("rlt.")
            for name in inspect.get_annotations(cls)}  # fmt: skip


def _short_help(parser, dataclass_types: tuple, prog: str) -> str:
    import argparse

    own = _own_fields(dataclass_types)
    actions = [a for a in parser._actions if a.dest != "help"]
    shown = argparse.ArgumentParser(prog=prog, usage=parser.usage, add_help=False,
                                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    groups = [
        (f"{prog} options", [a for a in actions if a.dest in own]),
        ("TRL / transformers options", [a for a in actions if a.dest in COMMON_FLAGS and a.dest not in own]),
    ]
    for title, group_actions in groups:  # fmt: skip
        group = shown.add_argument_group(title)
        if title.startswith(prog):
            group.add_argument("--config", metavar="RECIPE.yaml", default=argparse.SUPPRESS,
                               help="Read flags from a YAML recipe (flags win).")  # fmt: skip
        group._group_actions.extend(group_actions)
    hidden = len({a.dest for a in actions} - own - set(COMMON_FLAGS))
    more = f"\n{hidden} more TRL / transformers flags: {prog} --help-all\n" if hidden else ""
    return shown.format_help() + more


def _refuse_contradicting_flags(parser, argv: list[str]) -> None:
    """`--x true --no_x` would silently take the last; say so instead."""
    known = {option.replace("-", "_") for action in parser._actions for option in action.option_strings}
    given = {arg.split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    for negative in sorted(given):
        positive = "__" + negative[len("__no_") :]
        if negative.startswith("__no_") and positive in given and positive in known:
            name = positive[2:]
            raise UsageError(f"--{name} and --no_{name} contradict each other: give one")


def split_identity(held_out: list) -> str:
    """A digest of the held-out problems' questions, in order: what a run records of its split."""
    import hashlib

    return "sha256:" + hashlib.sha256("\n".join(p.question for p in held_out).encode()).hexdigest()[:16]


def given_flags(argv: list[str]) -> set[str]:
    """The fields the command line sets, however spelt: `--kl-coeffs`, `--kl_coeffs=3`, `--no_teacher_entropy`."""
    names = {arg[2:].split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    return {name.removeprefix("no_") for name in names}


def _refuse_orphaned_weights(recipe: dict, argv: list[str]) -> None:
    """A recipe's `student_weights` belong to its `student` list: flags that replace the students and not the
    weights would hand the old students' weights to the new ones without a word."""
    given = given_flags(argv)
    if "student" in given and "student_weights" not in given and recipe.get("student_weights") is not None:
        raise UsageError(f"--student replaces the recipe's students {recipe.get('student')}, whose student_weights "
                         f"{recipe['student_weights']} it gives: give --student_weights for the new students too "
                         "(equal: 1 for each)")  # fmt: skip


def _read_recipe(path: str) -> dict:
    """A recipe's mapping of flag: value, numbers read as YAML 1.2 reads them: PyYAML follows YAML 1.1, where `3e-4`
    (no dot) is a string, while the same text after a flag is a number."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    exponent = r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"  # a digit before the e
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(exponent), list("-+0123456789."))
    try:
        with open(path, encoding="utf-8") as f:
            recipe = yaml.load(f, Loader=Loader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path}: not valid YAML ({e})") from None
    if not isinstance(recipe, dict):
        raise UsageError(f"--config {path}: expected a YAML mapping of flag: value")
    env = recipe.pop("env", None) or {}  # TRL's `env:` block: variables set for the run
    if not isinstance(env, dict):
        raise UsageError(f"--config {path}: env: expected a mapping of VARIABLE: value, got {env!r}")
    for key, value in env.items():
        os.environ[key] = str(value)
    return recipe


def _check_recipe(path: str, recipe: dict, dataclass_types: tuple) -> None:
    """Every recipe value has its field's type (a YAML list where a number belongs would fail deep in training)."""
    import typing

    hints = {}
    for t in dataclass_types:
        hints |= typing.get_type_hints(t)
    for key, value in recipe.items():
        if key in hints and not _fits(value, hints[key]):
            raise UsageError(f"--config {path}: {key}: expected {_type_name(hints[key])}, got {value!r}")


def _fits(value, expected) -> bool:
    """Whether a YAML value can stand for a field of type `expected` (types it cannot judge pass)."""
    import enum
    import types
    import typing

    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if origin in (list, tuple):  # one value for a list-valued flag is fine too (`lora_target_modules: all-linear`)
        items = value if isinstance(value, list) else [value]
        return all(_fits(item, args[0]) for item in items) if args else True
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in args
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        return value in {member.value for member in expected}
    return True


def _type_name(expected) -> str:
    import typing

    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    args = typing.get_args(expected)
    if typing.get_origin(expected) in (list, tuple):
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if args and typing.get_origin(expected) is not typing.Literal:
        return " or ".join(_type_name(a) for a in args)
    return names.get(expected, getattr(expected, "__name__", str(expected)))


class _RepeatableList(argparse.Action):
    """A list flag that takes `--x A B` and `--x A --x B` alike: the values given replace the default, and a repeated
    flag adds to them (argparse's own `extend` would add to the default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest)
        given = [] if current is self.default else current  # argparse starts every namespace on the default object
        setattr(namespace, self.dest, [*given, *values])


@dataclass
class RewardArguments:
    """The frozen student, the text format and the RLT reward's coefficients (spec §2.7; RL-run defaults)."""

    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"reward_token_budget": 1}

    student: list[str] = field(
        default_factory=lambda: ["smollm2-135m"],
        metadata={
            "help": "Student model: Hub id, local path, or an embedded name (smollm2-135m, gemma3-270m). Several "
            "(`--student A --student B`, or a list in a recipe): the reward is their weighted mean "
            "(rlt.reward.students).",
            "action": _RepeatableList,
        },
    )
    student_weights: list[float] | None = field(
        default=None,
        metadata={"help": "One weight per --student (normalised to sum to 1; default: equal)."},
    )
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

    def __post_init__(self):
        from rlt.reward.students import check_weights

        if isinstance(self.student, str):  # a recipe's `student: NAME`
            self.student = [self.student]
        specs = self.student if isinstance(self.student, list) else []
        if not specs or not all(isinstance(spec, str) and spec for spec in specs):
            raise UsageError(f"--student takes model specs (Hub id, local path or embedded name), got {self.student!r}")
        if isinstance(self.student_weights, int | float):  # a recipe's `student_weights: 2`
            self.student_weights = [self.student_weights]
        if self.student_weights is not None:
            check_weights(self.student_weights, len(self.student))
        for name, reduced in (("solution_coeffs", "(mean, min)"), ("kl_coeffs", "(mean, max)")):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise UsageError(f"--{name} takes two numbers, the weights on {reduced}: `--{name} A B` or, in a "
                                 f"recipe, `{name}: [A, B]`; got {value!r}")  # fmt: skip

    def student_weight_list(self) -> list[float]:
        """Each student's weight as given (equal by default); the reward normalises them."""
        return list(self.student_weights) if self.student_weights is not None else [1.0] * len(self.student)

    def load_students(self, load) -> list:
        """The students as `rlt.reward.students.Student`s (name, model, tokenizer, weight), each spec's model and
        tokenizer from `load(spec)`."""
        from rlt.reward.students import Student, student_names

        named = zip(student_names(self.student), self.student, self.student_weight_list(), strict=True)
        return [Student(name, *load(spec), weight) for name, spec, weight in named]

    def student_identity(self):
        """The students as provenance records them (`rlt.reward.students.students_identity`)."""
        from rlt.reward.students import student_names, students_identity

        return students_identity(student_names(self.student), self.student, self.student_weight_list())

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
class FormatArguments:
    style: str = field(
        default="stratos",
        metadata={"help": "Tag style of the texts: stratos, r1 or micro (r1's tags, one-line prompts)."},
    )
    teacher_system_prompt: str | None = field(
        default=None,
        metadata={"help": "The teacher's system prompt: the text, or @FILE to read it (default: rlt's own, built "
                  "from the tags)."},
    )  # fmt: skip
    student_system_prompt: str | None = field(
        default=None,
        metadata={"help": "The student's system prompt: the text, or @FILE (default: the dataset's `system` column "
                  "when it has one, as Bespoke-Stratos-17k does; else rlt's own). The student's log-probs, the "
                  "whole reward, depend on reading the prompt it was trained with."},
    )  # fmt: skip

    def tag_style(self, problems=()):
        """The format of this run: the tag style with the system prompts the flags or the dataset set."""
        from dataclasses import replace

        from rlt.data import dataset_system_prompt
        from rlt.reward.formats import get_style

        style = get_style(self.style)
        teacher = _prompt_text(self.teacher_system_prompt, "--teacher_system_prompt") or style.teacher_system
        student = _prompt_text(self.student_system_prompt, "--student_system_prompt")
        student = student or dataset_system_prompt(problems) or style.student_system
        return replace(style, teacher_system=teacher, student_system=student)


def _prompt_text(value: str | None, flag: str) -> str | None:
    """A prompt flag's text: the value itself, or the contents of the file it names after `@`."""
    if value is None or not value.startswith("@"):
        return value
    path = value[1:]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"{flag} {value}: cannot read {path} ({e.strerror})") from None
    if not text.strip():
        raise UsageError(f"{flag} {value}: {path} is empty")
    return text


@dataclass
class DeviceArguments:
    """Where the models of a scoring, sampling or evaluation command run, and in which dtype."""

    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N, or auto."})
    dtype: str = field(
        default="auto",
        metadata={"help": "Model dtype: auto (bfloat16 on a GPU that supports it, else float32), float32, bfloat16 "
                  "or float16."},
    )  # fmt: skip

    def torch_device(self) -> str:
        """--device as torch takes it; a device this machine lacks is a usage error, not a CUDA traceback."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        kind = self.device.split(":")[0]
        if kind not in ("cpu", "cuda"):
            raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {self.device}: this machine has no CUDA GPU (use cpu or auto)")
        return self.device

    def torch_dtype(self):
        """--dtype as torch takes it; auto is bfloat16 on a GPU that supports it (half the memory of float32, the
        precision training used), float32 elsewhere (a CPU emulates bfloat16, many times slower)."""
        import torch

        if self.dtype == "auto":
            bf16 = self.torch_device().startswith("cuda") and torch.cuda.is_bf16_supported()
            return torch.bfloat16 if bf16 else torch.float32
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise UsageError(f"--dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        return getattr(torch, self.dtype)


@dataclass
class ScoreArguments(RewardArguments, FormatArguments, DeviceArguments):
    """`rlt score ROWS.jsonl --out SCORED.jsonl`: the RLT reward of given explanations."""

    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"batch_rows": 1, "limit": 1}

    rows: str = field(
        default="",
        metadata={"help": "JSONL with question, solution and explanation (the raw completion after the open tag)."},
    )
    out: str = field(default="scored.jsonl", metadata={"help": "Where to write the scored rows (JSONL)."})
    overwrite: bool = field(
        default=False, metadata={"help": "Replace an --out that holds scores (else kept when its settings match)."}
    )
    teacher: str = field(
        default="smollm2-135m", metadata={"help": "Teacher model: Hub id, local path, or smollm2-135m."}
    )
    teacher_temperature: float = field(
        default=_DEFAULTS.teacher_temperature, metadata={"help": "Temperature of the teacher's log-probs."}
    )
    details: bool = field(
        default=False,
        metadata={
            "help": "Also write the token ids and spans each component was computed on, and the per-token "
            "numbers: each solution and explanation token (text, student log-prob) and each KL chunk's term."
        },
    )
    batch_rows: int = field(
        default=64,
        metadata={
            "help": "Rows scored (and written) per round; forward passes are micro-batched "
            "within a round by --reward_token_budget."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Score only the first N rows."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives in their repository (runs that code)."}
    )


@dataclass
class InspectArguments(ScoreArguments):
    """`rlt inspect FILE --out report.html`: scored rows, traces or completions.jsonl as one HTML page."""

    rows: str = field(
        default="",
        metadata={"help": "`rlt score --details` output (shown as it is), a trace file or a run's completions.jsonl "
                  "(scored with --teacher and --student)."},
    )  # fmt: skip
    out: str = field(default="report.html", metadata={"help": "The HTML page to write (self-contained)."})
    run_settings: bool = field(
        default=True,
        metadata={"help": "A training run's completions.jsonl is scored with that run's starting teacher, student "
                  "and reward coefficients (its rlt_provenance.json); false: with --teacher, --student and the "
                  "reward flags."},
    )  # fmt: skip


@dataclass
class DataArguments:
    """Which question / solution dataset to read and how to map its rows (see `rlt.data`)."""

    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {
        "max_problems": 1,
        "max_solution_chars": 1,
        "holdout": 0,
        "countdown_problems": 1,
        "countdown_max_number": 2,
        "countdown_target": 1,
    }

    dataset: str = field(
        default="champ",
        metadata={
            "help": "champ (embedded), countdown (generated: 3-4 numbers; countdown:N or countdown:N-M for N to "
            "M numbers), a .jsonl/.json/.parquet/.csv file, or a Hub dataset id."
        },
    )
    adapter: str | None = field(
        default=None,
        metadata={
            "help": "Row adapter: generic, gsm8k, math, stratos, champ, gpqa, countdown (default: the embedded "
            "set's own, else generic)."
        },
    )
    split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    subset: str | None = field(default=None, metadata={"help": "Subset (configuration) of a Hub dataset."})
    question_column: str = field(default="question", metadata={"help": "generic adapter: the question column."})
    solution_column: str = field(default="solution", metadata={"help": "generic adapter: the solution column."})
    answer_column: str = field(default="answer", metadata={"help": "generic adapter: the final-answer column."})
    trace_column: str = field(
        default="reasoning_trace", metadata={"help": "generic adapter: an optional reasoning-trace column."}
    )
    skip_invalid: bool = field(default=False, metadata={"help": "Skip (and count) invalid rows instead of failing."})
    max_problems: int | None = field(
        default=None, metadata={"help": "Use at most the first N problems of each part (train, held-out)."}
    )
    max_solution_chars: int | None = field(
        default=None, metadata={"help": "Drop problems whose solution is longer (keeps CPU prompts short)."}
    )
    holdout: int = field(
        default=0,
        metadata={
            "help": "Hold out the last N problems of the dataset as read, before --max_solution_chars and "
            "--max_problems, which then apply within each part: no filter moves a problem across the split, and "
            "a smaller N holds out a subset of a larger one."
        },
    )
    countdown_problems: int = field(
        default=countdown.DATASET_SIZE, metadata={"help": "countdown: how many problems to generate."}
    )
    countdown_max_number: int = field(
        default=countdown.MAX_NUMBER,
        metadata={"help": "countdown: the largest number drawn (countdown-tiny knows 1..13)."},
    )
    countdown_target: int | None = field(
        default=None,
        metadata={"help": "countdown: one target for every problem, as in the 24 game (every order of every "
                  "multiset that makes it)."},
    )  # fmt: skip
    countdown_solution: str = field(
        default="worked",
        metadata={"help": "countdown: worked solutions, or steps ('So 13 - 10 = 3, 6 / 3 = 2.')."},
    )  # fmt: skip
    search_traces: bool = field(
        default=True,
        metadata={
            "help": "countdown: give every problem a search trace that finds its worked solution, so --framing auto "
            "gives the paper's framing; false: no trace, auto frames by answer (the zero-shot transfer setting)."
        },
    )
    search_dead_ends: int = field(
        default=countdown.Search.dead_ends,
        metadata={
            "help": "countdown search traces: at each state on the solution's path, at most this many hopeless "
            "moves are tried first (0: the path alone). The main knob of a trace's length."
        },
    )
    search_tries: int = field(
        default=countdown.Search.tries,
        metadata={"help": "countdown search traces: moves followed inside a dead end of 3 or more numbers."},
    )
    search_restate_move: bool = field(
        default=False,
        metadata={"help": "countdown search traces: open a last pair's line with its move ('After 13 - 10 = 3:')."},
    )  # fmt: skip
    framing: str = field(
        default="auto",
        metadata={
            "help": "answer: the solution shown is 'The answer is X.' and the worked solution (or trace) is the "
            "explanation to learn; solution: the dataset's solution is shown; auto: answer for rows without a "
            "reasoning trace, solution for rows with one."
        },
    )

    def __post_init__(self):
        check_ranges(self)  # also when made in code: 0 used to mean "every row" for one limit, "no row" for another
        self.generated()  # a bad search knob fails here, before any loading

    def load(self):
        """(train problems, held-out problems, skipped row count).

        The one definition of the split every command shares: the held-out part is the last `holdout` problems of
        the dataset as read, with the other orders of the first one's countdown numbers (`split_problems`). Filters
        apply after the split, within each part, so `rlt eval --holdout 20` never reads a question that a run with
        `--holdout 64` (any length filter, any --max_problems) trained on.
        """
        from rlt.data import countdown_group, embedded_adapter, frame, load_problems, split_problems

        options = {}
        if (self.adapter or embedded_adapter(self.dataset) or "generic") == "generic":
            options = dict(
                question=self.question_column,
                solution=self.solution_column,
                answer=self.answer_column,
                reasoning_trace=self.trace_column,
            )
        problems, skipped = load_problems(
            self.dataset, self.adapter, self.split, self.skip_invalid, None, self.subset, self.generated(), **options
        )
        # the length limit is on the dataset's solution, which the answer framing turns into the explanation
        short = [self.max_solution_chars is None or len(p.solution) <= self.max_solution_chars for p in problems]
        framed = frame(problems, self.framing)
        train, held_out = split_problems(list(zip(framed, short, strict=True)), self.holdout,
                                         group=lambda pair: countdown_group(pair[0]))  # fmt: skip
        return self._kept(train), self._kept(held_out), skipped

    def generated(self) -> Generated:
        """How the generated datasets (countdown) are made: `rlt.data.Generated` from the --countdown_* and
        --search_* flags."""
        from rlt.data import Generated

        search = None
        if self.search_traces:
            search = countdown.Search(self.search_dead_ends, self.search_tries, self.search_restate_move)
        return Generated(self.countdown_problems, search, self.countdown_max_number, self.countdown_target,
                         self.countdown_solution)  # fmt: skip

    def recorded(self, held_out: list) -> dict:
        """The data settings as a run records them: the flags, and the identity of the held-out part they give
        (`split_identity`), so that a later rlt that splits the same settings otherwise can tell."""
        from dataclasses import asdict

        return {**asdict(self), "held_out": split_identity(held_out)}

    def select(self, part: str) -> list:
        """The problems of one part of the split: all, train or holdout (`--part`)."""
        train, held_out, _ = self.load()
        parts = {"all": train + held_out, "train": train, "holdout": held_out}
        if part not in parts:
            raise UsageError(f"--part must be one of {sorted(parts)}, got {part!r}")
        if not parts[part]:
            hint = {"holdout": "--holdout N holds out the last N problems; or --part all for every problem",
                    "train": "a smaller --holdout"}.get(part, "the dataset has no problem")  # fmt: skip
            hint += " (--max_solution_chars and --max_problems also drop problems)" if part != "all" else ""
            raise UsageError(f"--part {part} selects no problem of {self.dataset} (holdout is {self.holdout}): {hint}")
        return parts[part]

    def _kept(self, part: list) -> list:
        return [problem for problem, short in part if short][: self.max_problems]


class _DeviceDefaults:
    """Defaults that follow the machine. TRL turns bf16 on by default, which a CPU emulates (many times slower): use
    fp32 there. Without a GPU, also set `use_cpu`, so that several processes (`accelerate launch --multi_gpu
    --num_processes N`) form a gloo DDP group instead of N unrelated runs."""

    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"per_device_train_batch_size": 1, "max_completion_length": 1}

    def __post_init__(self):
        import torch

        if self.max_steps == 0 or self.max_steps < -1:  # transformers would train one step, or every epoch
            raise UsageError(f"--max_steps {self.max_steps}: give a positive count, or -1 to train num_train_epochs")
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        if self.output_dir is None:  # transformers allows it (and writes to ./trainer_output); rlt's runs need a home
            raise UsageError("--output_dir is needed: the directory the run writes its model, checkpoints, records to")
        if Path(self.output_dir).is_file():
            raise UsageError(f"--output_dir {self.output_dir} is a file; give a directory")
        reporters = [self.report_to] if isinstance(self.report_to, str) else self.report_to or []
        unknown = sorted(set(reporters) - set(INTEGRATION_TO_CALLBACK) - {"all", "none"})
        if unknown:
            raise UsageError(f"--report_to {' '.join(unknown)}: not one of none, all, "
                             f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}")  # fmt: skip
        # what torch or TRL would otherwise meet mid-run (a traceback), or train on (inf: every weight NaN, "saved")
        temperature = getattr(self, "temperature", 1.0)  # sampling, in GRPO (also the KL's teacher temperature)
        if not 0 < temperature < math.inf:
            raise UsageError(f"--temperature must be a finite number > 0, got {temperature}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise UsageError(f"--learning_rate must be a finite number >= 0, got {self.learning_rate}")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise UsageError(f"--num_train_epochs {self.num_train_epochs} trains nothing (with --max_steps -1)")
        check_ranges(self)
        if not torch.cuda.is_available():
            self.use_cpu = True
        if self.bf16 is None:
            self.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        super().__post_init__()


@dataclass
class _Resumable:
    resume: bool = field(
        default=True, metadata={"help": "Resume from the last checkpoint in output_dir when there is one."}
    )


@dataclass
class RLTGRPOConfig(_DeviceDefaults, _Resumable, GRPOConfig):
    """TRL's GRPOConfig (every GRPO, generation, vLLM and logging flag) plus what RLT training adds."""

    temperature: float = field(
        default=0.7,
        metadata={"help": "Sampling temperature; also the temperature of the teacher log-probs in the KL (RLT: 0.7)."},
    )

    offload_student: bool = field(
        default=False,
        metadata={"help": "Keep the frozen student's weights on the CPU and stream them in for each forward."},
    )
    shard_student: bool = field(
        default=False,
        metadata={
            "help": "ZeRO-3 only: partition the frozen student across GPUs and gather it whole once per scoring "
            "call (default: a whole copy on every GPU)."
        },
    )
    completion_samples_per_step: int = field(
        default=2, metadata={"help": "Completions (with their rewards) appended to output_dir/completions.jsonl."}
    )

    def __post_init__(self):
        super().__post_init__()
        # where the student goes is decided here, before any model loads (the launch's DeepSpeed plugin is known)
        if self.shard_student and self.offload_student:
            raise UsageError("--shard_student and --offload_student both place the student: choose one")
        plugin = self.deepspeed_plugin
        if self.shard_student and (plugin is None or plugin.zero_stage != 3):
            raise UsageError("--shard_student true partitions the student with DeepSpeed ZeRO-3; launch with "
                             "accelerate launch --config_file recipes/accelerate/zero3.yaml, or leave it off for a "
                             "whole copy per GPU")  # fmt: skip


@dataclass
class RLTSFTConfig(_DeviceDefaults, _Resumable, SFTConfig):
    """TRL's SFTConfig for the teacher warm-up and student distillation."""


@dataclass
class ColdStartConfig(_DeviceDefaults, _Resumable, GRPOConfig):
    """TRL's GRPOConfig (every GRPO, generation, vLLM and logging flag) for student RL on a verifiable reward."""

    format_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the format term (1 when the student closes its thought and writes a closed "
                  "solution section) added to correctness (0: correctness only)."},
    )  # fmt: skip

    def __post_init__(self):
        if not 0 <= self.format_weight < math.inf:
            raise UsageError(f"--format_weight must be a finite number >= 0, got {self.format_weight}")
        # the format term's weight becomes TRL's reward_weights (correctness 1), here once, not when a run starts
        if self.format_weight:
            weights = [1.0, self.format_weight]
            if self.reward_weights is not None and list(self.reward_weights) != weights:
                raise UsageError("--format_weight sets the reward weights (correctness 1, format the given weight); "
                                 "leave --reward_weights out")  # fmt: skip
            self.reward_weights = weights
        super().__post_init__()
