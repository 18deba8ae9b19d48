"""Countdown: reach a target from given numbers with + - * /, each number used exactly once. Generated offline.

The paper's zero-shot transfer task (spec §7): a teacher trained on math explains countdown problems it never saw,
and students learn countdown from those explanations. Here the problems come from a seeded generator, so the task
needs no file and no network, and every problem carries a solution expression verified by the checker that grades
students:

    generate(count, sizes, seed)  problems whose difficulty is the count of numbers (3-4: easy; 5-6: hard)
    Countdown.check(text)         exact and safe: the expression is parsed (`ast`, arithmetic nodes only, never
                                  `eval`), must use the given numbers exactly once each, and is evaluated in exact
                                  fractions against the target; an answer given as its steps ("7 + 3 = 10,
                                  10 * 5 = 50") is checked step by step

    search_trace(...)             a reasoning trace that searches (tries, dead ends, backing up) and ends on the
                                  path of the row's worked solution: the paper's framing, where the teacher is shown
                                  the worked solution and learns to write the trace that leads there

`rlt` reads `--dataset countdown` (3-4 numbers) or `countdown:N` / `countdown:N-M` (N to M numbers) like the
embedded CHAMP set: a fixed list of problems per spec (`--countdown_problems`, default `DATASET_SIZE`), the same
on every machine, with search traces shaped by `--search_dead_ends` and `--search_tries`.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

from rlt.errors import UsageError

OPERATORS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
MAX_NUMBER = 25  # numbers are drawn from 1..MAX_NUMBER: arithmetic a small model can do in its head
MAX_TARGET = 200
MAX_ANSWER_CHARS = 2000  # a longer solution section is not a countdown answer; bounds the parser's work
DATASET_SIZE = 1000
DEFAULT_SIZES = (3, 4)
SOLUTIONS = ("worked", "steps")  # how a generated solution is written: `worked_solution`, `steps_solution`


@dataclass(frozen=True)
class Countdown:
    """One problem: the numbers to use and the target to reach."""

    numbers: tuple[int, ...]
    target: int

    @property
    def goal(self) -> str:
        """The question's first sentence, which a search trace opens by restating."""
        return f"Make {self.target} from the numbers {_listed(self.numbers)}."

    @property
    def question(self) -> str:
        return (f"{self.goal} Each number must be used exactly once; combine them with +, -, *, / and parentheses. "
                "Give the expression.")  # fmt: skip

    def check(self, text: str | None) -> tuple[bool, str]:
        """(correct, verdict) for a student's answer. The verdict is one of: correct, malformed (no arithmetic
        expression of integers in it), wrong numbers (none uses each given number exactly once), division by zero,
        wrong value.

        The expression checked is the last one in the text that uses exactly the given numbers, so an answer may be
        bare ("(7 + 3) * 5"), stated ("The answer is: (7 + 3) * 5."), carry its value either side ("(7 + 3) * 5 =
        50", "50 = 5 * (7 + 3)", "= \\boxed{50}"), sit in a \\boxed{} and use LaTeX or unicode operators (\\times,
        \\div, \\frac, ×, ÷, −), be a list item ("- (7 + 3) * 5", "1) (7 + 3) * 5", "Step 2: (7 + 3) * 5") or close
        a parenthetical ("(Answer: (7 + 3) * 5)").

        An answer may also be its steps, as the game is played on television: "7 + 3 = 10, 10 * 5 = 50". The steps
        are the text's last `len(numbers) - 1` statements "a op b = c"; they count when each takes its operands from
        the numbers given and the results stated before it, each once, and they are right when every statement is
        exact ("false step" when one is not) and the last one makes the target.

        Only the last answer counts, steps or expression: listing several tries earns nothing for the right one.
        """
        steps = _step_answer(text, self.numbers, self.target)
        if steps is None:
            return self._check_expression(text)
        verdict, end = steps
        after = self._check_expression(text[end:])
        if after[1] in ("malformed", "wrong numbers"):  # no expression of the numbers after the steps: they answer
            return verdict == "correct", verdict
        return after

    def _check_expression(self, text: str | None) -> tuple[bool, str]:
        trees = [tree for tree in map(_parse, candidates(text)) if tree is not None]
        if not trees:
            return False, "malformed"
        given = sorted(self.numbers)
        using = [t for t in trees if sorted(n.value for n in ast.walk(t) if isinstance(n, ast.Constant)) == given]
        if not using:
            return False, "wrong numbers"
        try:
            value = _evaluate(using[-1])
        except ZeroDivisionError:
            return False, "division by zero"
        return (True, "correct") if value == self.target else (False, "wrong value")


