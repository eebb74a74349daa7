"""The runner's contract under failure: every run that starts ends with exactly one summary, the frames that
can be written are written, each failed frame has its event, the exit code is the documented one.

Engines that break are run in-process (fake_engines); the cases where a real process is the point (a closed
stdout, SIGTERM, a buggy engine through the CLI) run the real `colorize` in a subprocess.
"""

from __future__ import annotations

import io
import json
import subprocess
import time

import fake_engines
import pytest
from conftest import assert_one_summary

from colorize.events import Events, HumanReporter
from colorize.runner import run_shot
from colorize.shot import plan_shot
from colorize.validate import validate_plan


def run(shot, engine, frames="1001-1012", progress="none", interval=5.0, **overrides):
    """Run the runner in-process; (summary, JSON events, human text)."""
    plan = plan_shot(shot / "refs.yaml", frames=frames, overrides=overrides)
    size = validate_plan(plan, deep=False)
    stream, human = io.StringIO(), io.StringIO()
    events = Events(json_stream=stream, human=HumanReporter(human, progress=progress, interval=interval))
    summary = run_shot(plan, engine, events, size=size)
    return summary, [json.loads(line) for line in stream.getvalue().splitlines()], human.getvalue()


def test_float64_engine_fails_its_batch_and_stops_with_exit_70(shot):
    summary, events, human = run(shot, fake_engines.Float64, batch=4)
    assert_one_summary(events)
    failed = [e for e in events if e["event"] == "frame_failed"]
    assert [e["frame"] for e in failed] == [1001, 1002, 1003, 1004]
    assert "float64" in failed[0]["error"] and failed[0]["exit_code"] == 70
    end = events[-1]
    assert (end["done"], end["failed"], end["not_run"], end["exit_code"]) == (0, 4, 8, 70)
    assert summary.exit_code == 70
    assert not list((shot / "color").glob("*.png"))
    errors = [ln for ln in human.splitlines() if ln.startswith("colorize: error:")]
    assert len(errors) == 1 and "float64" in errors[0]  # one line for the batch, not one per frame


def test_engine_bug_mid_run_writes_what_it_colored_then_stops(shot):
    summary, events, _ = run(shot, fake_engines.RaisesOnSecondBatch, batch=3)
    assert_one_summary(events)
    done = [e["frame"] for e in events if e["event"] == "frame_done"]
    failed = [e["frame"] for e in events if e["event"] == "frame_failed"]
    assert done == [1001, 1002, 1003] and failed == [1004, 1005, 1006]
    assert events[-1]["exit_code"] == 70 and "ZeroDivisionError" in events[-1]["stopped"]
    assert sorted(p.name for p in (shot / "color").glob("*.png")) == [f"sh001.{f}.png" for f in done]


def test_the_runner_closes_the_engine_when_the_stream_ends_however_it_ends(shot):
    closed: list[str] = []

    class Closing(fake_engines.RaisesOnSecondBatch):
        def close(self):
            closed.append("bug")

    class ClosingFine(fake_engines.Fake):
        def close(self):
            closed.append("fine")

    run(shot, Closing, batch=3)  # an engine bug stops the run
    run(shot, ClosingFine, frames="1010-1011")
    assert closed == ["bug", "fine"]


def test_bad_input_read_by_the_engine_fails_that_batch_and_the_run_goes_on(shot):
    summary, events, _ = run(shot, fake_engines.BadChainFrame, batch=2)
    assert_one_summary(events)
    failed = [e for e in events if e["event"] == "frame_failed"]
    assert [e["frame"] for e in failed] == [1005, 1006]
    assert failed[0]["exit_code"] == 65 and "sh001.1003.png" in failed[0]["error"]
    assert events[-1]["done"] == 10 and events[-1]["stopped"] is None and summary.exit_code == 65


def test_out_of_memory_says_lower_batch_once(shot):
    summary, events, human = run(shot, fake_engines.OutOfMemory, batch=4)
    assert_one_summary(events)
    failed = [e for e in events if e["event"] == "frame_failed"]
    assert len(failed) == 4 and all(e["exit_code"] == 71 for e in failed)
    assert "out of memory" in failed[0]["error"] and "lower --batch" in failed[0]["error"]
    assert summary.exit_code == 71
    assert sum("lower --batch" in line for line in human.splitlines() if "error:" in line) == 1


def test_engine_info_keys_never_collide_with_event_fields(shot):
    _, events, _ = run(shot, fake_engines.Unresolved, frames="1001-1004")
    done = [e for e in events if e["event"] == "frame_done"]
    assert [e["frame"] for e in done] == [1001, 1002, 1003, 1004]


