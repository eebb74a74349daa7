"""The bad-input corpus: every case through a real `colorize shot` process.

Invalid inputs: one error line naming the file, frame or key; the documented exit code; no traceback; no
output written; inputs byte-identical afterwards. Unusual but valid inputs (16-bit, gray, palette, RGBA line
art): the shot runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, tree_bytes
from PIL import Image

DATA, NO_INPUT, USAGE, CANT_CREATE = 65, 66, 2, 73
LINE = "lineart/sh001.{}.png"


def edit_manifest(old: str, new: str) -> Callable[[Path], None]:
    def apply(shot: Path) -> None:
        path = shot / "refs.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    return apply


def write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda shot: (shot / rel).write_bytes(data)


def truncate(rel: str) -> Callable[[Path], None]:
    def apply(shot: Path) -> None:
        data = (shot / rel).read_bytes()
        (shot / rel).write_bytes(data[: len(data) // 3])

    return apply


def resize(rel: str, size: tuple[int, int]) -> Callable[[Path], None]:
    return lambda shot: Image.open(shot / rel).resize(size).save(shot / rel)


def remove(rel: str) -> Callable[[Path], None]:
    def apply(shot: Path) -> None:
        target = shot / rel
        if target.is_dir():
            for p in sorted(target.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            target.rmdir()
        else:
            target.unlink()

    return apply


def rename(src: str, dst: str) -> Callable[[Path], None]:
    return lambda shot: (shot / src).rename(shot / dst)


def output_under_a_file(shot: Path) -> None:
    (shot / "blocker").write_text("a file where the output folder should be")
    edit_manifest("output: color/", "output: blocker/color/")(shot)


INVALID = [
    # (id, change, extra args, exit code, text the one error line must contain)
    ("zero-byte-lineart", write_bytes(LINE.format(1005), b""), [], DATA, "sh001.1005.png: empty file"),
    ("truncated-lineart", truncate(LINE.format(1007)), [], DATA, "sh001.1007.png: damaged or truncated"),
    ("text-as-png", write_bytes(LINE.format(1002), b"not a png\n"), [], DATA, "sh001.1002.png: not an image"),
    (
        "jpeg-bytes-truncated",
        write_bytes(LINE.format(1003), b"\xff\xd8\xff\xe0garbage"),
        [],
        DATA,
        "sh001.1003.png",
    ),
    (
        "zero-byte-mask",
        write_bytes("masks/cat/sh001.1004.png", b""),
        [],
        DATA,
        "cat/sh001.1004.png: empty file",
    ),
    (
        "truncated-keyframe",
        truncate("keys/sh001.1001.png"),
        [],
        DATA,
        "keys/sh001.1001.png: damaged or truncated",
    ),
    ("reference-not-image", write_bytes("refs/hero.png", b"GIF89a..."), [], DATA, "refs/hero.png"),
    (
        "mask-wrong-size",
        resize("masks/hero/sh001.1006.png", (64, 64)),
        [],
        DATA,
        "mask of 'hero' for frame 1006 is 64×64",
    ),
    ("keyframe-wrong-size", resize("keys/sh001.1001.png", (100, 80)), [], DATA, "keyframe 1001 is 100×80"),
    (
        "lineart-wrong-size",
        resize(LINE.format(1010), (200, 100)),
        [],
        DATA,
        "frame 1010 is 200×100 but the shot is 384×256",
    ),
    (
        "gap-in-sequence",
        remove(LINE.format(1012)),
        [],
        NO_INPUT,
        "sh001.1012.png: frame 1012 is missing from lineart sequence",
    ),
    (
        "duplicate-padding",
        lambda s: (s / "lineart/sh001.01003.png").write_bytes((s / LINE.format(1003)).read_bytes()),
        [],
        DATA,
        "frame 1003 appears twice",
    ),
    (
        "unpadded-frame",
        rename(LINE.format(1024), "lineart/sh001.24.png"),
        [],
        DATA,
        "sh001.24.png: frame 24 is not padded to 4 digits",
    ),
    (
        "yaml-syntax",
        edit_manifest("seed: 1234", "seed: [1234"),
        [],
        DATA,
        "refs.yaml:18:1: YAML syntax error",
    ),
    ("yaml-tab-indent", edit_manifest("  hero:\n", "  hero:\n\t"), [], DATA, "YAML syntax error"),
    (
        "unknown-top-key",
        edit_manifest("seed: 1234", "seed: 1234\ncolour: red"),
        [],
        DATA,
        "refs.yaml:18: colour: unknown key",
    ),
    (
        "unknown-nested-key",
        edit_manifest("    reference: refs/cat.png", "    reference: refs/cat.png\n    colour: red"),
        [],
        DATA,
        "characters.cat.colour: unknown key",
    ),
    ("wrong-type-seed", edit_manifest("seed: 1234", "seed: lots"), [], DATA, "refs.yaml:17: seed:"),
    (
        "wrong-type-batch",
        edit_manifest("seed: 1234", "seed: 1234\nbatch: -3"),
        [],
        DATA,
        "batch: Input should be greater than or equal to 1",
    ),
    ("wrong-engine", edit_manifest("engine: auto", "engine: magic"), [], DATA, "engine: got 'magic'"),
    ("wrong-version", edit_manifest("version: 1", "version: 2"), [], DATA, "version: got 2, expected 1"),
    ("missing-version", edit_manifest("version: 1\n", ""), [], DATA, "version: required key is missing"),
    (
        "missing-lineart-key",
        edit_manifest("lineart: lineart/sh001.####.png\n", ""),
        [],
        DATA,
        "lineart: required key is missing",
    ),
    (
        "background-not-mapping",
        edit_manifest("background:\n  reference: refs/bg.png", "background: refs/bg.png"),
        [],
        DATA,
        "refs.yaml:13: background: Input should be a valid dictionary (got 'refs/bg.png')",
    ),
    ("manifest-not-mapping", write_bytes("refs.yaml", b"- just\n- a list\n"), [], DATA, "must be a mapping"),
    ("manifest-empty", write_bytes("refs.yaml", b""), [], DATA, "the manifest is empty"),
    ("manifest-binary", write_bytes("refs.yaml", b"\x89PNG\r\n\x1a\n\x00\x00"), [], DATA, "refs.yaml"),
    (
        "missing-reference",
        remove("refs/cat.png"),
        [],
        NO_INPUT,
        "refs/cat.png: reference of character 'cat' not found",
    ),
    (
        "missing-background",
        remove("refs/bg.png"),
        [],
        NO_INPUT,
        "refs/bg.png: background reference not found",
    ),
    ("missing-mask-folder", remove("masks/cat"), [], NO_INPUT, "masks/cat: folder of mask of 'cat' sequence"),
    (
        "missing-mask-frame",
        remove("masks/hero/sh001.1020.png"),
        [],
        NO_INPUT,
        "mask of 'hero' missing for frames 1020",
    ),
    ("missing-lineart-folder", remove("lineart"), [], NO_INPUT, "lineart: folder of lineart sequence"),
    (
        "no-matching-frames",
        edit_manifest("lineart: lineart/sh001.", "lineart: lineart/sh002."),
        [],
        NO_INPUT,
        "no frame matches lineart pattern",
    ),
    (
        "lineart-without-number",
        edit_manifest("lineart: lineart/sh001.####.png", "lineart: lineart/sh001.1001.png"),
        [],
        DATA,
        "has no frame number",
    ),
    (
        "stray-keyframe",
        lambda s: (s / "keys/sh001.0999.png").write_bytes((s / "keys/sh001.1001.png").read_bytes()),
        [],
        DATA,
        "keyframe 999 has no lineart frame 999",
    ),
    (
        "output-equals-input",
        edit_manifest("output: color/", "output: lineart/"),
        [],
        CANT_CREATE,
        "outputs would overwrite inputs",
    ),
    ("output-unwritable", output_under_a_file, [], CANT_CREATE, "cannot create the output folder"),
    (
        "unknown-preset-manifest",
        edit_manifest("preset: default", "preset: fnal"),
        [],
        DATA,
        "preset: unknown preset 'fnal'",
    ),
    ("unknown-preset-cli", lambda s: None, ["--preset", "fnal"], USAGE, "--preset 'fnal': unknown preset"),
    (
        "invalid-frame-range",
        lambda s: None,
        ["--frames", "1001-x"],
        USAGE,
        "--frames '1001-x': not a frame range",
    ),
    (
        "frames-outside",
        lambda s: None,
        ["--frames", "2001-2005"],
        USAGE,
        "frames 2001-2005 are not in lineart sequence",
    ),
    ("bad-engine-option", lambda s: None, ["--engine", "magic"], USAGE, "'magic' is not one of"),
    ("bad-batch-option", lambda s: None, ["--batch", "0"], USAGE, "--batch"),
    ("missing-manifest", lambda s: None, ["--refs", "nope.yaml"], NO_INPUT, "nope.yaml: manifest not found"),
    ("diffusion-without-model", lambda s: None, ["--engine", "diffusion"], NO_INPUT, "model"),
]


@pytest.mark.parametrize(
    ("change", "args", "code", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID],
)
def test_invalid_input(shot, change, args, code, text):
    change(shot)
    before = tree_bytes(shot)
    proc = run_cli("shot", str(shot), *args)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("colorize: error: ") and text in lines[0], proc.stderr
    assert tree_bytes(shot) == before  # inputs untouched, no output written


def to_16bit(shot: Path) -> None:
    for p in (shot / "lineart").glob("*.png"):
        gray = np.asarray(Image.open(p).convert("L"), dtype=np.uint16) * 257
        Image.fromarray(gray).save(p)


def to_gray(shot: Path) -> None:
    for p in (shot / "lineart").glob("*.png"):
        Image.open(p).convert("L").save(p)


def to_palette(shot: Path) -> None:
    for p in (shot / "lineart").glob("*.png"):
        Image.open(p).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(p)


def to_alpha_lines(shot: Path) -> None:
    """Lines in the alpha channel over full transparency, as many ink-and-paint packages export."""
    for p in (shot / "lineart").glob("*.png"):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        ink = 255 - rgb.min(axis=-1)
        Image.fromarray(
            np.dstack([rgb // 4, ink.astype(np.uint8)]).astype(np.uint8)[..., [0, 1, 2, 3]], "RGBA"
        ).save(p)


def single_mask_image(shot: Path) -> None:
    edit_manifest("mask: masks/cat/sh001.####.png", "mask: masks/cat/sh001.1001.png")(shot)


@pytest.mark.parametrize(
    "change",
    [to_16bit, to_gray, to_palette, to_alpha_lines, single_mask_image],
    ids=["16-bit", "grayscale", "palette", "rgba-alpha-lines", "one-mask-for-all-frames"],
)
def test_valid_unusual_input_runs(shot, change):
    change(shot)
    proc = run_cli("shot", str(shot), "--frames", "1001-1004")
    assert proc.returncode == 0, proc.stderr
    outs = sorted(p.name for p in (shot / "color").iterdir())
    assert outs == [f"sh001.{f}.png" for f in range(1001, 1005)]
    img = np.asarray(Image.open(shot / "color" / "sh001.1001.png"))
    # Transparent line art gives RGBA output (output_alpha: auto); opaque input, RGB.
    channels = 4 if change is to_alpha_lines else 3
    assert img.shape == (256, 384, channels) and img.std() > 10