# ---------------------------------------------------------------------------------------------------- checking

_NOTATION = [("\\[", ""), ("\\]", ""), ("\\(", ""), ("\\)", ""), ("\\left", ""), ("\\right", ""), ("\\times", "*"),
             ("\\cdot", "*"), ("\\ast", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"), ("⋅", "*"), ("∗", "*"),
             ("÷", "/"), ("∕", "/"), ("−", "-"), ("–", "-"), ("\u00a0", " "), ("{", "("), ("}", ")"), ("[", "("),
             ("]", ")")]  # fmt: skip
_FRACTION = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_EXPRESSION = re.compile(r"[0-9()+\-*/ ]+")  # a run of characters an arithmetic expression is made of
# A list item's marker made of expression characters, so that it starts the item's run: "- ", "+ ", "1) ", "(2) ",
# then space and an operand. "* " leaves with markdown bold (`_trim`); "1. ", "• " and "Step 2: " hold a character
# no expression has, which ends a run before the item.
_LIST_MARKER = re.compile(r"(?:[-+]|\(?\d+\))\s+(?=[\d(])")


def candidates(text: str | None) -> list[str]:
    """The spans of `text` that may be arithmetic expressions, in order, after LaTeX and unicode operators are
    rewritten: every maximal run of digits, operators, parentheses and spaces that holds a digit.

    A run that starts a line and starts with a list marker is offered twice, whole and without its marker: "1) 2 + 3"
    may be the item 2 + 3 or a broken expression, and only the checker knows the numbers. At most one of the two
    parses, so the choice never needs making: the whole run starts with a unary sign, which no answer may use, or
    with an unmatched ")" or a call "(2) (...)", which do not parse; without its marker, the run lacks the marker's
    number, so "1) 2 + 3" never counts as using a 1.
    """
    if not text or len(text) > MAX_ANSWER_CHARS:
        return []
    text = _FRACTION.sub(r"((\1)/(\2))", text)
    for old, new in _NOTATION:
        text = text.replace(old, new)
    runs = []
    for line in text.splitlines():
        for match in _EXPRESSION.finditer(line):
            run = match.group().strip()
            marker = _LIST_MARKER.match(run) if not line[: match.start()].strip() else None
            runs += [run, run[marker.end() :]] if marker else [run]
    return [run for run in map(_trim, runs) if any(c.isdigit() for c in run)]


def _trim(run: str) -> str:
    """A run without what cannot belong to the expression at its ends: "**Answer:** 7 * 5" (markdown bold) leaves a
    leading "*", "(Answer: 7 * 5)" an unmatched closing ")", a sentence broken at "=" a trailing operator. An
    unmatched ")" inside the run ("7 + 3) * 5") stays: the run is no expression."""
    run = run.strip().lstrip("*/")
    depth = 0
    for i, char in enumerate(run):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            if not run[i:].strip(") "):
                run = run[:i]
            break
    return run.strip().rstrip("+-*/").strip()


def _parse(expression: str) -> ast.expr | None:
    """The expression's syntax tree when it is arithmetic on non-negative integer literals only; else None."""
    try:
        tree = ast.parse(expression, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    allowed = tuple(OPERATORS.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, allowed):
            continue
        if isinstance(node, ast.Constant) and type(node.value) is int:
            continue
        if isinstance(node, ast.operator) and isinstance(node, allowed):
            continue
        return None  # names, calls, attributes, unary minus, powers, floats, strings: not a countdown answer
    return tree


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    return left / right  # Fraction raises ZeroDivisionError


# whole numbers only: "25 - 3 = 22" holds no "5 - 3 = 2", and "-3 + 5 = 2" or "1.5 + 2 = 3.5" is no statement
_STATEMENT = re.compile(r"(?<![\d.\-])(\d+) ([-+*/]) (\d+) = (\d+)(?![\d.]\d)")
_EXACT = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: Fraction(a, b)}


def _step_answer(text: str | None, numbers: tuple[int, ...], target: int) -> tuple[str, int] | None:
    """(verdict, where the steps end) when the last `len(numbers) - 1` statements of `text` use the numbers as a
    derivation does (`Countdown.check`); None when they do not, or the text holds too few."""
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    statements = list(_STATEMENT.finditer(text))[-(len(numbers) - 1) :]
    if len(statements) < len(numbers) - 1:
        return None
    pool, exact = Counter(numbers), True
    for statement in statements:
        left, op, right, result = statement.groups()
        a, b, c = int(left), int(right), int(result)
        for operand in (a, b):
            if pool[operand] == 0:
                return None
            pool[operand] -= 1
        pool[c] += 1
        exact = exact and (op != "/" or b != 0) and _EXACT[op](a, b) == c
    verdict = "false step" if not exact else "correct" if c == target else "wrong value"
    return verdict, statements[-1].end()


# -------------------------------------------------------------------------------------------------- generating


@dataclass(frozen=True)
class _Step:
    left: int
    op: str
    right: int
    value: int


def _combine(a: int, op: str, b: int) -> int | None:
    """a op b when it stays a positive integer (the rule every intermediate result of a generated solution keeps)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b
    return a // b if b > 1 and a % b == 0 else None  # "/ 1" is allowed in answers, never needed in solutions


def _render(left: tuple[str, str], op: str, right: tuple[str, str]) -> str:
    """`left op right` with the parentheses the operators need: each operand is (text, its top operator or "")."""

    def wrap(operand: tuple[str, str], on_right: bool) -> str:
        text, top = operand
        if not top:
            return text
        looser = _PRECEDENCE[top] < _PRECEDENCE[op]
        # a - (b + c), a / (b * c): the right operand of - and / keeps its parentheses at equal precedence
        if looser or (on_right and op in "-/" and _PRECEDENCE[top] == _PRECEDENCE[op]):
            return f"({text})"
        return text

    return f"{wrap(left, False)} {op} {wrap(right, True)}"


def _merge(pool: list, i: int, j: int, op: str) -> tuple[list, _Step] | None:
    """Pool items i and j combined by `op`, the larger first (subtraction and division only go that way): the pool
    after, and the step; None when the result leaves the positive integers. A pool item is (value, (text, its top
    operator or ""))."""
    (a, a_text), (b, b_text) = sorted((pool[i], pool[j]), key=lambda item: -item[0])
    value = _combine(a, op, b)
    if value is None:
        return None
    rest = [item for k, item in enumerate(pool) if k not in (i, j)]
    return [*rest, (value, (_render(a_text, op, b_text), op))], _Step(a, op, b, value)


def solve_randomly(numbers: list[int], rng: random.Random) -> tuple[str, int, list[_Step]] | None:
    """One random way to combine all `numbers` into a single value: (expression, value, steps), or None when the
    draw hit a step that leaves the positive integers."""
    pool, steps = [(n, (str(n), "")) for n in numbers], []
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        merged = _merge(pool, i, j, rng.choice("+-*/"))
        if merged is None:
            return None
        pool, step = merged
        steps.append(step)
    value, (expression, _) = pool[0]
    return expression, value, steps


def solve(numbers: list[int], target: int) -> tuple[str, list[_Step]] | None:
    """An expression that makes `target` from all `numbers` through positive-integer steps, with its steps, found
    depth-first; None when there is none (or only through a fraction). Seconds at 6 numbers, for rows that come
    without an answer."""

    def search(pool: list, steps: list[_Step]) -> tuple[str, list[_Step]] | None:
        if len(pool) == 1:
            return (pool[0][1][0], steps) if pool[0][0] == target else None
        for i, j in combinations(range(len(pool)), 2):
            for op in "+-*/":
                merged = _merge(pool, i, j, op)
                found = merged and search(merged[0], [*steps, merged[1]])
                if found:
                    return found
        return None

    return search([(n, (str(n), "")) for n in numbers], [])


def worked_solution(problem: Countdown, expression: str, steps: list[_Step]) -> str:
    """The solution as a person would write it out: one operation per line, what is left after it, the expression."""
    lines = [f"Target {problem.target}, numbers {', '.join(map(str, problem.numbers))}."]
    left = list(problem.numbers)
    for step in steps:
        left.remove(step.left)
        left.remove(step.right)
        left.append(step.value)
        after = f"left: {', '.join(map(str, left))}" if len(left) > 1 else "the target"
        lines.append(f"{step.left} {step.op} {step.right} = {step.value}, {after}.")
    lines.append(f"So {expression} = {problem.target}.")
    return "\n".join(lines)


def steps_solution(steps: list[_Step]) -> str:
    """The solution as its steps alone, an answer `Countdown.check` reads step by step: "So 13 - 10 = 3, 6 / 3 = 2."
    A search trace states these very steps where it walks the path, so a reader writes its answer by copying them,
    where an expression would have to be rebuilt from them (BENCHMARKS §12g)."""
    return "So " + ", ".join(f"{s.left} {s.op} {s.right} = {s.value}" for s in steps) + "."


# ---------------------------------------------------------------------------------------------- search traces


@dataclass(frozen=True)
class Search:
    """How long a search trace may wander before it walks the solution's path (`search_trace`). SmolLM2 tokens of
    a trace (1,000 problems; median, 95th percentile): 3 numbers 113, 160 at (1, 1), 139, 234 at (2, 2), 64, 84 at
    dead_ends 0; 4 numbers 186, 298 at (1, 1), 336, 596 at (2, 2). The worked solution is 68 and 100.

    dead_ends  at each state on the solution's path, at most this many other moves are tried first (drawn
               0..dead_ends per state), each one a move from which the target cannot be reached; 0 writes the
               solution's path alone, with its last tries
    tries      inside a dead end of three or more numbers, how many of its moves are followed to their last pair
               before backing up
    restate_move  open each last pair's line with the move that made the pair ("After 13 - 10 = 3: 6 * 3 = 18,
               …"), so the line where the search stops holds its whole path: a micro-world student copies its
               steps answer from there (0.35 against 0.28 greedy, BENCHMARKS §12g)
    """

    dead_ends: int = 1
    tries: int = 1
    restate_move: bool = False

    @property
    def draw_key(self) -> str:
        """What seeds a trace's draws: the knobs that change them (restating a move draws nothing)."""
        return f"Search(dead_ends={self.dead_ends}, tries={self.tries})"

    def __post_init__(self):
        if self.dead_ends < 0 or self.tries < 1:
            raise UsageError(f"a search needs dead_ends (--search_dead_ends) >= 0 and tries (--search_tries) >= 1, "
                             f"got {self.dead_ends} and {self.tries}")  # fmt: skip


