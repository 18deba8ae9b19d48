"""The RLT text formats: tags, system prompts, and the teacher / student texts built from them.

Teacher (sees the answer):   system = TEACHER prompt, user = question,
                             assistant = <solution> solution </solution> <explanation> EXPLANATION </explanation>
Student (does not):          system = STUDENT prompt, user = question,
                             assistant = <thought> EXPLANATION </thought> <solution> solution </solution>

The teacher's RL prompt ends right after the opening explanation tag and its padding, so everything the teacher
generates is the explanation body followed by the closing tag. The student reads that same body in its think
section. Texts are rendered through the tokenizer's chat template around a placeholder, which works for any
template that keeps message content verbatim and never depends on a divider string occurring exactly once
(the original's crash, spec §1.5 / B3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rlt.errors import UsageError

#: Between sections, and after every opening tag (the original's `delimiters_padding`).
PADDING = "\n\n"


@dataclass(frozen=True)
class TagStyle:
    """A text format: its tags, and the system prompts when a run sets its own (None: rlt's, built from the tags)."""

    name: str
    thought: tuple[str, str]
    solution: tuple[str, str]
    explanation: tuple[str, str]
    teacher_system: str | None = None
    student_system: str | None = None

    @property
    def all_tags(self) -> tuple[str, ...]:
        return (*self.thought, *self.solution, *self.explanation)

    @property
    def identity(self) -> str:
        """The style's name, and a digest of its system prompts when they are not rlt's: for provenance records."""
        if self.teacher_system is None and self.student_system is None:
            return self.name
        prompts = f"{self.teacher_system}\x00{self.student_system}".encode()
        return f"{self.name}+prompts:{hashlib.sha256(prompts).hexdigest()[:12]}"


STRATOS = TagStyle(
    name="stratos",
    thought=("<|begin_of_thought|>", "<|end_of_thought|>"),
    solution=("<|begin_of_solution|>", "<|end_of_solution|>"),
    explanation=("<|begin_of_explanation|>", "<|end_of_explanation|>"),
)
R1 = TagStyle(
    name="r1",
    thought=("<think>", "</think>"),
    solution=("<solution>", "</solution>"),
    explanation=("<explanation>", "</explanation>"),
)
# The micro-world's (`rlt.micro`): R1's tags with one-line prompts, since a model built from scratch on two cores reads
# every prompt token at every step and has no use for the instructions' prose.
MICRO = TagStyle(
    name="micro",
    thought=R1.thought,
    solution=R1.solution,
    explanation=R1.explanation,
    teacher_system="Explain how to find this solution.",
    student_system="Think it through, then solve.",
)
STYLES = {style.name: style for style in (STRATOS, R1, MICRO)}


def get_style(name: str | TagStyle) -> TagStyle:
    if isinstance(name, TagStyle):
        return name
    if name not in STYLES:
        raise UsageError(f"unknown format style {name!r}; choose one of {sorted(STYLES)}")
    return STYLES[name]


def student_system_prompt(style: TagStyle | str) -> str:
    """The student is told to think at length first, then answer; its thinking is where explanations go. A style
    may carry the student's own prompt instead (a student trained with one scores and answers best under it)."""
    style = get_style(style)
    if style.student_system is not None:
        return style.student_system
    (think_open, think_close), (sol_open, sol_close) = style.thought, style.solution
    return (
        "You are an assistant that works through a question by reasoning carefully and at length before committing "
        "to a final answer. Think step by step: read the question, recall what is relevant, try ideas, check each "
        "step, fix mistakes and revisit earlier steps when needed. Write your answer in two parts. First the "
        f"Thought part, {think_open} {{your reasoning, steps separated by blank lines}} {think_close}, then the "
        f"Solution part, {sol_open} {{the final, precise and clear solution}} {sol_close}. "
        "Now solve the following question in this way:"
    )


def teacher_system_prompt(style: TagStyle | str) -> str:
    """The teacher is shown the solution and asked to explain how one gets there: solution first, explanation last
    (or the style's own teacher prompt)."""
    style = get_style(style)
    if style.teacher_system is not None:
        return style.teacher_system
    (sol_open, sol_close), (exp_open, exp_close) = style.solution, style.explanation
    return (
        "You are an assistant that gives an accurate solution to a question and then explains, in full, the "
        "thinking that leads to it. Write your answer in two parts. First the Solution part, concise and exact, "
        f"formatted as {sol_open} {{the final, precise and clear solution}} {sol_close}. Then the Explanation part, "
        f"formatted as {exp_open} {{your explanation, steps separated by blank lines}} {exp_close}, which walks "
        "through the reasoning step by step: understanding the question, gathering the relevant facts, trying "
        "ideas, checking each step and correcting course, so that a reader who has not seen the solution could "
        "reach it on their own."
    )


_SLOT = "\x00rlt-slot\x00"


def _around_assistant(tokenizer, system: str, question: str) -> tuple[str, str]:
    """The chat-template text before and after the assistant message's content."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise UsageError("the tokenizer has no chat template; rlt renders every text through one")
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": question},
        {"role": "assistant", "content": _SLOT},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    parts = text.split(_SLOT)
    if len(parts) != 2:
        raise UsageError(
            "the tokenizer's chat template does not keep the assistant message verbatim; rlt cannot place the "
            "explanation inside it"
        )
    return parts[0], parts[1]


def solution_block(solution: str, style: TagStyle | str) -> str:
    style = get_style(style)
    sol_open, sol_close = style.solution
    return f"{sol_open}{PADDING}{solution}{PADDING}{sol_close}"


@dataclass(frozen=True)
class TeacherText:
    """The teacher's text split where generation starts: `prompt` + `completion` is the full SFT text."""

    prompt: str
    completion_suffix: str  # what follows the explanation body: padding, closing tag, end of turn

    def completion(self, explanation: str) -> str:
        return explanation + self.completion_suffix


def teacher_text(tokenizer, question: str, solution: str, style: TagStyle | str = STRATOS) -> TeacherText:
    style = get_style(style)
    before, after = _around_assistant(tokenizer, teacher_system_prompt(style), question)
    exp_open, exp_close = style.explanation
    prompt = before + solution_block(solution, style) + PADDING + exp_open + PADDING
    return TeacherText(prompt=prompt, completion_suffix=PADDING + exp_close + after)


def teacher_prompt(tokenizer, question: str, solution: str, style: TagStyle | str = STRATOS) -> str:
    """The RL / trace-generation prompt: ends right after the opening explanation tag and its padding."""
    return teacher_text(tokenizer, question, solution, style).prompt


@dataclass(frozen=True)
class StudentSegments:
    """The student chat as text pieces around the explanation and the solution.

    student chat = prefix + EXPLANATION + middle + SOLUTION + suffix
    The reward tokenises the whole chat and finds both spans from these pieces' lengths (character offsets).
    """

    prefix: str
    middle: str
    suffix: str

    def text(self, explanation: str, solution: str) -> str:
        return self.prefix + explanation + self.middle + solution + self.suffix


def _student_turn(style: TagStyle) -> tuple[str, str, str]:
    """The student's assistant turn around the explanation and the solution: (head, middle, tail)."""
    (think_open, think_close), (sol_open, sol_close) = style.thought, style.solution
    return think_open + PADDING, think_close + PADDING + sol_open + PADDING, PADDING + sol_close


def student_segments(tokenizer, question: str, style: TagStyle | str = STRATOS) -> StudentSegments:
    style = get_style(style)
    before, after = _around_assistant(tokenizer, student_system_prompt(style), question)
    head, middle, tail = _student_turn(style)
    return StudentSegments(prefix=before + head, middle=middle, suffix=tail + after)


def student_messages(question: str, explanation: str, solution: str, style: TagStyle | str = STRATOS) -> list[dict]:
    """The distillation chat as messages, for any student's chat template; the same turn as `student_text`."""
    style = get_style(style)
    head, middle, tail = _student_turn(style)
    return [
        {"role": "system", "content": student_system_prompt(style)},
        {"role": "user", "content": question},
        {"role": "assistant", "content": head + explanation + middle + solution + tail},
    ]


def student_text(tokenizer, question: str, explanation: str, solution: str, style: TagStyle | str = STRATOS) -> str:
    """The distillation format: the explanation in the student's think section, then the tagged solution."""
    return student_segments(tokenizer, question, style).text(explanation, solution)


def student_prompt(tokenizer, question: str, style: TagStyle | str = STRATOS) -> str:
    """What a student is given at evaluation time: system prompt and question, ready to generate."""
    style = get_style(style)
    messages = [
        {"role": "system", "content": student_system_prompt(style)},
        {"role": "user", "content": question},
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass(frozen=True)
class ParsedExplanation:
    text: str  # the explanation body, before the first closing tag (or all of it when the tag is missing)
    matched: bool  # False when the closing tag never appears: penalised, not an error
    end: int  # character index where the explanation body stops in the completion


def parse_explanation(completion: str, style: TagStyle | str = STRATOS) -> ParsedExplanation:
    """Split a raw teacher completion (generated after the opening tag) at the first closing tag."""
    style = get_style(style)
    end = completion.find(style.explanation[1])
    if end < 0:
        return ParsedExplanation(text=completion, matched=False, end=len(completion))
    return ParsedExplanation(text=completion[:end], matched=True, end=end)


def extract_solution(student_completion: str, style: TagStyle | str = STRATOS) -> str | None:
    """The text of the last solution section a student wrote, or None when it wrote none."""
    style = get_style(style)
    sol_open, sol_close = style.solution
    start = student_completion.rfind(sol_open)
    if start < 0:
        return None
    body = student_completion[start + len(sol_open) :]
    end = body.find(sol_close)
    return (body if end < 0 else body[:end]).strip()
