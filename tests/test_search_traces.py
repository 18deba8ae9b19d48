"""Countdown search traces: every statement true, every abandoned move hopeless, the stream ending on the path of
the row's worked solution, and the paper's framing for rows that carry one."""

import re

import pytest

from rlt.configs import DataArguments
from rlt.data import frame, to_problems
from rlt.data.countdown import (
    Search,
    arithmetic,
    copies_solution_line,
    generate,
    reachable,
    solution_steps,
    walks_solution_path,
)

TRY = re.compile(r"Try (\d+) ([-+*/]) (\d+) = (\d+), left ([\d, ]+)\.$")
BACK = re.compile(r"Back to ([\d, ]+)\.$")
STATEMENT = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
EXACT = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(", ")]


def after(pool: list[int], a: int, b: int, value: int) -> list[int]:
    rest = list(pool)
    rest.remove(a)
    rest.remove(b)  # ValueError when a move uses a number the pool does not hold
    return [*rest, value]


def replay(row: dict, search: Search) -> list[tuple[int, str, int, int]]:
    """Walk a trace as a reader would, asserting every invariant; returns the moves of the path it ends on."""
    lines = row["reasoning_trace"].split("\n")
    target = row["target"]
    assert lines[0] == f"Make {target} from the numbers {', '.join(map(str, row['numbers']))}."
    assert row["question"].startswith(lines[0] + " ")  # the question's first sentence, word for word
    pools = {0: list(row["numbers"])}  # depth -> the pool a line at that depth works on
    path: dict[int, tuple] = {}  # depth -> the last move taken there
    backs_at: dict[tuple, int] = {}
    for line in lines[1:]:
        depth = (len(line) - len(line.lstrip(" "))) // 2
        body = line.strip()
        pool = pools[depth]
        if match := TRY.match(body):
            a, op, b, value = int(match[1]), match[2], int(match[3]), int(match[4])
            assert a >= b and EXACT[op](a, b) == value > 0, line  # exact, positive, larger operand first
            left = numbers(match[5])
            assert sorted(left) == sorted(after(pool, a, b, value)) and left[-1] == value, line
            pools[depth + 1], path[depth] = left, (a, op, b, value)
            for deeper in [d for d in pools if d > depth + 1]:
                del pools[deeper]
        elif match := BACK.match(body):
            assert numbers(match[1]) == pool, line
            abandoned = pools[depth + 1]
            assert not reachable(tuple(abandoned), target), f"{line}: {abandoned} can reach {target}"
            key = (depth, tuple(pool))
            backs_at[key] = backs_at.get(key, 0) + 1
            assert backs_at[key] <= search.dead_ends, line
        else:  # the last pair: its operations, then the verdict
            assert len(pool) == 2 and body.endswith((". No.", ". Yes!")), line
            statements = STATEMENT.findall(body)
            assert statements and len(statements) == body.count("="), line
            for a, op, b, value in statements:
                assert sorted((int(a), int(b))) == sorted(pool) and int(a) >= int(b), line
                assert EXACT[op](int(a), int(b)) == int(value) > 0, line
            hits = [int(v) == target for *_, v in statements]
            assert hits == ([False] * (len(hits) - 1) + [True] if body.endswith("Yes!") else [False] * len(hits))
            path[depth] = tuple(int(x) if x.isdigit() else x for x in statements[-1])
    assert lines[-1].endswith("Yes!")
    return [path[d] for d in sorted(path)]


@pytest.mark.parametrize("search", [Search(), Search(0, 1), Search(2, 2), Search(3, 3)])
@pytest.mark.parametrize("sizes", [(3, 3), (4, 4), (2, 5)])
def test_every_trace_is_true_and_ends_on_the_worked_solution_s_path(search, sizes):
    rows = generate(400, sizes, seed=7, search=search)
    backed_up = 0
    for row in rows:
        moves = replay(row, search)
        solution = row["solution"].split("\n")[1:-1]  # "a op b = v, left: ..." lines, then "So ... = target."
        assert [f"{a} {op} {b} = {v}" for a, op, b, v in moves] == [line.split(",")[0].rstrip(".") for line in solution]
        backed_up += "Back to" in row["reasoning_trace"]
    if search.dead_ends == 0:
        assert backed_up == 0
    else:
        assert backed_up > len(rows) // 4  # the search does back up, on a good share of problems


def test_a_dead_end_follows_at_most_tries_moves_before_backing_up():
    for tries in (1, 2, 3):
        for row in generate(200, (4, 5), seed=1, search=Search(2, tries)):
            lines = row["reasoning_trace"].split("\n")
            for i, line in enumerate(lines):
                if line.strip().startswith("Back to"):
                    depth = (len(line) - len(line.lstrip())) // 2
                    start = max(j for j in range(i) if lines[j].startswith("  " * depth + "Try"))
                    inner = [x for x in lines[start + 1 : i] if x.startswith("  " * (depth + 1) + "Try")]
                    assert len(inner) <= tries