def _moves(values: tuple[int, ...]) -> list[tuple[int, str, int, int, tuple[int, ...]]]:
    """Every move from a pool of values: (a, op, b, result, the pool after), the larger operand first, results kept
    to the positive integers (as in generated solutions)."""
    moves = {}
    for i, j in combinations(range(len(values)), 2):
        a, b = sorted((values[i], values[j]), reverse=True)
        rest = tuple(v for k, v in enumerate(values) if k not in (i, j))
        for op in "+-*/":
            value = _combine(a, op, b)
            if value is not None:  # a repeated number makes the same move twice: keep one, so none is tried twice
                moves.setdefault((a, op, b), (a, op, b, value, (*rest, value)))
    return list(moves.values())


def reachable(values: tuple[int, ...], target: int, _memo: dict | None = None) -> bool:
    """Whether `target` can be made from all `values` through positive-integer steps (exhaustive, memoised)."""
    memo = {} if _memo is None else _memo
    key = tuple(sorted(values))
    if key not in memo:
        if len(key) == 1:
            memo[key] = key[0] == target
        else:
            memo[key] = any(reachable(after, target, memo) for *_, after in _moves(key))
    return memo[key]


def _listed(values) -> str:
    return ", ".join(map(str, values))


def search_trace(problem: Countdown, steps: list[_Step], search: Search, rng: random.Random) -> str:
    """A stream of search (Stream of Search, Gandhi et al. 2024, in our own words) that ends on the path of `steps`.

    At each state of the path it first tries some moves that lead nowhere, each explored a little and abandoned
    ("Back to ..."), then takes the path's move. The last pair is finished by trying operations until one makes the
    target. Every statement is true: each "a op b = c" is exact, every abandoned move is one from which the target
    cannot be reached in positive whole-number steps (checked exhaustively; the checker also accepts answers through
    fractions, negatives or zero, which this search, like the generator's solutions, does not use), and every "No."
    closes a pair none of whose results is the target.
    """
    target, memo = problem.target, {}
    made_by = ""  # the move that made the pool a last pair is in, when search.restate_move
    # Restated word for word: a reader copies it from the question in order, the way it copies any repeated text,
    # where "Numbers a, b, c. Target t." asked for the target out of order (a micro-world student got it 20 % right).
    lines = [problem.goal]

    def last_pair(pool: tuple[int, ...], depth: int, finish: tuple[int, str, int] | None) -> None:
        """The two numbers' operations in random order; with `finish`, up to and including that one."""
        tried, moves = [], _moves(pool)
        rng.shuffle(moves)
        if finish is not None:  # the path's own operation last, after some others that miss the target
            misses = [m for m in moves if m[3] != target]
            moves = [*misses[: rng.randint(0, len(misses))], next(m for m in moves if m[:3] == finish)]
        opening = "  " * depth + (made_by if search.restate_move else "")
        for a, op, b, value, _ in moves:
            tried.append(f"{a} {op} {b} = {value}")
            if value == target:
                lines.append(opening + ", ".join(tried) + ". Yes!")
                return
        lines.append(opening + ", ".join(tried) + ". No.")

    def take(move: tuple, depth: int) -> tuple[int, ...]:
        """Write the move's line; the pool after it."""
        nonlocal made_by
        a, op, b, value, after = move
        lines.append("  " * depth + f"Try {a} {op} {b} = {value}, left {_listed(after)}.")
        made_by = f"After {a} {op} {b} = {value}: "
        return after

    def dead_end(pool: tuple[int, ...], depth: int) -> None:
        """Explore a pool the target cannot be reached from, then leave it."""
        if len(pool) == 2:
            last_pair(pool, depth, None)
            return
        moves = _moves(pool)
        for move in rng.sample(moves, min(search.tries, len(moves))):
            dead_end(take(move, depth), depth + 1)

    pool = tuple(problem.numbers)
    for depth, step in enumerate(steps):
        if len(pool) == 2:
            last_pair(pool, depth, (step.left, step.op, step.right))
            break
        moves = _moves(pool)
        path_move = next(m for m in moves if m[:3] == (step.left, step.op, step.right))
        hopeless = [m for m in moves if not reachable(m[4], target, memo)]
        for move in rng.sample(hopeless, rng.randint(0, min(search.dead_ends, len(hopeless)))):
            dead_end(take(move, depth), depth + 1)
            lines.append("  " * depth + f"Back to {_listed(pool)}.")
        pool = take(path_move, depth)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- reading explanations


