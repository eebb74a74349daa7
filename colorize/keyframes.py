"""The `colorize keys` pass: where the keys go, which keyframe files are its own, the plan the runner runs.

Keys are written under the manifest's `keyframes` pattern; a manifest without one gets `keys/<line-art
file name>` beside it (`default_pattern`), added to the manifest only when asked (`add_to_manifest`: one
line inserted after `lineart:`, the rest of the file as it was). A keyframe file is the pass's own when its
record (`colorize.provenance`) says engine `keys` and its pixels are still those recorded; any other file
there is a painter's and is never written over. The pass is an ordinary run of the runner (`keys_pass`
makes its `ShotPlan`: the keys as the selection, the keyframe pattern as the output, engine `keys`), so
freshness, resume, events and exit codes are those of `colorize shot`: a fresh key is skipped, a stale
one of its own (another reference, seed or setting) painted again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from colorize import images
from colorize.engines.keys import keys_settings
from colorize.errors import ManifestError, OutputError
from colorize.keys import KeyChoice, choose_keys
from colorize.manifest import load_manifest, load_yaml_with_lines
from colorize.provenance import Provenance, pixels_digest
from colorize.reading import shot_context
from colorize.sequences import Pattern, list_frames, parse_pattern
from colorize.shot import ShotPlan


@dataclass(frozen=True)
class KeysPass:
    plan: ShotPlan  # what the runner runs: selected = the keys it may write, output = the keyframe pattern
    choice: KeyChoice
    pattern: Pattern  # where keys go
    in_manifest: bool  # the manifest names that pattern (`keyframes`)
    painters: tuple[int, ...]  # chosen keys whose keyframe file colorize keys did not write: kept
    orphans: tuple[int, ...]  # keyframe files colorize keys wrote that are no longer chosen

    @property
    def pattern_text(self) -> str:
        return self.pattern.text


def default_pattern(lineart: Pattern, base: Path) -> Pattern:
    """`keys/<line-art file name>` beside the manifest."""
    return Pattern(
        f"keys/{lineart.head}{'#' * lineart.width}{lineart.tail}",
        base / "keys",
        lineart.head,
        lineart.tail,
        lineart.width,
    )


def keyframe_pattern(plan: ShotPlan) -> Pattern:
    """The manifest's `keyframes` pattern, else `default_pattern`."""
    manifest = load_manifest(plan.manifest_path)
    base = plan.manifest_path.parent
    if not manifest.keyframes:
        return default_pattern(plan.lineart, base)
    pattern = parse_pattern(manifest.keyframes, base)
    if not pattern.is_sequence:
        raise ManifestError(
            [f"{plan.manifest_path}: keyframes: {manifest.keyframes!r} needs a frame number (####)"]
        )
    return pattern


def keys_pass(plan: ShotPlan, explicit: list[int] | None = None) -> KeysPass:
    """Choose the keys of the shot `plan` (its whole sequence; `explicit`: these frames) and make the plan
    of the pass that paints them."""
    manifest = load_manifest(plan.manifest_path)
    base = plan.manifest_path.parent
    pattern = (
        parse_pattern(manifest.keyframes, base) if manifest.keyframes else default_pattern(plan.lineart, base)
    )
    if not pattern.is_sequence:
        raise ManifestError(
            [f"{plan.manifest_path}: keyframes: {manifest.keyframes!r} needs a frame number (####)"]
        )
    for other, what in ((plan.lineart, "lineart"), (plan.output, "output")):
        if (pattern.folder.resolve(), pattern.head, pattern.tail) == (
            other.folder.resolve(),
            other.head,
            other.tail,
        ):
            raise OutputError(f"{plan.manifest_path}: keyframes: {pattern.text!r} is the {what} pattern")
    masked = [c for c in plan.characters if c.mask is not None]
    load_masks = (
        (lambda f: {c.name: images.read_mask(c.mask.path(f)) for c in masked if c.mask is not None})
        if masked
        else None
    )
    context = shot_context(plan, (0, 0))  # the characters and background as the flat engine gets them
    choice = choose_keys(
        plan.frames,
        lambda f: images.read_rgba(plan.lineart_paths[f]),
        plan.settings,
        explicit,
        load_masks,
        context.characters,
        context.background,
    )
    existing = list_frames(pattern, "keyframes") if pattern.folder.is_dir() else {}
    ours = {f for f, path in existing.items() if written_by_keys(path)}
    painters = tuple(f for f in choice.frames if f in existing and f not in ours)
    selected = tuple(f for f in choice.frames if f not in painters)
    settings = keys_settings(plan.settings)
    keys_plan = dataclasses.replace(
        plan,
        output=pattern,
        selected=selected,
        keyframe_paths={},
        settings=settings,
        engine="keys",
        engine_reason="colorize keys: the diffusion engine, each key alone, cel-finished",
        dependencies={f: (f,) for f in selected},
    )
    orphans = tuple(sorted(f for f in ours if f not in set(choice.frames)))
    in_manifest = bool(load_manifest(plan.manifest_path).keyframes)
    return KeysPass(keys_plan, choice, pattern, in_manifest, painters, orphans)


def written_by_keys(path: Path) -> bool:
    """Whether `colorize keys` wrote this keyframe file and nobody changed its pixels since."""
    stored = Provenance.from_text(images.read_metadata(path))
    if stored is None or stored.engine != "keys" or stored.pixels is None:
        return False
    return stored.pixels == pixels_digest(images.read_image(path))


def add_to_manifest(manifest_path: Path, pattern_text: str) -> None:
    """Add `keyframes: PATTERN` to the manifest, on the line after `lineart:`, everything else as it was
    (comments, order); written atomically. Raises ManifestError when the manifest already has one."""
    data, lines = load_yaml_with_lines(manifest_path)
    if isinstance(data, dict) and data.get("keyframes"):
        raise ManifestError([f"{manifest_path}: keyframes: already set ({data['keyframes']!r})"])
    text = manifest_path.read_text(encoding="utf-8")
    rows = text.splitlines(keepends=True)
    at = lines.get(("lineart",), len(rows))  # 1-based line of `lineart:`; the new line goes after it
    newline = "\r\n" if rows and rows[0].endswith("\r\n") else "\n"
    if at > 0 and at <= len(rows) and not rows[at - 1].endswith(("\n", "\r")):
        rows[at - 1] += newline
    rows.insert(at, f"keyframes: {pattern_text}{newline}")
    images.write_atomic(manifest_path, "".join(rows).encode("utf-8"))
    load_manifest(manifest_path)  # still a valid manifest (raises the line that is not)
