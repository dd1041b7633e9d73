"""Jinja2 templates of report.html and report.md (kept in code: no package data to ship).

Both render the same context; every table is an :class:`~servecmp.report.table.Table` whose
cell strings are computed once, so the HTML and the Markdown show identical numbers.
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup, escape

from servecmp.report.table import Table


def md_escape(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def md_table(t: Table) -> str:
    lines = [
        "| " + " | ".join(md_escape(h) for h in t.headers) + " |",
        "|" + "---|" * len(t.headers),
    ]
    for row in t.rows:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(lines)


HTML = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>servecmp report: {{ run.meta.experiment_name }} ({{ run.run_id }})</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1340px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; vertical-align: top; }
th { background: #f3f5f7; text-align: left; }
td { font-variant-numeric: tabular-nums; }
td:first-child { white-space: nowrap; }
td.unavail { background: #fde8e8; color: #8a1f1f; }
td.invalid { background: #fff3d6; color: #7a5200; }
td.na { color: #888; }
td.ns { background: #eef0f3; font-style: italic; }
td.win { background: #e6f4ea; font-weight: 600; }
caption { text-align: left; font-weight: 600; padding: 2px 0; }
details { margin: 8px 0; } summary { cursor: pointer; color: #333; }
.warning { background: #fff3d6; border: 1px solid #e0b252; padding: 8px 12px; margin: 8px 0; white-space: pre-wrap; }
.note { color: #555; font-size: 13px; }
.notrecorded { color: #8a1f1f; font-weight: 600; }
.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>servecmp report: {{ run.meta.experiment_name }}{% if run.experiment and run.experiment.configuration == 'tuned' %} — at best (tuned configurations){% else %} — at defaults{% endif %}</h1>
<p class="note">run <code>{{ run.run_id }}</code>, created {{ run.meta.created_at }}; built from stored results only by servecmp {{ servecmp_version }}. Provenance is at the end.</p>

{% for w in warnings %}<div class="warning" role="alert">⚠ {{ w }}</div>
{% endfor %}

<h2 id="summary">Summary</h2>
<p class="note">Per protocol, each server's headline numbers (a column each) and, for every pair of servers, the verdict (winner, {{ 'not significant' }} or no data). Differences carry their 95 % interval over interleaved repeats; how that is decided is under “How verdicts are decided”. The SLO used here: p99 ≤ {{ '%g' % summary_slo }} ms.</p>
{% if summary_missing %}<ul class="note" id="summary-missing">{% for line in summary_missing %}<li>{{ line }}</li>{% endfor %}</ul>
{% endif %}{% for proto, t in summary %}<h3>{{ proto | upper }}</h3>
{{ t | html_table(id="summary-" ~ proto) }}
{% endfor %}{% if summary_friction %}<h3>Friction (per server, any protocol)</h3>
{{ summary_friction | html_table(id="summary-friction") }}
{% endif %}
{% if tables.notes.rows %}<h3 id="notes">Notes</h3>
{{ tables.notes | html_table }}{% endif %}

<h2 id="key-plots">Key plots</h2>
{% for p in key_plots %}<h3>{{ p.title }}</h3>
<p class="note">{{ p.note }}</p>
{% if p.id in plot_divs %}{{ plot_divs[p.id] | safe }}{% else %}<p class="notrecorded" id="{{ p.id }}-missing">{{ p.note }}</p>{% endif %}
{% endfor %}

<h2 id="details">Details</h2>
<h3 id="differences">Differences between targets (paired over interleaved repeats)</h3>
<p class="note">b vs a: the relative difference with its 95 % interval over the rounds both were measured in; “noise” is the round-to-round spread of the pair's log-ratio.</p>
<div class="scroll">{{ tables.differences | html_table }}</div>

<h3 id="recommendations">Recommendations by SLO</h3>
<p class="note">{{ slo_rule }}</p>
{{ tables.recommendations | html_table }}

<h3 id="head-to-head">Servers head to head, every pair (same protocol, common encoding)</h3>
<p class="note">b vs a for every pair of servers, with the noise rule (“How verdicts are decided”).</p>
{{ tables.head_to_head | html_table }}

<h3 id="side-by-side">Side by side</h3>
<p class="note">{{ representative_rule }}</p>
{% for label, t in side_by_side %}<h4>{{ label }}</h4>
<div class="scroll">{{ t | html_table }}</div>
{% endfor %}

<h3 id="overhead">Serving overhead vs in-process baselines</h3>
{{ tables.overhead | html_table }}

{% if "model_card" in tables %}<h3 id="model-card">Model card</h3>
<p class="note">What was served and what it costs to send; every artifact was checked against the PyTorch reference before anything was measured; serving tax = server p50 minus in-process p50 at concurrency 1.</p>
{{ tables.model_card | html_table }}
<h4>Artifacts per server</h4>
{{ tables.model_artifacts | html_table }}
<h4>Parity (before measuring)</h4>
{{ tables.model_parity | html_table }}
<h4>Serving tax at concurrency 1</h4>
{{ tables.model_tax | html_table }}
{% endif %}
<h3 id="plots">More plots</h3>
{% for p in other_plots %}<h4>{{ p.title }}</h4>
<p class="note">{{ p.note }}</p>
{% if p.id in plot_divs %}{{ plot_divs[p.id] | safe }}{% else %}<p class="notrecorded" id="{{ p.id }}-missing">{{ p.note }}</p>{% endif %}
{% endfor %}

<h3 id="resources">Server resources (Prometheus series)</h3>
{% if resource_note %}<p class="{{ 'notrecorded' if not tables.resources.rows else 'note' }}">{{ resource_note }}</p>{% endif %}
{% if tables.resources.rows %}{{ tables.resources | html_table }}{% endif %}

<h3 id="friction">Operational friction</h3>
{% if friction %}{% for group, t in friction.items() %}<h4>{{ group }}</h4>
{{ t | html_table }}
{% endfor %}{% else %}<p class="notrecorded">not recorded (no friction.jsonl)</p>{% endif %}

{% for sec in sections %}<h3 id="{{ sec.id }}">{{ sec.title }}</h3>
{% if sec.note %}<p class="note">{{ sec.note }}</p>{% endif %}
{% if sec.sentences %}<ul id="{{ sec.id }}-sentences">{% for s in sec.sentences %}<li>{{ s }}</li>{% endfor %}</ul>{% endif %}
{% for p in sec.plots %}{% if p.title != sec.title %}<h4>{{ p.title }}</h4>{% endif %}{% if p.id in plot_divs %}<p class="note">{{ p.note }}</p>{{ plot_divs[p.id] | safe }}{% else %}<p class="notrecorded" id="{{ p.id }}-missing">{{ p.note }}</p>{% endif %}
{% endfor %}{% for caption, t in sec.tables %}<h4>{{ caption }}</h4>
<div class="scroll">{{ t | html_table }}</div>
{% endfor %}{% for f in sec.folded %}<details{% if f.open %} open{% endif %}><summary>{{ f.summary }}</summary>
<div class="scroll">{{ f.table | html_table }}</div></details>
{% endfor %}{% endfor %}

{% if compare %}<h2 id="compare">Compared with run {{ compare.run_id }}</h2>
<p class="note">other run: {{ compare.dir }} (experiment {{ compare.meta.experiment_name }}, digest {{ compare.meta.experiment_digest }})</p>
{% for w in compare_warnings %}<div class="warning" role="alert">⚠ {{ w }}</div>
{% endfor %}
{{ tables.compare | html_table }}
{% endif %}

<h2 id="noise">How verdicts are decided</h2>
<p>{{ noise_rule }}</p>
<p id="friction-rule">{{ friction_rule }}</p>

<h2 id="all-steps">All steps</h2>
<div class="scroll">{{ tables.all_steps | html_table }}</div>

<h2 id="provenance">Provenance</h2>
<details><summary>versions, machine, CPU placement, load settings, targets</summary>
{{ tables.provenance | html_table }}
<h3>Targets</h3>
{{ tables.targets | html_table }}
</details>
</body>
</html>
"""