def arithmetic(text: str) -> tuple[int, int]:
    """(true, all) "a op b = c" statements in a text: how much of an explanation's arithmetic is right."""
    found = [_EXACT[op](int(a), int(b)) == int(c) for a, op, b, c in _STATEMENT.findall(text) if op != "/" or int(b)]
    return sum(found), len(found)


def _step_lines(solution: str) -> list[str]:
    """The operation lines of a solution: a worked one's (`worked_solution`: between its header and "So ..."), or
    a steps solution's one line ("So 13 - 10 = 3, 6 / 3 = 2.", `steps_solution`). A search trace writes neither."""
    lines = solution.split("\n")
    if len(lines) == 1:
        return lines if solution.startswith("So ") and _STATEMENT.search(solution) else []
    return lines[1:-1]


def solution_steps(solution: str) -> list[tuple[str, ...]]:
    """The operations of a worked or steps solution: [("10", "+", "1", "11"), ("22", "+", "11", "33")]."""
    lines = _step_lines(solution)
    if lines == [solution]:  # the steps solution's line states every operation
        return _STATEMENT.findall(solution)
    return [found for line in lines for found in _STATEMENT.findall(line)[:1]]


def walks_solution_path(explanation: str, solution: str) -> bool:
    """Whether an explanation states every operation of the worked solution it was shown, as a search that ends on
    that solution's path does. False for a solution with no operation lines (e.g. "The answer is X.")."""
    steps, stated = solution_steps(solution), set(_STATEMENT.findall(explanation))
    return bool(steps) and all(step in stated for step in steps)


