"""Training curves from a run's log history (`trainer_state.json`, written by every checkpoint and at the end)."""

from __future__ import annotations

import json
from pathlib import Path

from rlt.errors import UsageError

#: (file name, title, metric keys as TRL / rlt log them)
PANELS = [
    ("reward.png", "RLT reward", ["rlt/reward"]),
    ("solution_logprob.png", "student solution log-prob", ["rlt/solution_logprob_mean", "rlt/solution_logprob_min"]),
    ("explanation_kl.png", "teacher-student KL on the explanation", ["rlt/kl_mean", "rlt/kl_max"]),
    ("match_rate.png", "closing tag found", ["rlt/match_rate"]),
    ("correctness.png", "answer correct (student RL)", ["rewards/correctness/mean"]),
    ("format.png", "student format followed (student RL)", ["rewards/format/mean"]),
    ("kl_to_reference.png", "KL to the reference policy", ["kl"]),
    ("completion_length.png", "completion length (tokens)", ["completions/mean_length"]),
    ("loss.png", "training loss", ["loss"]),
]


def log_history(run_dir: str | Path) -> list[dict]:
    """The newest log history of a run: output_dir/trainer_state.json, else the latest checkpoint's."""
    run_dir = Path(run_dir)
    candidates = [
        run_dir / "trainer_state.json",
        *sorted(run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))[::-1],
    ]
    for path in candidates:
        if path.exists():
            return json.loads(path.read_text())["log_history"]
    raise FileNotFoundError(f"{run_dir}: no trainer_state.json (is it a training output directory?)")


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(entry["step"], entry[key]) for entry in history if key in entry and "step" in entry]
    return [s for s, _ in points], [v for _, v in points]


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """One PNG per panel that has data; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = log_history(run_dir)
    out_dir = Path(out_dir or Path(run_dir) / "plots")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, title, keys in PANELS:
        curves = {key: series(history, key) for key in keys}
        if not any(steps for steps, _ in curves.values()):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, (steps, values) in curves.items():
            if steps:
                ax.plot(steps, values, marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=100)
        plt.close(fig)
        written.append(out_dir / filename)
    if not written:
        raise UsageError(f"{run_dir}: the log history has none of the plotted metrics")
    return written
