"""bench.profile's reading of py-spy's collapsed stacks: counts, percentages and layers."""

from __future__ import annotations

import pytest
from bench.profile import (
    CATEGORIES,
    NO_FRAME,
    OTHER,
    WAITS,
    frame_category,
    function_of,
    layer_of,
    parse_collapsed,
    render_summary,
    summarize,
)

RUN = "Thread.run (threading.py:982)"
HANDLE = "ThreadWorker.handle (gunicorn/workers/gthread.py:{line})"
RECORD = "record_events (audit/entrypoints/http/events.py:{line})"
GROUP = "GroupCommit.__call__ (audit/application/recording.py:{line})"

# 100 samples in all, so every count is its percentage.
COLLAPSED = "\n".join(
    [
        ";".join(
            [
                RUN,
                HANDLE.format(line=542),
                RECORD.format(line=83),
                GROUP.format(line=222),
                "Condition.wait (threading.py:327)",
            ]
        )
        + " 40",
        ";".join(
            [
                RUN,
                HANDLE.format(line=542),
                RECORD.format(line=83),
                GROUP.format(line=230),
                "DefaultDialect.do_commit (sqlalchemy/engine/default.py:954)",
            ]
        )
        + " 30",
        # A stdlib frame that no layer names counts to its caller, here audit.domain.
        ";".join(
            [
                RUN,
                HANDLE.format(line=542),
                RECORD.format(line=90),
                "to_micros (audit/domain/time.py:12)",
                "datetime.isoformat (datetime.py:100)",
            ]
        )
        + " 20",
        "<module> (audit/__main__.py:3);EpollSelector.select (selectors.py:468) 5",
        HANDLE.format(line=550) + " 3",
        "",
        " 2",  # py-spy's line for samples of a thread with no Python frame
    ]
)


def test_parse_collapsed_reads_frames_outermost_first_and_counts() -> None:
    stacks = parse_collapsed(COLLAPSED)

    assert len(stacks) == 6
    assert stacks[0][0][0] == RUN
    assert stacks[0][0][-1] == "Condition.wait (threading.py:327)"
    assert [count for _, count in stacks] == [40, 30, 20, 5, 3, 2]
    assert stacks[-1] == ((), 2)


def test_parse_collapsed_refuses_a_line_without_a_count() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_collapsed("a (x.py:1) 3\na (x.py:1);b (y.py:2)\n")


def test_function_of_drops_the_line_number_only() -> None:
    assert function_of("Condition.wait (threading.py:327)") == "Condition.wait (threading.py)"
    assert function_of("f (path with (parens)/m.py:12)") == "f (path with (parens)/m.py)"
    assert function_of("already (m.py)") == "already (m.py)"


@pytest.mark.parametrize(
    ("frame", "category"),
    [
        ("Condition.wait (threading.py:327)", WAITS),
        ("Condition.notify_all (threading.py:430)", WAITS),
        ("Thread._bootstrap (threading.py:1002)", None),  # outer frames decide nothing
        ("SimpleQueue.get (queue.py:1)", WAITS),
        ("WriterQueue.acquire (audit/adapters/sql/engine.py:150)", WAITS),
        ("DefaultDialect.do_commit (sqlalchemy/engine/default.py:954)", "sqlite3/psycopg driver"),
        ("DefaultDialect.do_execute (sqlalchemy/engine/default.py:1192)", "sqlite3/psycopg driver"),
        (
            "CursorFetchStrategy.fetchall (sqlalchemy/engine/cursor.py:1315)",
            "sqlite3/psycopg driver",
        ),
        (
            "SQLiteFix99953Cursor.execute (sqlalchemy/dialects/sqlite/pysqlite.py:900)",
            "sqlite3/psycopg driver",
        ),
        ("Cursor.execute (psycopg/cursor.py:97)", "sqlite3/psycopg driver"),
        ("Connection._execute_context (sqlalchemy/engine/base.py:1800)", "sqlalchemy"),
        ("RootTransaction._do_commit (sqlalchemy/engine/base.py:2600)", "sqlalchemy"),
        ("HTTPAuth.authenticate (flask_httpauth.py:100)", "flask_httpauth"),
        ("Flask.wsgi_app (flask/app.py:1511)", "flask/werkzeug"),
        ("Request.get_data (werkzeug/wrappers/request.py:1)", "flask/werkzeug"),
        ("ThreadWorker.handle (gunicorn/workers/gthread.py:542)", "gunicorn"),
        ("to_micros (audit/domain/time.py:12)", "audit.domain"),
        ("RecordEvents._place (audit/application/recording.py:1)", "audit.application"),
        ("SqlEventRepository.add (audit/adapters/sql/repositories.py:1)", "audit.adapters"),
        ("json_bytes (audit/entrypoints/formats.py:33)", "audit.entrypoints"),
        ("build_container (audit/container.py:1)", "audit (container, verify)"),
        ("canonicalize (rfc8785/_impl.py:1)", "json (orjson/rfc8785)"),
        ("JSONEncoder.encode (json/encoder.py:200)", "json (orjson/rfc8785)"),
        ("Counter.inc (prometheus_client/metrics.py:1)", "prometheus"),
        ("EpollSelector.select (selectors.py:468)", "socket/selectors (network I/O)"),
        ("datetime.isoformat (datetime.py:100)", None),
        (
            "_get_sync_patched.<locals>._patched (dependency_injector/wiring.py:1)",
            "dependency_injector",
        ),
        ("asdict (attr/_funcs.py:1)", None),
    ],
)
def test_frame_category(frame: str, category: str | None) -> None:
    assert frame_category(frame) == category


