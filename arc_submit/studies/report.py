"""A run as one self-contained HTML page (pictures inlined), and task pictures as PNG files.

    python -m arc_submit report runs/local-submission          # -> runs/local-submission/report.html
    python -m arc_submit render --challenges c.json --submission s.json --solutions sol.json --out pictures/
"""

from __future__ import annotations

import base64
import html
import tomllib
from pathlib import Path

from arc_submit.data.metrics import metric_names
from arc_submit.data.tasks import Task, load_tasks
from arc_submit.errors import UserError
from arc_submit.files import read_json
from arc_submit.run.record import TaskRecord
from arc_submit.run.rundir import RunDir, outcome
from arc_submit.studies.render import png_bytes, task_image, views_for

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
section { border-top: 1px solid #ddd; padding: 12px 0; }
.row { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
.right { color: #1a7f37; font-weight: bold; } .wrong { color: #c62828; } .muted { color: #777; }
"""
STAGES = ("ttft_s", "load_s", "sample_s", "total_s")


def _escape(value) -> str:
    return html.escape(str(value))


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _escape(value)


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_number(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def png_data_uri(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def loss_curve_svg(losses: list[float], eval_losses: list[list], width: int = 320, height: int = 120) -> str:
    """Training loss as a line and eval losses as dots, inline SVG."""
    if not losses:
        return ""
    values = losses + [loss for _, loss in eval_losses]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    pad = 24

    def point(step: float, loss: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (step - 1) / max(1, len(losses) - 1)
        return x, pad / 2 + (height - pad) * (high - loss) / span

    line = " ".join("{:.1f},{:.1f}".format(*point(i + 1, loss)) for i, loss in enumerate(losses))
    dots = "".join('<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="#c62828"/>'.format(*point(s, v)) for s, v in eval_losses)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<rect width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>'
            f'<polyline points="{line}" fill="none" stroke="#0074d9" stroke-width="1.5"/>{dots}'
            f'<text x="4" y="12" font-size="10">{high:.3f}</text>'
            f'<text x="4" y="{height - 4}" font-size="10">{low:.3f}</text>'
            f'<text x="{width - 70}" y="{height - 4}" font-size="10">step {len(losses)}</text></svg>')


def task_section(task: Task, record: TaskRecord | None, per_task: dict) -> str:
    """One task: its picture (train pairs, test inputs, attempts framed right/wrong, truth), and what
    the run did: mode, score, loss curve, votes, timings, reasons."""
    if record is None:
        image = task_image(task)
        return f'<section id="{_escape(task.task_id)}"><h3>{_escape(task.task_id)} <span class="muted">not run</span>' \
               f'</h3><img alt="task {_escape(task.task_id)}" src="{png_data_uri(image)}"></section>'
    entries = [{"attempt_1": a[0], "attempt_2": a[1]} for a in record.attempts]
    image = task_image(task, views_for(task, entries))
    score = per_task.get("score")
    verdict = "" if score is None else ('<span class="right">solved</span>' if score == 1 else
                                         f'<span class="wrong">score {score:.2f}</span>')
    ttft = record.ttft
    votes = "; ".join(", ".join(f"{v.count}x{len(v.grid)}x{len(v.grid[0])} ({v.score:.3g})" for v in output[:5])
                      or "none" for output in record.votes)
    details = table(["stage", "seconds"], [[k, record.timings[k]] for k in STAGES if k in record.timings])
    reasons = "".join(f"<li>{_escape(r)}</li>" for r in record.reasons)
    return (f'<section id="{_escape(task.task_id)}"><h3>{_escape(task.task_id)} '
            f'<span class="muted">{_escape(record.mode)}</span> {verdict}</h3>'
            f'<div class="row"><img alt="task {_escape(task.task_id)}" src="{png_data_uri(image)}">'
            f'<div>{loss_curve_svg(ttft.losses if ttft else [], ttft.eval_losses if ttft else [])}'
            f'<p>votes (count x shape (score under the rule)): {_escape(votes)}</p>{details}'
            f'{"<ul>" + reasons + "</ul>" if reasons else ""}</div></div></section>')


def build_report(run_dir: Path) -> str:
    """The HTML page for a run dir written by the pipeline."""
    for name in ("config.toml", "challenges.json"):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir}: not a run dir of arc-submit ({name} is missing)")
    solutions = run_dir / "solutions.json"
    tasks = load_tasks(run_dir / "challenges.json", solutions if solutions.is_file() else None)
    records = RunDir(run_dir).records()
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    config = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    parts = [f"<h1>arc-submit run {_escape(run_dir.name)}</h1>", _config_paragraph(config)]
    if metrics:
        names = ["score", *metric_names()]
        parts += ["<h2>Metrics</h2>", table(names, [[metrics["summary"][n] for n in names]])]
    parts += ["<h2>Time</h2>", _timing_table(records)]
    legend = ('<p class="muted">Each picture: a row per train pair (input, output), then a row per test input '
              '(input, attempt 1, attempt 2, truth); an attempt is framed green when right, red when wrong, and a '
              'grey square is no answer. The curve is the TTFT loss per step (red dots: eval loss).</p>')
    parts += ["<h2>Tasks</h2>", legend] + [task_section(t, records.get(t.task_id), metrics.get("per_task", {}).get(t.task_id, {}))
                                   for t in tasks]
    body = "\n".join(parts)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>arc-submit: "
            f"{_escape(run_dir.name)}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _config_paragraph(config: dict) -> str:
    ttft, sampling = config.get("ttft", {}), config.get("sampling", {})
    facts = [
        ("model", config.get("model", {}).get("name")), ("encoder", config.get("prompt", {}).get("encoder")),
        ("TTFT steps", ttft.get("steps")), ("schedule", ttft.get("schedule")), ("lr", ttft.get("learning_rate")),
        ("augmentations", sampling.get("augmentations")), ("temperature", sampling.get("temperature")),
        ("seed", config.get("run", {}).get("seed")),
    ]
    return "<p>" + " &middot; ".join(f"{_escape(k)} <b>{_escape(v)}</b>" for k, v in facts) + "</p>"


def _timing_table(records: dict[str, TaskRecord]) -> str:
    modes = outcome(list(records.values()))["modes"]
    rows = []
    for stage in STAGES:
        values = [r.timings[stage] for r in records.values() if stage in r.timings]
        if values:
            rows.append([stage, sum(values), sum(values) / len(values), len(values)])
    mode_text = ", ".join(f"{count} {mode}" for mode, count in sorted(modes.items()))
    return table(["stage", "total s", "mean s", "tasks"], rows) + f"<p>{len(records)} tasks: {_escape(mode_text)}</p>"