def test_frame_events_carry_the_seconds_the_engine_measured(shot):
    _, events, _ = run(shot, fake_engines.Timed, frames="1001-1004", batch=4)
    done = {e["frame"]: e["seconds"] for e in events if e["event"] == "frame_done"}
    assert done == {1001: 0.001, 1002: 0.002, 1003: 0.003, 1004: 0.004}


def test_quality_gate_fails_frames_over_the_limit_after_writing_them(shot):
    summary, events, human = run(shot, fake_engines.Unresolved, frames="1001-1010", max_unresolved=2)
    assert_one_summary(events)
    failed = {e["frame"]: e for e in events if e["event"] == "frame_failed"}
    assert sorted(failed) == [1003, 1004, 1008, 1009]  # frame % 5 > 2
    assert all(e["exit_code"] == 3 and e["unresolved"] == e["frame"] % 5 for e in failed.values())
    assert all((shot / "color" / f"sh001.{f}.png").is_file() for f in failed)  # written for a painter
    end = events[-1]
    assert end["exit_code"] == 3 and end["done"] == 6
    assert (end["unresolved_regions"], end["frames_with_unresolved"]) == (20, 8)
    assert "20 unresolved regions in 8 frames" in human
    # A rerun does not let them through as fresh; a higher limit does.
    summary, events, _ = run(shot, fake_engines.Unresolved, frames="1001-1010", max_unresolved=2)
    assert summary.exit_code == 3 and events[-1]["skipped"] == 6 and events[-1]["failed"] == 4
    summary, events, _ = run(shot, fake_engines.Unresolved, frames="1001-1010", max_unresolved=4)
    assert summary.exit_code == 0 and events[-1]["skipped"] == 10
    assert events[-1]["unresolved_regions"] == 20  # skipped frames still count, from their records


def test_progress_lines_and_openjd_lines(shot):
    _, _, human = run(shot, fake_engines.Fake, frames="1001-1004", progress="lines", interval=0, batch=2)
    lines = [ln for ln in human.splitlines() if "%)" in ln]
    assert lines[0].startswith("colorize: 1/4 frames (25%), frame 1001")
    assert "frames/s, ETA" in lines[1] and lines[-1].startswith("colorize: 4/4 frames (100%)")
    _, _, human = run(shot, fake_engines.Fake, frames="1005-1008", progress="openjd", interval=0)
    progress = [float(ln.split(": ")[1]) for ln in human.splitlines() if ln.startswith("openjd_progress: ")]
    assert progress == [25.0, 50.0, 75.0, 100.0, 100.0]
    assert any(ln.startswith("openjd_status: 2/4 frames") for ln in human.splitlines())


def test_progress_lines_keep_coming_while_a_batch_runs(shot):
    slow = type("Slower", (fake_engines.Slow,), {"delay": 0.6})
    _, _, human = run(shot, slow, frames="1001-1002", progress="lines", interval=0.1, batch=2)
    working = [ln for ln in human.splitlines() if ln.startswith("colorize: 0/2 frames (0%), working")]
    assert len(working) >= 3  # a farm log sees the run is alive before any frame is done


# -- real processes --------------------------------------------------------------------------------------


def test_closed_stdout_ends_the_run_quietly(shot):
    proc = fake_engines.popen_with_engine(
        "slow", "shot", str(shot), "--json", "--batch", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    first = [proc.stdout.readline() for _ in range(3)]  # what `| head -n 3` reads
    proc.stdout.close()
    start = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 10
    assert [json.loads(line)["event"] for line in first] == ["run_start", "message", "frame_done"]
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err
    assert err.count(" done, ") == 1 and "stopped: stdout was closed" in err  # the one summary, on stderr
    assert not [p for p in (shot / "color").iterdir() if p.name.startswith(".")]


def test_float64_engine_through_the_cli_exits_70_within_seconds(shot):
    start = time.monotonic()
    proc = fake_engines.run_with_engine("float64", "shot", str(shot), "--json", timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 70, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert_one_summary(events)
    assert "Traceback" not in proc.stderr and "float64" in proc.stderr


@pytest.mark.parametrize("kind", ["raisesonsecondbatch", "badchainframe"])
def test_failure_streams_parse_with_one_summary(shot, kind):
    proc = fake_engines.run_with_engine(kind, "shot", str(shot), "--json", "--batch", "2")
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert_one_summary(events)
    assert (
        proc.returncode == events[-1]["exit_code"] == {"raisesonsecondbatch": 70, "badchainframe": 65}[kind]
    )
