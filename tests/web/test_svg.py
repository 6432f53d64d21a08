"""The server-side drawings: a DAG's layers and a chart's bars."""

from __future__ import annotations

from athenad.web.svg import bar_chart, dag, layers


def test_layers_are_the_longest_path_from_a_root():
    edges = [["a", "b"], ["b", "c"], ["a", "c"], ["x", "c"]]
    assert layers(["a", "b", "c", "x"], edges) == {"a": 0, "b": 1, "c": 2, "x": 0}


def test_a_cut_off_graph_still_lays_out():
    # A node whose parent was cut off (beyond the node cap) is simply a root.
    assert layers(["b", "c"], [["b", "c"]]) == {"b": 0, "c": 1}


def test_dag_escapes_text_and_marks_the_focus():
    graph = {
        "nodes": [
            {"id": "j1", "type": "<b>echo</b>", "status": "completed", "created_at": "1"},
            {"id": "j2", "type": "echo", "status": "failed", "created_at": "2"},
        ],
        "edges": [["j1", "j2"]],
    }
    drawn = dag(graph, "j2")
    assert "<b>echo" not in drawn and "&lt;b&gt;echo" in drawn
    assert drawn.count('class="node"') == 2 and drawn.count('class="edge"') == 1
    assert 'stroke="#111"' in drawn  # the job the page is about


def test_bar_chart_draws_failures_over_jobs():
    drawn = bar_chart(
        [{"bucket": "10:00", "jobs": 4, "failed": 1}, {"bucket": "11:00", "jobs": 0, "failed": 0}]
    )
    assert drawn.count("<rect") == 3 and "max 4" in drawn
    assert bar_chart([]).startswith("<svg")
