"""Determinism across runs and chunkings; farm plans as JSON and as Open Job Description templates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import run_cli, tree_bytes
from openjd.model import DocumentType, decode_job_template, document_string_to_object


def colorize_exe() -> str:
    return str(Path(sys.executable).with_name("colorize"))


def test_two_runs_and_four_chunks_give_identical_bytes(shot, tmp_path):
    whole, again, chunked = tmp_path / "whole", tmp_path / "again", tmp_path / "chunked"
    assert run_cli("shot", str(shot), "--out", str(whole)).returncode == 0
    assert run_cli("shot", str(shot), "--out", str(again), "--batch", "3").returncode == 0
    # Chunks in reverse order: a chunk never depends on another having run first.
    for frames in ["1019-1024", "1013-1018", "1007-1012", "1001-1006"]:
        proc = run_cli("shot", str(shot), "--out", str(chunked), "--frames", frames)
        assert proc.returncode == 0, proc.stderr
    expected = tree_bytes(whole)
    assert len(expected) == 24
    assert tree_bytes(again) == expected
    assert tree_bytes(chunked) == expected


def test_plan_json_tasks_cover_the_range_once(shot):
    proc = run_cli("plan", str(shot), "--chunk", "10", "--frames", "1001-1024x1")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [t["frames"] for t in doc["tasks"]] == ["1001-1010", "1011-1020", "1021-1024"]
    assert doc["frames_total"] == 24
    cmd = doc["tasks"][1]["command"]
    assert cmd[:2] == ["colorize", "shot"] and cmd[cmd.index("--frames") + 1] == "1011-1020"


def test_openjd_template_validates_and_runs_chunk_by_chunk(shot, tmp_path):
    whole = tmp_path / "whole"
    assert run_cli("shot", str(shot), "--out", str(whole)).returncode == 0
    out = tmp_path / "farm_out"
    template = tmp_path / "job.yaml"
    proc = run_cli(
        "plan", str(shot), "--chunk", "7", "--format", "openjd", "--save", str(template), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    text = template.read_text()
    decoded = decode_job_template(
        template=document_string_to_object(document=text, document_type=DocumentType.YAML)
    )
    step = decoded.steps[0]
    chunks = step.parameterSpace.taskParameterDefinitions[0].range
    assert list(chunks) == ["1001-1007", "1008-1014", "1015-1021", "1022-1024"]
    assert (
        yaml.safe_load(text)["parameterDefinitions"][0]["default"] == "shot001"
    )  # relative, as OpenJD wants
    openjd = Path(sys.executable).with_name("openjd")
    run = subprocess.run(
        [str(openjd), "run", str(template), "--job-param", f"Colorize={colorize_exe()}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Chunks run: 4" in run.stdout or run.stdout.count("--frames") >= 4
    assert tree_bytes(out) == tree_bytes(whole)