def copies_solution_line(explanation: str, solution: str) -> bool:
    """Whether an explanation holds a step line of the shown worked solution verbatim ("10 + 1 = 11, left: 22,
    11."), which a search trace never writes (its lines read "Try 10 + 1 = 11, left 22, 11.")."""
    return any(line in explanation for line in _step_lines(solution))


def _reachable_targets(values: tuple[int, ...], memo: dict) -> frozenset[int]:
    """Every value all of `values` combine into through positive-integer steps (the generator's rule)."""
    key = tuple(sorted(values))
    if key not in memo:
        if len(key) == 1:
            memo[key] = frozenset(key)
        else:
            memo[key] = frozenset().union(*(_reachable_targets(after, memo) for *_, after in _moves(key)))
    return memo[key]


def distinct_problems(sizes: tuple[int, int] = DEFAULT_SIZES, max_number: int = MAX_NUMBER, at_least: int = 0) -> int:
    """How many distinct problems (numbers as a multiset, target) `generate` can draw: 859 for two numbers up to 25.

    With `at_least`, the count may stop early once it is certain to exceed it: every multiset of numbers whose sum is
    a valid target gives one problem, which bounds large spaces from below in milliseconds; only a space near
    `at_least` is enumerated (memoised over sub-pools)."""
    from itertools import combinations_with_replacement

    low, high = sizes
    # multisets of `size` numbers in 1..max_number by their sum (a sum always exceeds each number: a valid target)
    by_sum_bound = 0
    for size in range(low, high + 1):
        ways = [[0] * (MAX_TARGET + 1) for _ in range(size + 1)]  # ways[k][s]: k numbers, non-decreasing, sum s
        ways[0][0] = 1
        for number in range(1, max_number + 1):
            for k in range(1, size + 1):
                for total in range(number, MAX_TARGET + 1):
                    ways[k][total] += ways[k - 1][total - number]
        by_sum_bound += sum(ways[size][2:])
    if at_least and by_sum_bound > at_least:
        return by_sum_bound
    memo: dict = {}
    count = 0
    for size in range(low, high + 1):
        for numbers in combinations_with_replacement(range(1, max_number + 1), size):
            targets = _reachable_targets(numbers, memo)
            count += sum(1 for t in targets if 1 <= t <= MAX_TARGET and t not in numbers)
    return count


