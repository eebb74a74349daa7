"""Colour-trace lines: roles (shadow / highlight / fixed / main), filling by the flat engine and cel finish,
marks and drawings traced in one colour kept, unfilled pixels reported. Expected fills by construction
(tests/synth.py `trace_frame`)."""

from __future__ import annotations

import numpy as np
import pytest
from synth import BLUE_PENCIL, RED_PENCIL, TRACE_COLORS, trace_frame, trace_keyframe
from typer.testing import CliRunner

from colorize import images
from colorize.engines.base import FrameInput, ShotContext
from colorize.engines.diffusion.cel import cel_finish, cel_regions
from colorize.engines.flat import SOURCES, FlatEngine
from colorize.errors import ManifestError
from colorize.evaluate_trace import trace_figures, trace_match
from colorize.events import _summary_text
from colorize.manifest import load_manifest
from colorize.qa import TINTS, qa_overlay
from colorize.regions.lines import HUES, LineRoles, classify, frame_line_work, hue_classes, trace_labels
from colorize.regions.lines import warnings as line_warnings
from colorize.regions.palette import NO_COLOR
from colorize.regions.segment import line_layers, segment_ink
from colorize.runner import Summary
from colorize.settings import FlatSettings, Settings, TraceLineSettings

SHIFT = (6, 3)


def _run(frames, keys: dict[int, np.ndarray], settings: Settings | None = None, which=(0, 1)):
    settings = settings or Settings()
    h, w = frames[0].lineart.shape[:2]
    engine = FlatEngine(settings)
    engine.prepare(
        ShotContext(
            frames=tuple(range(len(frames))),
            keyframes=tuple(sorted(keys)),
            size=(h, w),
            characters=(),
            background=None,
            settings=settings,
            load_lineart=lambda f: frames[f].lineart,
            load_keyframe=lambda f: keys[f],
            load_masks=lambda f: {},
            qa=True,
        )
    )
    return engine.colorize([FrameInput(f, frames[f].lineart, {}, keys.get(f)) for f in which])


def _color(name: str) -> np.ndarray:
    return np.array(TRACE_COLORS[name], np.uint8)


@pytest.fixture(scope="module")
def shot():
    frames = [trace_frame(), trace_frame(shift=SHIFT)]
    return frames, _run(frames, {0: trace_keyframe(frames[0])})


def test_trace_lines_take_their_role_side_on_every_frame(shot):
    frames, results = shot
    for frame, res in zip(frames, results, strict=True):
        img = res.image
        assert (img[frame.blue] == _color("shadow")).all()  # blue: the darker of light | shadow
        assert (img[frame.red] == _color("highlight")).all()  # red: the lighter of shadow | highlight
        assert res.info["trace_unfilled"] == 0 and res.info["trace_pixels"] > 0


def test_no_trace_pixel_keeps_its_pencil_colour_but_marks_and_main_lines_stay(shot):
    frames, results = shot
    for frame, res in zip(frames, results, strict=True):
        img = res.image.astype(int)
        line = frame.lineart[..., :3].astype(int)
        bluish = line[..., 2] - line[..., 0] > 40  # every pixel the blue pencil tints, fringes included
        assert (img[bluish][:, 2] - img[bluish][:, 0] < 40).all()
        mark = img[frame.mark]  # a mark inside one region is line work: kept (anti-aliased over the paint)
        assert (mark[:, 0] > 200).all() and (mark[:, 1:] < 80).all()
        assert (img[frame.black] < 80).all()
        main = res.main_lines
        assert main[frame.black].all() and main[frame.mark].all()
        assert not main[frame.blue].any() and not main[frame.red].any()


def test_the_keyframe_frame_keeps_its_painted_trace_lines_later_frames_follow_the_role():
    frames = [trace_frame(), trace_frame(shift=SHIFT)]
    light = tuple(int(v) for v in TRACE_COLORS["light"])
    results = _run(frames, {0: trace_keyframe(frames[0], blue_fill=light)})
    assert (results[0].image[frames[0].blue] == light).all()  # as the painter filled it
    assert (results[1].image[frames[1].blue] == _color("shadow")).all()


@pytest.mark.parametrize(
    ("blue", "expected"),
    [("highlight", TRACE_COLORS["light"]), ("#00ff00", (0, 255, 0)), ("main", None)],
)
def test_roles_come_from_the_settings(blue, expected):
    frames = [trace_frame(), trace_frame(shift=SHIFT)]
    settings = Settings(trace_lines=TraceLineSettings(blue=blue))
    res = _run(frames, {0: trace_keyframe(frames[0])}, settings, which=(1,))[0]
    got = res.image[frames[1].blue]
    if expected is None:  # kept as a main line: the pencil over the paint
        assert (got[:, 2].astype(int) - got[:, 0] > 120).all()
    else:
        assert (got == expected).all()
    assert (res.image[frames[1].red] == _color("highlight")).all()


def test_a_drawing_traced_in_blue_keeps_its_lines_and_says_so():
    frame = trace_frame(pencil="blue")
    lw = frame_line_work(frame.lineart, FlatSettings(), TraceLineSettings())
    assert lw.count == 0 and "blue" in lw.kept_share
    (warning,) = line_warnings(lw, "f.0001.png")
    assert "blue" in warning and "trace_lines" in warning and "f.0001.png" in warning
    res = _run([frame], {0: frame.color}, which=(0,))[0]
    for core in (frame.blue, frame.black):
        kept = res.image[core].astype(int)
        assert (kept[:, 2] - kept[:, 0] > 120).all()  # still blue pencil


