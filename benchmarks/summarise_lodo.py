"""Mean ± spread over seeds of leave-one-domain-out runs (``geodefect evaluate --leave-one-domain-out``).

Reads ``ROOT/<config>_s<seed>/lodo.json`` and prints a Markdown table: per configuration, macro F1
per held-out domain and averaged over domains, as mean ± standard deviation over the seeds (n
seeds in the last column), plus the per-seed averages.

Usage::

    python benchmarks/summarise_lodo.py /work/runs/cls/lodo
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def load(root: Path) -> dict[str, list[dict]]:
    """``{config: [lodo.json of each seed]}`` sorted by seed."""
    runs: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for path in sorted(root.glob("*_s*/lodo.json")):
        m = re.fullmatch(r"(.+)_s(\d+)", path.parent.name)
        if m:
            runs[m.group(1)].append((int(m.group(2)), json.loads(path.read_text())))
    order = ["ce", "ce_ct", "ce_dg", "ce_ct_dg"]
    names = sorted(runs, key=lambda k: (order.index(k) if k in order else len(order), k))
    return {k: [d for _, d in sorted(runs[k], key=lambda t: t[0])] for k in names}


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def table(runs: dict[str, list[dict]], key: str = "f1") -> str:
    domains = [r["domain"] for r in next(iter(runs.values()))[0]["rows"]]
    lines = [f"| config | {' | '.join(domains)} | average | per seed | seeds |",
             "|---|" + "---:|" * (len(domains) + 3)]
    for name, seeds in runs.items():
        per_domain = [[next(r[key] for r in s["rows"] if r["domain"] == d) for s in seeds] for d in domains]
        avg = [s["average"][key] for s in seeds]
        lines.append(f"| {name.replace('_', ',')} | {' | '.join(fmt(v) for v in per_domain)} | **{fmt(avg)}** | "
                     f"{', '.join(f'{a:.3f}' for a in avg)} | {len(seeds)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1])
    key = sys.argv[2] if len(sys.argv) > 2 else "f1"
    print(table(load(root), key))
