"""Does an explanation state the final answer? Found sentence by sentence, so that the sentences can be taken out.

Under the answer framing the solution the student must predict is "The answer is X.", and X sits in the teacher's
prompt: an explanation that states X makes the solution predictable without teaching anything. Two uses:

    states_answer(text, answer)   a descriptive rate: how often explanations state the answer
    strip_answer(text, answer)    the causal check: the explanation without its answer-stating sentences, to rescore
                                  (a gain that vanishes once they are gone was the statement, not the teaching)

What counts as stating the answer X (after normalising both texts: case, spacing, thousands separators, LaTeX
fractions, unicode minus, markup):

    an answer phrase    "the answer (to this question) is X", "answer: X", "\\boxed{X}", "X is our answer"
    a conclusion        X ending a sentence after "is", "equals", "comes to" ("so the remainder is X."), or after
                        an opening "so", "thus", "hence", "in total" … ("hence, X.")
    an equation         "… = X" where X is the whole right-hand side ("x = 0", not "n = -3 + 6"): numeric answers
    a mention           X anywhere as a whole token: only for answers longer than 2 characters that are not yes/no

A question ("Is the answer 76?") states nothing. A yes/no answer also counts as a whole opening clause ("No, it
cannot be done."). A yes/no answer or one of at most 2 characters ("No", "0", "-1") is never stated by a bare
token: "1. Let x be …" does not state "1", "There is no real solution" does not state "No". An
answer that opens with a value and goes on in words ("0 is the only possible value", "1000 (i.e., all values)") is
also stated by that value, under the same rules. Recall and precision on a labelled set of sentences:
`rlt.measure.statement_set` (BENCHMARKS §3h).
"""

from __future__ import annotations

import re
from functools import lru_cache

YES_NO = {"yes", "no"}

# Thousands separators inside a number (12,000, 12\,000 or a thin space → 12000), never a list "1, 2" (3 digits must
# follow) nor "5 100" (a plain space may separate two numbers).
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\\,|\u2009)(?=\d{3}(?!\d))")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_DIGITS = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac12
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_MARKUP = re.compile(r"\\left|\\right|\\[,;!:]|\$|\*\*|__|`")


def normalize(text: str) -> str:
    """Text as compared: lower case, LaTeX fractions as a/b, unicode minus and times as ASCII, thousands separators
    and markup gone, no spaces around symbols, runs of spaces as one."""
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u00d7", "*").replace("\\cdot", "*")
    text = _THOUSANDS.sub("", text)
    for _ in range(3):  # nested fractions, innermost first
        text = _FRAC.sub(r"(\1)/(\2)", text)
    text = _FRAC_DIGITS.sub(r"\1/\2", text)
    text = re.sub(r"\((\d+)\)/\((\d+)\)", r"\1/\2", text)  # (1)/(2) from a plain \frac{1}{2} → 1/2
    text = _MARKUP.sub("", _TEXT.sub(r"\1", text)).lower()
    text = re.sub(r"\s*([=+\-*/^,:<>])\s*", r"\1", text)
    text = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", text))
    return re.sub(r"\s+", " ", text).strip()


# A value at the start of an answer that goes on in words: "0 is the only …", "1000 (i.e., all values)".
_LEADING_VALUE = re.compile(r"^(-?\d+(?:[./]\d+)?)(?=\s|\(|,|$)")


@lru_cache(maxsize=4096)
def answer_forms(answer: str) -> tuple[str, ...]:
    """The normalised texts that count as the answer: the whole answer and, when it opens with a value followed by
    words, that value."""
    whole = normalize(answer).rstrip(".")
    forms = [whole]
    value = _LEADING_VALUE.match(whole)
    if value and value.group(1) != whole:
        forms.append(value.group(1))
    return tuple(f for f in forms if f)


def _short(form: str) -> bool:
    """Too short or too common to count as stated by a bare mention."""
    return len(form) <= 2 or form in YES_NO


def _is_numeric(form: str) -> bool:
    return re.fullmatch(r"-?[\d./]+", form) is not None