MD = r"""# servecmp report: {{ run.meta.experiment_name }}{% if run.experiment and run.experiment.configuration == 'tuned' %} — at best (tuned configurations){% else %} — at defaults{% endif %}

run `{{ run.run_id }}`, created {{ run.meta.created_at }}; built from stored results only by servecmp {{ servecmp_version }}. Provenance is at the end.
{% for w in warnings %}
> **WARNING:** {{ w | md_escape }}
{% endfor %}

## Summary

Per protocol, each server's headline numbers and, for every pair of servers, the verdict. The SLO used here: p99 ≤ {{ '%g' % summary_slo }} ms.
{% if summary_missing %}
{% for line in summary_missing %}- {{ line | md_escape }}
{% endfor %}{% endif %}{% for proto, t in summary %}
### {{ proto | upper }}

{{ t | md_table }}
{% endfor %}{% if summary_friction %}
### Friction (per server, any protocol)

{{ summary_friction | md_table }}
{% endif %}{% if tables.notes.rows %}
### Notes

{{ tables.notes | md_table }}
{% endif %}

## Details

### Differences between targets (paired over interleaved repeats)

b vs a: the relative difference with its 95 % interval over the rounds both were measured in; "noise" is the round-to-round spread of the pair's log-ratio.

{{ tables.differences | md_table }}

### Recommendations

{{ slo_rule }}

{{ tables.recommendations | md_table }}

### Servers head to head, every pair (same protocol, common encoding)

b vs a for every pair of servers, with the noise rule ("How verdicts are decided").

{{ tables.head_to_head | md_table }}

### Side by side

{{ representative_rule }}
{% for label, t in side_by_side %}
#### {{ label }}

{{ t | md_table }}
{% endfor %}

### Serving overhead vs in-process baselines

{{ tables.overhead | md_table }}
{% if "model_card" in tables %}
### Model card

What was served and what it costs to send; every artifact was checked against the PyTorch reference before anything was measured; serving tax = server p50 minus in-process p50 at concurrency 1.

{{ tables.model_card | md_table }}

#### Artifacts per server

{{ tables.model_artifacts | md_table }}

#### Parity (before measuring)

{{ tables.model_parity | md_table }}

{{ tables.model_parity.caption }}

#### Serving tax at concurrency 1

{{ tables.model_tax | md_table }}
{% endif %}
### Server resources (Prometheus series)

{% if resource_note %}{{ resource_note }}
{% endif %}{% if tables.resources.rows %}
{{ tables.resources | md_table }}
{% endif %}

### Operational friction
{% if friction %}{% for group, t in friction.items() %}
#### {{ group }}

{{ t | md_table }}
{% endfor %}{% else %}
not recorded (no friction.jsonl)
{% endif %}
{% for sec in sections %}
### {{ sec.title }}

{% if sec.note %}{{ sec.note | md_escape }}
{% endif %}{% for s in sec.sentences %}
- {{ s | md_escape }}{% endfor %}
{% for p in sec.plots %}{% if p.id not in plot_divs %}
{{ p.note | md_escape }}
{% endif %}{% endfor %}{% for caption, t in sec.tables %}
#### {{ caption }}

{{ t | md_table }}
{% endfor %}{% for f in sec.folded if f.open %}
#### {{ f.summary }}

{{ f.table | md_table }}
{% endfor %}{% endfor %}
{% if compare %}
## Compared with run {{ compare.run_id }}

other run: `{{ compare.dir }}` (experiment {{ compare.meta.experiment_name }}, digest {{ compare.meta.experiment_digest }})
{% for w in compare_warnings %}
> **WARNING:** {{ w | md_escape }}
{% endfor %}

{{ tables.compare | md_table }}
{% endif %}

## How verdicts are decided

{{ noise_rule }}

{{ friction_rule }}

## All steps

{{ tables.all_steps | md_table }}

## Provenance

{{ tables.provenance | md_table }}

### Targets

{{ tables.targets | md_table }}

Plots are in report.html.
"""


def html_table(t: Table, id: str | None = None) -> Markup:
    esc = escape
    out = [f'<table id="{esc(id)}">' if id else "<table>"]
    if t.caption:
        out.append(f"<caption>{esc(t.caption)}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in t.headers) + "</tr></thead><tbody>"
    )
    for i, row in enumerate(t.rows):
        cls = t.classes[i] if i < len(t.classes) else [""] * len(row)
        tds = []
        for j, c in enumerate(row):
            cl = cls[j] if j < len(cls) else ""
            attr = f' class="{cl}"' if cl else ""
            tds.append(f"<td{attr}>{esc(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"report.html": HTML, "report.md": MD}),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["md_table"] = md_table
    env.filters["md_escape"] = md_escape
    env.filters["html_table"] = html_table
    return env


def render_html(ctx: dict[str, Any]) -> str:
    return _env(True).get_template("report.html").render(**ctx)


def render_md(ctx: dict[str, Any]) -> str:
    return _env(False).get_template("report.md").render(**ctx)