def test_check_warns_about_a_drawing_traced_in_blue(tmp_path):
    from colorize_cli.app import app

    (tmp_path / "line").mkdir()
    images.write_image(tmp_path / "line" / "f.0001.png", trace_frame(pencil="blue").lineart)
    (tmp_path / "refs.yaml").write_text("version: 1\nlineart: line/f.####.png\noutput: out/f.####.png\n")
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "blue lines are" in result.output and "trace_lines" in result.output


def test_hue_classes_and_dark_lines():
    rgb = np.array([RED_PENCIL, (0, 200, 0), BLUE_PENCIL, (0, 200, 255), (255, 120, 0), (200, 0, 200)])
    assert [HUES[i] for i in hue_classes(rgb)] == ["red", "green", "blue", "cyan", "red", "magenta"]
    # A dark red line (a main line drawn in a colour) is not a trace line.
    frame = trace_frame()
    dark = frame.lineart.copy()
    red = (dark[..., 0].astype(int) - dark[..., 1]) > 100
    dark[red] = (90, 0, 0, 255)
    ink, colored, alpha = line_layers(dark)
    seg = segment_ink(ink)
    lw = classify(dark, ink, colored, alpha, seg.labels, LineRoles.from_settings(TraceLineSettings()))
    assert lw.role[frame.blue].all() and not lw.role[frame.red].any()


def test_unfilled_trace_pixels_are_counted_and_shown():
    frame = trace_frame()
    ink, colored, alpha = line_layers(frame.lineart)
    seg = segment_ink(ink)
    lw = classify(
        frame.lineart, ink, colored, alpha, seg.labels, LineRoles.from_settings(TraceLineSettings())
    )
    colors = np.full(seg.count + 1, NO_COLOR, np.int64)  # nothing painted: nothing to fill from
    _, unfilled = trace_labels(lw, seg.labels, seg.filled, colors, NO_COLOR)
    assert (unfilled > 0)[frame.blue].all() and (unfilled > 0)[frame.red].all()
    assert not (unfilled > 0)[frame.black].any()
    source = np.zeros(seg.count + 1, np.int8)
    qa = qa_overlay(frame.color, seg, source, np.zeros(seg.count + 1, bool), SOURCES, unfilled)
    assert (qa[: frame.color.shape[0]][frame.blue] == TINTS["unresolved"]).all()


def test_cel_finish_fills_trace_lines_by_role():
    frame = trace_frame()
    image = frame.color.copy()
    image[frame.blue] = BLUE_PENCIL  # the model drew the pencil lines
    image[frame.red] = RED_PENCIL
    out = cel_finish(image, frame.lineart)
    assert (out[frame.blue] == _color("shadow")).all()
    assert (out[frame.red] == _color("highlight")).all()


def test_trace_figures_judge_the_side_and_the_pencil(shot):
    frames, results = shot
    frame, image = frames[1], results[1].image
    good = trace_figures(frame.lineart, image)
    assert good["trace_kept"] == 0 and good["shadow_side"] == 1.0 and good["highlight_side"] == 1.0
    assert good["marks"] > 0  # the red mark is not a trace line
    wrong = image.copy()
    wrong[frame.blue] = TRACE_COLORS["light"]  # the other side
    wrong[frame.red] = frame.lineart[frame.red][:, :3]  # left in pencil
    bad = trace_figures(frame.lineart, wrong)
    assert bad["shadow_side"] < 0.5 and bad["trace_kept"] >= frame.red.sum()
    assert trace_match(frame.lineart, wrong, image)["trace_equal"] < 0.5


def test_trace_roles_in_the_manifest_and_a_bad_one_named(tmp_path):
    manifest = "version: 1\nlineart: line/f.####.png\ntrace_lines:\n  blue: highlight\n  cyan: '#112233'\n"
    (tmp_path / "refs.yaml").write_text(manifest)
    layer = load_manifest(tmp_path / "refs.yaml").as_layer()
    assert layer == {"trace_lines": {"blue": "highlight", "cyan": "#112233"}}
    (tmp_path / "refs.yaml").write_text(manifest.replace("highlight", "purple"))
    with pytest.raises(ManifestError, match="trace_lines.blue"):
        load_manifest(tmp_path / "refs.yaml")


def test_unfilled_trace_pixels_reach_the_summary():
    summary = Summary()
    for count in (0, 3, None, 2):
        summary.count_trace_unfilled(count)
    assert (summary.trace_unfilled, summary.frames_with_trace_unfilled) == (5, 2)
    record = {"done": 2, "skipped": 0, "failed": 0, "seconds": 1.0, "frames_per_second": 2.0}
    text = _summary_text({**record, "trace_unfilled": 5, "frames_with_trace_unfilled": 2})
    assert "5 colour-trace line pixels unfilled in 2 frames" in text


def test_cel_regions_name_the_main_lines():
    frame = trace_frame()
    cel = cel_regions(frame.lineart)
    assert cel.main[frame.black].all() and cel.main[frame.mark].all()
    assert not cel.main[frame.blue].any() and not cel.main[frame.red].any()