def test_layer_is_the_innermost_named_frame_else_other() -> None:
    inner_stdlib = (RUN, "to_micros (audit/domain/time.py:12)", "isoformat (datetime.py:1)")
    assert layer_of(inner_stdlib) == "audit.domain"
    assert layer_of(("f (site.py:1)", "g (abc.py:2)")) == OTHER
    assert layer_of(()) == OTHER


def test_summarize_counts_self_inclusive_and_layers() -> None:
    summary = summarize(parse_collapsed(COLLAPSED))

    assert summary.total == 100
    assert summary.layers == {
        WAITS: 40,
        "sqlite3/psycopg driver": 30,
        "audit.domain": 20,
        "socket/selectors (network I/O)": 5,
        "gunicorn": 3,
        OTHER: 2,
    }
    assert sum(summary.layers.values()) == summary.total
    assert summary.self_samples == {
        "Condition.wait (threading.py)": 40,
        "DefaultDialect.do_commit (sqlalchemy/engine/default.py)": 30,
        "datetime.isoformat (datetime.py)": 20,
        "EpollSelector.select (selectors.py)": 5,
        "ThreadWorker.handle (gunicorn/workers/gthread.py)": 3,
        NO_FRAME: 2,
    }
    # Inclusive: every stack that holds the function, whatever the line: 40 + 30 + 20 + 3.
    assert summary.inclusive["ThreadWorker.handle (gunicorn/workers/gthread.py)"] == 93
    assert summary.inclusive["record_events (audit/entrypoints/http/events.py)"] == 90
    assert summary.inclusive["GroupCommit.__call__ (audit/application/recording.py)"] == 70
    assert summary.inclusive["Thread.run (threading.py)"] == 90


def test_a_recursive_function_counts_once_per_stack() -> None:
    summary = summarize(parse_collapsed("f (m.py:1);f (m.py:2);f (m.py:1) 3\ng (m.py:5) 1"))

    assert summary.inclusive == {"f (m.py)": 3, "g (m.py)": 1}
    assert summary.self_samples == {"f (m.py)": 3, "g (m.py)": 1}


def test_render_summary_gives_exact_percentages_adding_to_100() -> None:
    lines = render_summary(summarize(parse_collapsed(COLLAPSED)), top=2)

    layer_rows = lines[lines.index("|---|---:|---:|") + 1 :][: len(CATEGORIES) + 1]
    assert layer_rows[:3] == [
        f"| {WAITS} | 40 | 40.0 |",
        "| sqlite3/psycopg driver | 30 | 30.0 |",
        "| audit.domain | 20 | 20.0 |",
    ]
    assert f"| {OTHER} | 2 | 2.0 |" in layer_rows
    assert "| prometheus | 0 | 0.0 |" in layer_rows  # every layer is listed
    assert layer_rows[-1] == "| total | 100 | 100.0 |"
    assert sum(float(row.split("|")[3]) for row in layer_rows[:-1]) == pytest.approx(100.0)
    assert "| 40.0 | 40 | Condition.wait (threading.py) | " + WAITS + " |" in lines
    assert "| 93.0 | 93 | ThreadWorker.handle (gunicorn/workers/gthread.py) |" in lines


def test_no_samples_renders_zeros_not_an_error() -> None:
    lines = render_summary(summarize([]), top=5)

    assert "| total | 0 | 0.0 |" in lines