def check_target_and_solution(target: int | None, solution: str) -> None:
    """A usage error for a fixed target out of range or an unknown way of writing solutions."""
    if target is not None and not 1 <= target <= MAX_TARGET:
        raise UsageError(f"a countdown target (--countdown_target) must be in 1..{MAX_TARGET}, got {target}")
    if solution not in SOLUTIONS:
        raise UsageError(f"a countdown solution (--countdown_solution) is one of {', '.join(SOLUTIONS)}, "
                         f"got {solution!r}")  # fmt: skip


def one_target_problems(sizes: tuple[int, int], max_number: int, target: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Every problem with the fixed `target` (as in the 24 game): every order of every multiset of numbers that makes
    it, the orders of a multiset next to each other, the multisets in a seeded order. A multiset's orders are one
    problem in another order, so they are never split between training and held out (`rlt.data.split_problems`)."""
    from itertools import combinations_with_replacement, permutations

    memo: dict = {}
    low, high = sizes
    multisets = [numbers for size in range(low, high + 1)
                 for numbers in combinations_with_replacement(range(1, max_number + 1), size)
                 if reachable(numbers, target, memo)]  # fmt: skip
    random.Random(f"countdown-target:{seed}:{low}-{high}:{max_number}:{target}").shuffle(multisets)
    return [order for numbers in multisets for order in sorted(set(permutations(numbers)))]


def generate(
    count: int,
    sizes: tuple[int, int] = DEFAULT_SIZES,
    seed: int = 0,
    search: Search | None = Search(),
    max_number: int = MAX_NUMBER,
    target: int | None = None,
    solution: str = "worked",
) -> list[dict]:
    """`count` distinct problems with `sizes[0]`..`sizes[1]` numbers each, drawn from 1..`max_number`, as dataset
    rows: question, solution, answer (a verified expression), numbers, target, and with `search` a `reasoning_trace`
    that searches its way to that solution (`search_trace`). The same seed gives the same rows everywhere; the
    problems and their solutions do not depend on `search`. A count beyond the distinct problems that exist is
    refused at once (the draw would never end).

    `target`: every problem has this target, and the rows are the first `count` of `one_target_problems`; by default
    each problem draws its own. `solution`: "worked" (`worked_solution`) or "steps" (`steps_solution`)."""
    low, high = sizes
    if not 2 <= low <= high <= 8:
        raise UsageError(f"countdown sizes must satisfy 2 <= low <= high <= 8, got {low}-{high}")
    if not 2 <= max_number <= MAX_TARGET:
        raise UsageError(f"countdown numbers are drawn from 1..max_number, with 2 <= max_number <= {MAX_TARGET}; "
                         f"got {max_number}")  # fmt: skip
    check_target_and_solution(target, solution)
    if target is not None:
        orders = one_target_problems(sizes, max_number, target, seed)
        if count > len(orders):
            raise UsageError(f"countdown with {low}-{high} numbers up to {max_number} and target {target} has "
                             f"{len(orders)} problems (every order of every multiset that makes it); {count} asked "
                             "(--countdown_problems)")  # fmt: skip
        return [_row(Countdown(numbers, target), *solve(list(numbers), target), seed, search, solution)
                for numbers in orders[:count]]  # fmt: skip
    exist = distinct_problems(sizes, max_number, at_least=count)
    if count > exist:
        raise UsageError(f"countdown with {low}-{high} numbers up to {max_number} has {exist} distinct problems; "
                         f"{count} asked (--countdown_problems)")  # fmt: skip
    # the default range keeps the key it always had, so the default problems never change
    key = f"countdown:{seed}:{low}-{high}" + ("" if max_number == MAX_NUMBER else f":max{max_number}")
    rng = random.Random(key)
    rows, seen = [], set()
    size = rng.randint(low, high)  # drawn per problem, kept until a problem of that size is found: even shares
    while len(rows) < count:
        numbers = [rng.randint(1, max_number) for _ in range(size)]
        solved = solve_randomly(numbers, rng)
        if solved is None:
            continue
        expression, problem_target, steps = solved
        key = (tuple(sorted(numbers)), problem_target)
        if not 1 <= problem_target <= MAX_TARGET or problem_target in numbers or key in seen:  # no one-number answer
            continue
        seen.add(key)
        size = rng.randint(low, high)
        rows.append(_row(Countdown(tuple(numbers), problem_target), expression, steps, seed, search, solution))
    return rows


def _row(problem: Countdown, expression: str, steps: list[_Step], seed: int, search: Search | None,
         solution: str) -> dict:  # fmt: skip
    assert problem.check(expression) == (True, "correct"), expression  # the generator and checker agree
    written = worked_solution(problem, expression, steps) if solution == "worked" else steps_solution(steps)
    row = {"question": problem.question, "solution": written, "answer": expression,
           "numbers": list(problem.numbers), "target": problem.target}  # fmt: skip
    if search is not None:  # its own stream of draws, so that the knobs never change which problems come
        numbers, target = list(problem.numbers), problem.target
        trace_rng = random.Random(f"search:{seed}:{numbers}:{target}:{search.draw_key}")
        row["reasoning_trace"] = search_trace(problem, steps, search, trace_rng)
    return row


def parse_spec(source: str) -> tuple[int, int] | None:
    """The sizes a dataset name asks for: countdown -> (3, 4), countdown:5 -> (5, 5), countdown:3-6 -> (3, 6); None
    when `source` is not a countdown name."""
    match = re.fullmatch(r"countdown(?::(\d+)(?:-(\d+))?)?", source)
    if match is None:
        return None
    if match.group(1) is None:
        return DEFAULT_SIZES
    low = int(match.group(1))
    return low, int(match.group(2) or low)
