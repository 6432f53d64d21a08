"""Server-rendered SVG: bar charts of trends and a workflow's DAG.

Plain strings built with escaped text, so pages need no JavaScript to show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

STATUS_FILL = {
    "completed": "#2e9d4f",
    "failed": "#d64545",
    "cancelled": "#c9a227",
    "running": "#2f7fd1",
    "pending": "#8a94a6",
    "blocked": "#b6bcc8",
    "scheduled": "#9c7fd1",
    "waiting": "#5fb3c8",
    "awaiting_approval": "#e08a2e",
}


def bar_chart(
    buckets: Sequence[dict[str, Any]], *, width: int = 480, height: int = 90, title: str = ""
) -> str:
    """Jobs per bucket as grey bars with the failed part red on top of them."""
    if not buckets:
        return f'<svg class="chart" width="{width}" height="{height}" role="img"></svg>'
    top = max(max(int(b["jobs"]) for b in buckets), 1)
    step = width / len(buckets)
    bar = max(step - 2, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 14}" width="{width}" '
        f'height="{height + 14}" role="img" aria-label="{escape(title)}">'
    ]
    for index, bucket in enumerate(buckets):
        jobs, failed = int(bucket["jobs"]), int(bucket["failed"])
        x = index * step
        tall = jobs / top * height
        bad = failed / top * height
        label = f"{bucket['bucket']}: {jobs} jobs, {failed} failed"
        parts.append(f"<g><title>{escape(label)}</title>")
        parts.append(
            f'<rect x="{x:.1f}" y="{height - tall:.1f}" width="{bar:.1f}" '
            f'height="{tall:.1f}" fill="#8a94a6"/>'
        )
        if failed:
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bad:.1f}" width="{bar:.1f}" '
                f'height="{bad:.1f}" fill="#d64545"/>'
            )
        parts.append("</g>")
    first, last = buckets[0]["bucket"], buckets[-1]["bucket"]
    parts.append(f'<text x="0" y="{height + 12}" class="axis">{escape(first)}</text>')
    parts.append(
        f'<text x="{width}" y="{height + 12}" text-anchor="end" class="axis">{escape(last)}</text>'
    )
    parts.append(f'<text x="{width}" y="10" text-anchor="end" class="axis">max {top}</text>')
    parts.append("</svg>")
    return "".join(parts)


NODE_W, NODE_H, GAP_X, GAP_Y = 150, 40, 40, 30


def layers(nodes: Sequence[str], edges: Sequence[Sequence[str]]) -> dict[str, int]:
    """Each node's layer: the longest path to it from a node without parents.

    Dependencies form no cycle, but a cut-off graph is still handled: a node left
    over after the walk keeps layer 0.
    """
    parents: dict[str, list[str]] = {node: [] for node in nodes}
    children: dict[str, list[str]] = {node: [] for node in nodes}
    for parent, child in edges:
        parents[child].append(parent)
        children[parent].append(child)
    layer = dict.fromkeys(nodes, 0)
    waiting = {node: len(parents[node]) for node in nodes}
    ready = [node for node in nodes if not waiting[node]]
    while ready:
        node = ready.pop()
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    return layer


def dag(graph: dict[str, Any], focus: str, link: str = "/jobs/{id}") -> str:
    """The workflow as SVG: a row per layer, nodes coloured by status, edges as curves."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    layer = layers(list(nodes), graph["edges"])
    rows: dict[int, list[str]] = {}
    for node_id in sorted(nodes, key=lambda n: (nodes[n]["created_at"] or "", n)):
        rows.setdefault(layer[node_id], []).append(node_id)
    widest = max((len(row) for row in rows.values()), default=1)
    width = widest * (NODE_W + GAP_X) + GAP_X
    height = len(rows) * (NODE_H + GAP_Y) + GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for depth, row in rows.items():
        offset = (width - len(row) * (NODE_W + GAP_X) + GAP_X) / 2
        for index, node_id in enumerate(row):
            where[node_id] = (offset + index * (NODE_W + GAP_X), GAP_Y + depth * (NODE_H + GAP_Y))
    parts = [
        f'<svg class="dag" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="workflow graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker>'
        "</defs>",
    ]
    for parent, child in graph["edges"]:
        (px, py), (cx, cy) = where[parent], where[child]
        x1, y1, x2, y2 = px + NODE_W / 2, py + NODE_H, cx + NODE_W / 2, cy
        middle = (y1 + y2) / 2
        parts.append(
            f'<path class="edge" data-from="{escape(parent)}" data-to="{escape(child)}" '
            f'd="M{x1:.1f},{y1:.1f} C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} '
            f'{x2:.1f},{y2:.1f}" fill="none" stroke="#666" marker-end="url(#arrow)"/>'
        )
    for node_id, node in nodes.items():
        x, y = where[node_id]
        fill = STATUS_FILL.get(node["status"], "#8a94a6")
        stroke = ' stroke="#111" stroke-width="3"' if node_id == focus else ""
        href = escape(link.format(id=node_id))
        parts.append(
            f'<a href="{href}" class="node" data-id="{escape(node_id)}" '
            f'data-status="{escape(node["status"])}">'
            f"<title>{escape(node_id)} {escape(node['type'])} {escape(node['status'])}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{fill}"{stroke}/>'
            f'<text x="{x + 8:.1f}" y="{y + 16:.1f}" class="node-type">'
            f"{escape(node['type'][:18])}</text>"
            f'<text x="{x + 8:.1f}" y="{y + 32:.1f}" class="node-id">'
            f"{escape(node_id[-16:])} · {escape(node['status'][:10])}</text></a>"
        )
    parts.append("</svg>")
    return "".join(parts)