# Where a stated value must end: not inside a longer number, word or expression.
_VALUE_END = r"(?![\w]|[.,/]\d|[+\-*/^(])"
# "the answer is X", "the answer to this question is X", "answer: X", "answers are X", "\boxed{X}" (normalised text)
_ANSWER_PHRASE = (
    r"(?:\banswers?\b(?:\s+to\s+(?:this|the)\s+(?:question|problem))?"
    r"(?:\s*(?:is|are|was|would be|will be|should be|must be|equals|of))?(?:\s+(?:therefore|thus|then|clearly))?"
    r"\s*(?:[:=]|\bis\b)?\s*|\\boxed\{)"
)
# A value that concludes its sentence: after "is", "equals", "comes to" ("so the remainder is X."), or anywhere
# after an opening "so", "thus", "hence", … ("hence, X.", "in total we have X."); the sentence's end may follow.
_SENTENCE_TAIL = r"\s*[.!]?\s*$"
_CONCLUDING = r"^(?:so|thus|therefore|hence|finally|in total|altogether|overall|putting it together)\b(?! far\b)"


def _statement(form: str) -> re.Pattern:
    """The pattern of the ways `form` can be stated in normalised text."""
    value = re.escape(form)
    if form in YES_NO:  # "the answer is no, …", "so, no.", "no: …", never "no idea", "no two …" or "nobody"
        return re.compile(_ANSWER_PHRASE + value + r"(?!\w)(?!\s+(?:idea|one|way)\b)"
                          r"|^(?:(?:so|thus|therefore|hence)\s*,?\s*)?" + value + r"\s*[,:;.!]")  # fmt: skip
    # A sign before a positive value makes another number ("-3" is not "3").
    start = r"(?<![\w.\-/^])" if not form.startswith("-") else r"(?<![\w.\-/^+*])"
    ways = [
        _ANSWER_PHRASE + value + _VALUE_END,
        start + value + r"\s+(?:is|as)\s+(?:the\s+|our\s+|my\s+)?(?:final\s+)?answer\b",  # "X is our answer"
        r"\b(?:is|are|equals|was|comes to)\s+" + value + _SENTENCE_TAIL,  # "so the remainder is X."
        _CONCLUDING + r".*?(?:[\s,]|\bare\s)" + value + r"(?:" + _SENTENCE_TAIL + r"|\s+\w+\s+in all)",  # "hence, X."
    ]
    if _is_numeric(form):  # "x = 0", "2 + 1 = 3": the whole right-hand side
        ways.append(r"=" + value + _VALUE_END)
    if not _short(form):
        ways.append(start + value + _VALUE_END)
    return re.compile("|".join(f"(?:{w})" for w in ways))


def states_answer(text: str, answer: str | None) -> bool:
    """Whether `text` states the final `answer` (the module docstring says what counts)."""
    return bool(answer) and bool(answer_sentences(text, answer))


# A sentence ends at . ! ? followed by white space, or at a line break. Decimal points ("0.5") are followed by a
# digit; the number opening a numbered line ("1. Let x be") is no sentence of its own.
_SENTENCE_END = re.compile(r"(?<!^\d)(?<!^\d\d)[.!?](?=\s)|\n", re.MULTILINE)


def sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) character spans of the sentences of `text`, covering it in order (end marks and the space after
    a sentence stay with it)."""
    spans, start = [], 0
    for end_mark in _SENTENCE_END.finditer(text):
        end = end_mark.end()
        while end < len(text) and text[end] in " \t":
            end += 1
        spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def answer_sentences(text: str, answer: str | None) -> list[tuple[int, int]]:
    """The spans of the sentences of `text` that state `answer`."""
    if not answer or not text:
        return []
    patterns = [_statement(form) for form in answer_forms(answer)]
    return [(s, e) for s, e in sentences(text) if not text[s:e].rstrip().endswith("?")  # a question asks, never states
            and any(p.search(normalize(text[s:e])) for p in patterns)]  # fmt: skip


def strip_answer(text: str, answer: str | None) -> str:
    """`text` without the sentences that state `answer` (everything else kept as written)."""
    kept, last = [], 0
    for start, end in answer_sentences(text, answer):
        kept.append(text[last:start])
        last = end
    kept.append(text[last:])
    return "".join(kept)
