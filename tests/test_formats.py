import pytest

from rlt.reward.formats import (
    R1,
    STRATOS,
    extract_solution,
    get_style,
    parse_explanation,
    student_messages,
    student_prompt,
    student_segments,
    student_system_prompt,
    student_text,
    teacher_prompt,
    teacher_system_prompt,
    teacher_text,
)

QUESTION = "Tom has 3 apples and buys 2 more. How many apples does he have?"
SOLUTION = "3 + 2 = 5. The answer is 5."
EXPLANATION = "He starts with 3.\n\nBuying 2 more adds to that, so 3 + 2 = 5."


@pytest.mark.parametrize("style", [STRATOS, R1])
def test_teacher_text_round_trip(tokenizer, style):
    text = teacher_text(tokenizer, QUESTION, SOLUTION, style)
    full = text.prompt + text.completion(EXPLANATION)
    exp_open, exp_close = style.explanation
    assistant = (
        f"{style.solution[0]}\n\n{SOLUTION}\n\n{style.solution[1]}\n\n{exp_open}\n\n{EXPLANATION}\n\n{exp_close}"
    )
    rendered = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": teacher_system_prompt(style)},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": assistant},
        ],
        tokenize=False,
    )
    assert full == rendered
    assert text.prompt.endswith(exp_open + "\n\n")
    assert SOLUTION in text.prompt and QUESTION in text.prompt
    parsed = parse_explanation(text.completion(EXPLANATION), style)
    assert parsed.matched and parsed.text == EXPLANATION + "\n\n"
    assert teacher_prompt(tokenizer, QUESTION, SOLUTION, style) == text.prompt


@pytest.mark.parametrize("style", [STRATOS, R1])
def test_student_text_round_trip(tokenizer, style):
    text = student_text(tokenizer, QUESTION, EXPLANATION, SOLUTION, style)
    think_open, think_close = style.thought
    assert f"{think_open}\n\n{EXPLANATION}{think_close}\n\n{style.solution[0]}\n\n{SOLUTION}" in text
    assert student_system_prompt(style) in text and teacher_system_prompt(style) not in text
    segments = student_segments(tokenizer, QUESTION, style)
    assert segments.text(EXPLANATION, SOLUTION) == text
    # The messages the traces carry render to the very text the reward scores.
    messages = student_messages(QUESTION, EXPLANATION, SOLUTION, style)
    assert tokenizer.apply_chat_template(messages, tokenize=False) == text
    assert extract_solution(text, style) == SOLUTION
    prompt = student_prompt(tokenizer, QUESTION, style)
    assert prompt.endswith("<|im_start|>assistant\n") and QUESTION in prompt


def test_first_end_tag_wins_and_missing_tag_is_reported():
    parsed = parse_explanation("a<|end_of_explanation|>b<|end_of_explanation|>")
    assert (parsed.text, parsed.matched, parsed.end) == ("a", True, 1)
    parsed = parse_explanation("never closed")
    assert (parsed.text, parsed.matched, parsed.end) == ("never closed", False, 12)
    assert parse_explanation("").matched is False


def test_divider_string_in_inputs_does_not_break_the_prompt(tokenizer):
    # The original split the teacher text on "</sol>\n\n<expl>\n\n" and crashed when it was missing or repeated.
    divider = "<|end_of_solution|>\n\n<|begin_of_explanation|>\n\n"
    prompt = teacher_prompt(tokenizer, QUESTION + divider, SOLUTION, STRATOS)
    assert prompt.count(divider) == 2 and prompt.endswith(divider)


def test_extract_solution_takes_last_section():
    text = "<|begin_of_solution|>first<|end_of_solution|> then <|begin_of_solution|> 42 <|end_of_solution|>"
    assert extract_solution(text) == "42"
    assert extract_solution("<|begin_of_solution|> unterminated 7") == "unterminated 7"
    assert extract_solution("no tags at all") is None


def test_unknown_style_is_named():
    with pytest.raises(ValueError, match="unknown format style 'nope'"):
        get_style("nope")
    assert get_style("r1") is R1


def test_template_without_verbatim_content_is_refused(tokenizer):
    import copy

    broken = copy.deepcopy(tokenizer)
    broken.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(ValueError, match="verbatim"):
        teacher_prompt(broken, QUESTION, SOLUTION)
