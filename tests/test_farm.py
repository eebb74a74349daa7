"""Determinism across runs and chunkings; farm plans as JSON and as Open Job Description templates."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import fake_engines
import yaml
from colorize_cli.app import app
from conftest import run_cli, tree_bytes
from openjd.model import DocumentType, decode_job_template, document_string_to_object
from typer.testing import CliRunner


def colorize_exe() -> str:
    return str(Path(sys.executable).with_name("colorize"))


def test_two_runs_and_four_chunks_give_identical_bytes(shot, tmp_path, sample_colors):
    again, chunked = tmp_path / "again", tmp_path / "chunked"
    # Two runs in two processes: the shared clean run and this one.
    assert run_cli("shot", str(shot), "--out", str(again), "--batch", "3").returncode == 0
    # Chunks in reverse order: a chunk never depends on another having run first. (In-process: chunks in
    # separate processes are the OpenJD test's.)
    for frames in ["1019-1024", "1013-1018", "1007-1012", "1001-1006"]:
        result = CliRunner().invoke(app, ["shot", str(shot), "--out", str(chunked), "--frames", frames])
        assert result.exit_code == 0, result.output
    expected = sample_colors
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


def test_plan_passes_the_run_options_to_every_task(shot):
    proc = run_cli(
        "plan",
        str(shot),
        "--chunk",
        "12",
        "--seed",
        "9",
        "--engine",
        "flat",
        "--max-unresolved",
        "4",
        "-b",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    cmd = json.loads(proc.stdout)["tasks"][0]["command"]
    pairs = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert pairs["--seed"] == "9" and pairs["--engine"] == "flat" and pairs["--batch"] == "2"
    assert pairs["--max-unresolved"] == "4" and pairs["--frames"] == "1001-1012"


def load_template(path: Path):
    text = path.read_text()
    return yaml.safe_load(text), decode_job_template(
        template=document_string_to_object(document=text, document_type=DocumentType.YAML)
    )


def test_openjd_template_saved_in_a_subfolder_runs_chunk_by_chunk(shot, tmp_path, sample_colors):
    out = tmp_path / "farm_out"
    template = tmp_path / "jobs" / "shot001.job.yaml"
    proc = run_cli(
        "plan", str(shot), "--chunk", "7", "--format", "openjd", "--save", str(template), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    doc, decoded = load_template(template)
    chunks = decoded.steps[0].parameterSpace.taskParameterDefinitions[0].range
    assert list(chunks) == ["1001-1007", "1008-1014", "1015-1021", "1022-1024"]
    params = {p["name"]: p for p in doc["parameterDefinitions"]}
    assert params["OutDir"]["dataFlow"] == "OUT" and params["ShotDir"]["dataFlow"] == "IN"  # job attachments
    # OpenJD allows no default outside the template's folder: colorize says what to pass instead.
    assert all("default" not in params[name] for name in ("ShotDir", "Refs", "OutDir"))
    command = shlex.split(proc.stderr.split("run it with: ")[1].splitlines()[0])
    openjd = Path(sys.executable).with_name("openjd")
    run = subprocess.run(
        [str(openjd), *command[1:], "--job-param", f"Colorize={colorize_exe()}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Chunks run: 4" in run.stdout
    assert run.stdout.count("openjd_progress: 100.0") == 4  # each task told the farm it finished
    assert tree_bytes(out) == sample_colors


def test_openjd_template_beside_the_shot_has_relative_defaults(shot, tmp_path):
    template = tmp_path / "job.yaml"
    assert run_cli("plan", str(shot), "--format", "openjd", "--save", str(template)).returncode == 0
    doc, decoded = load_template(template)
    params = {p["name"]: p for p in doc["parameterDefinitions"]}
    assert params["ShotDir"]["default"] == "shot001" and params["OutDir"]["default"] == "shot001/color"
    assert "hostRequirements" not in doc["steps"][0]  # the flat engine runs on any worker


def test_openjd_diffusion_job_asks_for_a_gpu_worker(shot, tmp_path):
    model = fake_engines.fake_model_folder(tmp_path / "model", parameters=10**9)
    memory = {}
    for batch in (1, 8):
        template = tmp_path / f"job{batch}.yaml"
        args = ["--engine", "diffusion", "--model", str(model), "--batch", str(batch)]
        result = CliRunner().invoke(
            app, ["plan", str(shot), "--format", "openjd", "--save", str(template), *args]
        )
        assert result.exit_code == 0, result.output
        doc, _ = load_template(template)
        amounts = {a["name"]: a["min"] for a in doc["steps"][0]["hostRequirements"]["amounts"]}
        assert amounts["amount.worker.gpu"] == 1
        memory[batch] = amounts["amount.worker.gpu.memory"]
    assert memory[1] % 1024 == 0 and memory[1] >= 2 * 1024  # 1e9 bf16 weights alone are 1.9 GiB
    assert memory[8] > memory[1]