def test_the_knobs_change_the_traces_not_the_problems():
    plain, searched = generate(300, seed=2, search=None), generate(300, seed=2, search=Search(3, 2))
    assert "reasoning_trace" not in plain[0]
    assert [{k: r[k] for k in plain[0]} for r in searched] == plain
    longer = generate(300, seed=2, search=Search(3, 2))
    shorter = generate(300, seed=2, search=Search(0, 1))
    assert sum(len(r["reasoning_trace"]) for r in longer) > 1.5 * sum(len(r["reasoning_trace"]) for r in shorter)


def test_countdown_rows_get_the_paper_s_framing_under_auto():
    train, held_out, _ = DataArguments(dataset="countdown:3", holdout=10, max_problems=5).load()
    for p in train + held_out:
        assert p.solution.startswith("Target ") and p.solution.endswith(f"= {p.countdown.target}.")  # shown whole
        assert p.reasoning_trace.startswith("Make ") and p.reasoning_trace.endswith("Yes!")  # the warm-up target
    (answer_framed,) = frame(train[:1], "answer")
    assert answer_framed.solution == f"The answer is {train[0].answer}."


def test_trace_knobs_and_problem_count_reach_the_dataset():
    args = DataArguments(dataset="countdown:3", countdown_problems=1500, search_dead_ends=0, holdout=100)
    train, held_out, _ = args.load()
    assert len(train) == 1400 and "Back to" not in "".join(p.reasoning_trace for p in train)
    default_train, default_held_out, _ = DataArguments(dataset="countdown:3", holdout=100).load()
    # the hold-out does not move with the list's length, and a longer list never trains on it
    assert [p.question for p in held_out] == [p.question for p in default_held_out]
    assert {p.question for p in default_train} < {p.question for p in train}
    assert not {p.question for p in train} & {p.question for p in default_held_out}
    plain, _, _ = DataArguments(dataset="countdown:3", search_traces=False, max_problems=3).load()
    assert all(p.reasoning_trace.startswith("Target ") and p.solution.startswith("The answer is") for p in plain)
    with pytest.raises(ValueError, match="--search_dead_ends"):
        DataArguments(dataset="countdown", search_dead_ends=-1)
    with pytest.raises(ValueError, match="--countdown_problems"):
        DataArguments(dataset="countdown", countdown_problems=0)


def test_a_trace_column_survives_a_countdown_file():
    row = generate(1, (3, 3), seed=4)[0]
    (problem,), _ = to_problems([row], "countdown")
    assert problem.reasoning_trace == row["reasoning_trace"]
    (bare,), _ = to_problems([{k: v for k, v in row.items() if k != "reasoning_trace"}], "countdown")
    assert bare.reasoning_trace is None and frame([bare])[0].solution == f"The answer is {row['answer']}."


def test_reading_explanations_gives_known_answers():
    row = generate(50, (3, 3), seed=5)[7]
    trace, solution = row["reasoning_trace"], row["solution"]
    # the generator's own trace: all arithmetic true, on the solution's path, no line of the solution copied
    true, stated = arithmetic(trace)
    assert true == stated > 0
    assert walks_solution_path(trace, solution) and not copies_solution_line(trace, solution)
    # the solution restated is a copy; it walks its own path too
    assert copies_solution_line("Look:\n" + solution, solution) and walks_solution_path(solution, solution)
    # one false statement of two; exact division; division by zero is no statement
    assert arithmetic("3 + 4 = 7, then 7 * 2 = 15.") == (1, 2)
    assert arithmetic("9 / 2 = 4. 8 / 2 = 4. 5 / 0 = 0.") == (1, 2)
    # a search that wanders off the path, or stops before its last step; numbers are whole: no match inside others
    steps = solution_steps(solution)
    assert len(steps) == 2 and all(len(step) == 4 for step in steps)
    assert not walks_solution_path("Try {} {} {} = {}.".format(*steps[0]), solution)
    assert not walks_solution_path("Try 1 + 1 = 2. No.", solution)
    assert walks_solution_path("25 - 3 = 22, 22 * 2 = 44", "T.\n25 - 3 = 22, left: 2, 22.\n22 * 2 = 44.\nSo.")
    assert not walks_solution_path("25 - 3 = 22, 222 * 2 = 444", "T.\n5 - 3 = 2, left: 2, 22.\n22 * 2 = 44.\nSo.")
    assert not walks_solution_path("The answer is 7.", "The answer is 7.")  # no operations: nothing walked
    assert arithmetic("-3 + 5 = 2 and 1.5 + 2 = 3.5") == (0, 0)


def test_restating_the_move_opens_each_last_pair_line_and_draws_nothing_else():
    plain = generate(200, (3, 4), seed=3)
    restated = generate(200, (3, 4), seed=3, search=Search(restate_move=True))
    opened = 0
    for p, r in zip(plain, restated, strict=True):
        before, after = p["reasoning_trace"].split("\n"), r["reasoning_trace"].split("\n")
        assert len(before) == len(after)
        for i, (line, new) in enumerate(zip(before, after, strict=True)):
            if line.lstrip().startswith(("Try", "Back", "Make")):
                assert new == line
                continue
            move = TRY.search(before[i - 1])  # a last pair's line follows the move that made the pair
            indent = line[: len(line) - len(line.lstrip())]
            assert move and new == f"{indent}After {move[1]} {move[2]} {move[3]} = {move[4]}: {line.lstrip()}"
            opened += 1
    assert opened > 300
