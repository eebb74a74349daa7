"""Segmentation on generated line art: gaps, colored lines, anti-aliasing, tiny regions."""

from __future__ import annotations

import cv2
import numpy as np
from synth import cut_by_the_top_edge, make_frame

from colorize.flow import Correspondence, correspondence
from colorize.regions.breaks import breaks_likely
from colorize.regions.leaks import (
    joined_parts,
    landing_pairs,
    leaky_regions,
    merged_regions,
    split_joined,
)
from colorize.regions.palette import (
    deep_colors,
    dominant_colors,
    pack_color,
    pack_color16,
    reference_palette,
    unpack_color16,
    widen,
)
from colorize.regions.render import paint_layer, render
from colorize.regions.segment import colored_line_mask, ink_u8, neighbour_regions, segment


def _blank(h: int = 120, w: int = 200) -> np.ndarray:
    return np.full((h, w, 4), 255, np.uint8)


def _two_boxes(gap: int) -> np.ndarray:
    """Two boxes sharing a wall; the wall has a gap of `gap` pixels."""
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 2)
    cv2.line(img, (100, 10), (100, 110), (0, 0, 0, 255), 2)
    if gap:
        img[60 - gap // 2 : 60 - gap // 2 + gap, 98:104] = 255
    return img


def _n_inside(seg, pts) -> int:
    return len({int(seg.labels[y, x]) for y, x in pts})


def test_gap_is_closed_when_asked():
    img = _two_boxes(gap=4)
    pts = [(60, 50), (60, 150)]
    assert _n_inside(segment(img, gap_close=0), pts) == 1  # leaks without gap closing
    seg = segment(img, gap_close=3)
    assert _n_inside(seg, pts) == 2
    # The cut does not leave the gap: both halves keep about their area.
    a, b = (seg.areas[seg.labels[y, x]] for y, x in pts)
    assert abs(int(a) - int(b)) < 0.05 * max(a, b)


def test_narrow_neck_is_not_cut():
    # An hourglass between two lines that bow in to a 3-px neck and go on: gap closing must not split it.
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 1)
    cv2.polylines(img, [np.array([[60, 10], [98, 58], [60, 110]])], False, (0, 0, 0, 255), 1)
    cv2.polylines(img, [np.array([[140, 10], [102, 58], [140, 110]])], False, (0, 0, 0, 255), 1)
    seg = segment(img, gap_close=3)
    assert _n_inside(seg, [(20, 100), (100, 100)]) == 1


def _strands(gap_at: int | None) -> np.ndarray:
    """Three thin slanted strands (3 px wide) between 1-px lines drawn with nearest-neighbour steps, the
    middle strand's left wall broken by a 1-px gap at row `gap_at` (None: closed)."""
    img = _blank(120, 120)
    for x0 in (30, 34, 38, 42):  # walls: x = x0 + y / 8, one pixel each row (steps, 4-connected paper)
        for y in range(10, 110):
            img[y, x0 + y // 8, :3] = 0
    cv2.rectangle(img, (5, 5), (114, 114), (0, 0, 0, 255), 1)
    img[10, 30:60, :3] = 0  # the strands' ends
    img[109, 30:60, :3] = 0
    if gap_at is not None:
        img[gap_at, 34 + gap_at // 8, :3] = 255
    return img


def test_one_pixel_gap_of_a_thin_strand_closes_and_clean_strands_stay_whole():
    inside_left, inside_mid = (60, 31 + 60 // 8), (60, 35 + 60 // 8)
    leaky = _strands(gap_at=60)
    assert _n_inside(segment(leaky, gap_close=0), [inside_left, inside_mid]) == 1  # leaks without
    assert _n_inside(segment(leaky, gap_close=2), [inside_left, inside_mid]) == 1  # off by default
    seg = segment(leaky, gap_close=2, close_breaks=True)
    # Too thin for the trapped ball (3 px), closed as a 1-px gap; each strand stays one region.
    assert _n_inside(seg, [inside_left, inside_mid]) == 2
    mid = [(y, 35 + y // 8) for y in range(14, 106, 4)]
    assert _n_inside(seg, mid) == 1
    clean = segment(_strands(gap_at=None), gap_close=2, close_breaks=True)
    plain = segment(_strands(gap_at=None), gap_close=0)
    assert clean.count == plain.count  # closed art: nothing to close, no region cut


def _broken_strands(thick: int = 1) -> np.ndarray:
    """`_strands`-like art: four steep walls `thick` px wide (hard-edged, one step every 8 rows) parting
    three strands; the middle strand's left wall misses 2 rows (a 2-px break, as nearest-neighbour
    resampling leaves in a 1-px line) at rows 60-61."""
    img = _blank(120, 140)
    for x0 in (30, 36, 42, 48):
        for y in range(10, 110):
            if x0 == 36 and y in (60, 61):
                continue
            img[y, x0 + y // 8 : x0 + y // 8 + thick, :3] = 0
    cv2.rectangle(img, (5, 5), (134, 114), (0, 0, 0, 255), thick)
    img[10 : 10 + thick, 30:70, :3] = 0
    img[110 - thick : 110, 30:70, :3] = 0
    return img


def test_auto_closes_two_pixel_breaks_of_aliased_thin_lines_only():
    left, mid = (70, 33 + 70 // 8), (70, 39 + 70 // 8)  # inside the left and the middle strand
    aliased = _broken_strands()
    ink = ink_u8(aliased)
    assert breaks_likely(ink, (ink >= 102).astype(np.uint8))
    assert _n_inside(segment(aliased, gap_close=2, close_breaks=False), [left, mid]) == 1  # leaks
    seg = segment(aliased, gap_close=2, close_breaks="auto")
    assert _n_inside(seg, [left, mid]) == 2  # the drawing's two strands, by construction
    assert _n_inside(seg, [(y, 39 + y // 8) for y in range(14, 106, 4)]) == 1  # the strand is not cut
    # Anti-aliased (soft-edged) art is left as it is: auto is "off" there.
    soft = cv2.GaussianBlur(aliased, (3, 3), 0.7)
    ink = ink_u8(soft)
    assert not breaks_likely(ink, (ink >= 102).astype(np.uint8))
    assert np.array_equal(
        segment(soft, gap_close=2, close_breaks="auto").labels,
        segment(soft, gap_close=2, close_breaks=False).labels,
    )
    # Thick hard-edged lines (binarised, 2 px) do not break when resampled: auto is off too.
    ink = ink_u8(_broken_strands(thick=2))
    assert not breaks_likely(ink, (ink >= 102).astype(np.uint8))


def test_a_region_holding_two_keyframe_colors_is_reported_as_leaky():
    img = _two_boxes(gap=6)  # wider than gap_close=1 closes
    key = _blank()
    key[10:110, 10:100, :3] = (200, 40, 40)  # the keyframe paints the two boxes differently
    key[10:110, 100:190, :3] = (40, 40, 200)
    leaks = leaky_regions(segment(img, gap_close=1), key)
    assert len(leaks) == 1 and leaks[0].colors == 2
    assert leaky_regions(segment(img, gap_close=4), key) == []  # closed: each box one color
    one = _blank()
    one[10:110, 10:190, :3] = (200, 40, 40)
    assert leaky_regions(segment(img, gap_close=1), one) == []  # one color across the gap: no evidence


def test_colored_lines_bound_regions_and_are_detected():
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 2)
    cv2.line(img, (100, 10), (100, 110), (30, 60, 255, 255), 2)  # a blue shadow boundary
    seg = segment(img, gap_close=0)
    assert _n_inside(seg, [(60, 50), (60, 150)]) == 2
    colored = colored_line_mask(img, seg.ink)
    assert colored[60, 100] and not colored[10, 50]


def test_colored_lines_fill_or_keep():
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 2)
    cv2.line(img, (100, 10), (100, 110), (30, 60, 255, 255), 2)
    seg = segment(img, gap_close=0, min_region=1)
    paint = paint_layer(seg, np.full(seg.count + 1, 0xFF20C040, np.int64), alpha=False)
    filled = render(seg, paint, img, "keep", "fill")
    kept = render(seg, paint, img, "keep", "keep")
    assert tuple(filled[60, 100]) == (0x20, 0xC0, 0x40)
    r, g, b = (int(v) for v in kept[60, 100])
    assert b > 200 and r < 80  # the blue line is back on top
    assert tuple(filled[10, 50]) == (0, 0, 0)  # black lines stay


def test_antialiased_and_alpha_lines():
    frame = make_frame(180, 320, dots=0)
    assert len(np.unique(frame.lineart[..., 0])) > 10  # really anti-aliased
    seg = segment(frame.lineart, gap_close=2)
    ids = frame.regions
    # No leak: every region of ours with 150+ px lies (>= 90 %) inside one generated shape, and the shapes
    # are found (about as many big regions as big shapes).
    n = ids.max() + 1
    inter = np.bincount(ids.ravel() * (seg.count + 1) + seg.labels.ravel(), minlength=n * (seg.count + 1))
    inter = inter.reshape(n, seg.count + 1)[:, 1:]
    big = inter.sum(axis=0) >= 150
    assert (inter[:, big].max(axis=0) >= 0.9 * inter[:, big].sum(axis=0)).all()
    assert big.sum() >= (np.bincount(ids.ravel()) >= 300).sum()
    # The same drawing with lines in alpha (transparent paper) segments the same way.
    alpha = np.zeros_like(frame.lineart)
    alpha[..., 3] = 255 - frame.lineart[..., :3].min(axis=-1)
    seg_a = segment(alpha, gap_close=2)
    assert seg_a.count == seg.count


def test_tiny_regions_merge_or_stay():
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 1)
    cv2.circle(img, (60, 60), 2, (0, 0, 0, 255), 1)  # a speck of ink enclosing a few pixels (scan noise)
    cv2.circle(img, (140, 60), 8, (0, 0, 0, 255), 1)  # ~150 px
    kept = segment(img, gap_close=0, min_region=1)
    merged = segment(img, gap_close=0, min_region=12)
    assert kept.count == merged.count + 1
    assert merged.labels[60, 60] == 0 and kept.labels[60, 60] > 0
    assert merged.labels[60, 140] > 0


def test_tiny_enclosure_of_the_line_network_stays():
    # The same few-pixel enclosure, but drawn by the lines (hanging off the frame's border like an eye
    # highlight off an outline): a real region even with min_region=12, unlike an isolated ink speck.
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 1)
    cv2.line(img, (60, 10), (60, 57), (0, 0, 0, 255), 1)
    cv2.circle(img, (60, 60), 2, (0, 0, 0, 255), 1)
    cv2.circle(img, (140, 60), 2, (0, 0, 0, 255), 1)  # an isolated speck: still merged
    seg = segment(img, gap_close=0, min_region=12)
    assert seg.labels[60, 60] > 0 and seg.areas[seg.labels[60, 60]] < 12
    assert seg.labels[60, 140] == 0


def test_dominant_colors_and_reference_palette():
    labels = np.array([[1, 1, 2], [1, 2, 2]], np.int32)
    img = np.zeros((2, 3, 3), np.uint8)
    img[labels == 1] = (255, 0, 0)
    img[0, 2] = (0, 0, 255)
    colors, share = dominant_colors(labels, 2, img)
    assert colors[1] == 0xFFFF0000 and colors[2] == 0xFF000000 and abs(share[2] - 2 / 3) < 1e-6
    ref = np.zeros((10, 10, 3), np.uint8)
    ref[:7] = (200, 100, 50)
    assert reference_palette(ref)[0] == pack_color(np.array([[200, 100, 50]], np.uint8))[0]


def test_deep_colors_are_the_16_bit_colors_behind_each_regions_8_bit_color():
    labels = np.array([[1, 1, 1, 2], [1, 2, 2, 2]], np.int32)
    img = np.zeros((2, 4, 4), np.uint16)
    img[..., 3] = 65535
    img[labels == 1, :3] = (0x1234, 0x12F0, 0xFF80)  # rounds to (18, 19, 254)
    img[labels == 2, :3] = (0x1240, 0x12F0, 0xFF80)  # a different 16-bit color, the same 8-bit one
    img[0, 3, :3] = (0x0101, 0x0101, 0x0101)  # another 8-bit color: outvoted in region 2 at 8 bits
    img[0, 0, 3] = 0  # transparent, whatever its RGB
    img8 = (img.astype(np.int64) * 255 + 32767) // 65535
    img8 = img8.astype(np.uint8)
    colors, _ = dominant_colors(labels, 2, img8)
    deep = unpack_color16(deep_colors(labels, colors, img8, img, np.ones(labels.shape, bool)))
    assert deep[1].tolist() == [0x1234, 0x12F0, 0xFF80, 65535]
    assert deep[2].tolist() == [0x1240, 0x12F0, 0xFF80, 65535]
    assert deep[0].tolist() == [0, 0, 0, 0]
    assert pack_color16(img)[0, 0] == 0  # alpha 0 packs to 0, as at 8 bits
    assert unpack_color16(pack_color16(img[1]))[1].tolist() == img[1, 1].tolist()
    wide = unpack_color16(widen(np.array([0xFF102030, 0], np.int64)))
    assert wide.tolist() == [[0x1010, 0x2020, 0x3030, 0xFFFF], [0, 0, 0, 0]]


def test_neighbour_regions_prefer_the_same_owner():
    img = _blank()
    cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 1)
    cv2.line(img, (100, 10), (100, 110), (0, 0, 0, 255), 1)  # left | right
    cv2.line(img, (10, 60), (100, 60), (0, 0, 0, 255), 1)  # top-left / bottom-left
    cv2.rectangle(img, (101, 40), (103, 44), (0, 0, 0, 255), 1)  # a tiny pocket off the middle line
    seg = segment(img, gap_close=0, min_region=1)
    pocket, left, right = seg.labels[42, 102], seg.labels[30, 50], seg.labels[30, 150]
    assert seg.areas[pocket] < 12
    ask = np.zeros(seg.count + 1, bool)
    ask[pocket] = True
    assert neighbour_regions(seg, ask)[pocket] == right  # the right side surrounds the pocket
    owner = np.zeros(seg.count + 1, np.int16)
    owner[[pocket, left]] = 1
    assert neighbour_regions(seg, ask, owner=owner)[pocket] == left
    owner[left] = 2  # no neighbour of the same owner: the most common one, as without owners
    assert neighbour_regions(seg, ask, owner=owner)[pocket] == right


def test_signatures_tell_repeats_near_repeats_and_other_drawings():
    from colorize.regions.match import signature, similarity

    def sig(frame):
        return signature(segment(frame.lineart).ink)

    a = make_frame(120, 200, dots=4)
    same = make_frame(120, 200, dots=4)
    rescan = make_frame(120, 200, shift=(1.0, -1.0), dots=4)
    other = make_frame(120, 200, shift=(20.0, 6.0), angle=8.0, dots=4)
    assert sig(a).digest == sig(same).digest and similarity(sig(a), sig(same)) == 1.0
    assert sig(a).digest != sig(rescan).digest
    assert similarity(sig(a), sig(rescan)) > 0.97 > similarity(sig(a), sig(other))


def test_region_matching_prefers_the_same_place_and_shape():
    from colorize.regions.match import match_regions
    from colorize.regions.palette import NO_COLOR

    # Two boxes; in the next frame the right one is cut by a new line (occluded in part) and its votes
    # are weak: position, shape and neighbours still point at the right box of the previous frame.
    prev_img = _two_boxes(gap=0)
    cur_img = _two_boxes(gap=0)
    cv2.line(cur_img, (100, 40), (190, 40), (0, 0, 0, 255), 2)
    prev, cur = segment(prev_img, gap_close=0), segment(cur_img, gap_close=0)
    left_p, right_p = prev.labels[60, 50], prev.labels[60, 150]
    prev_colors = np.full(prev.count + 1, NO_COLOR, np.int64)
    prev_colors[left_p], prev_colors[right_p] = 0xFF0000FF, 0xFF00FF00
    prev_colors[prev.labels[5, 5]] = 0xFFFFFFFF
    weak = np.zeros(cur.count + 1, bool)
    lower_right = cur.labels[80, 150]
    weak[lower_right] = True
    still = Correspondence(np.zeros((120, 200, 2), np.float32), (120, 200))
    ids, conf, found = match_regions(
        cur,
        prev,
        prev_colors,
        np.eye(2, 3),
        weak,
        np.full(cur.count + 1, NO_COLOR),
        np.zeros(cur.count + 1, int),
        still,
    )
    assert ids.tolist() == [lower_right] and found.tolist() == [right_p] and conf[0] >= 0.5


def test_a_part_that_entered_the_frame_takes_the_colour_where_it_left_the_edge():
    """The drawing pans down 40 px (and turns) and its lines go on beyond the top edge: the channel cut
    by the edge is now about 50 rows tall, 40 of them from beyond the previous frame. Its pixels from
    beyond the edge vote for the region at the edge where the drawing's motion says they left it (the
    flow only extrapolates there), so it keeps the channel's colour, not unresolved nor a neighbour's,
    accepted; panned straight, only a fifth of it was in the frame before, so the colour is a guess that QA
    marks. Regions that never left the frame stay confident."""
    from colorize.flow import correspondence
    from colorize.regions.palette import NO_COLOR
    from colorize.regions.propagate import propagate

    before = cut_by_the_top_edge()
    h, w = before.shape[:2]
    prev = segment(before)
    colors = np.arange(prev.count + 1, dtype=np.int64) * 1000  # a colour of its own per region
    colors[0] = NO_COLOR  # the lines
    for angle in (0.0, 3.0, 6.0):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (0, 40)
        after = cv2.warpAffine(before, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        cur = segment(after)
        where, motion = correspondence(cur.ink, prev.ink, work=512)
        assert motion is not None  # a pan: the global motion is known
        got, conf, _ = propagate(cur, prev, colors, where, motion=motion.affine)

        (cx, cy), (ix, iy) = np.rint(m @ (102, 5, 1.0)).astype(int), np.rint(m @ (120, 90, 1.0)).astype(int)
        channel_before, channel_after = prev.labels[5, 102], cur.labels[cy, cx]
        assert cur.areas[channel_after] > 3 * 45
        assert got[channel_after] == colors[channel_before]
        assert conf[channel_after] >= 0.5  # accepted (match_threshold) ...
        if angle == 0.0:
            assert conf[channel_after] < 0.75  # ... and marked low (LOW_CONFIDENCE)
        inside_before, inside_after = prev.labels[90, 120], cur.labels[iy, ix]  # a circle's inside
        assert got[inside_after] == colors[inside_before] and conf[inside_after] > 0.95


def test_beyond_the_edge_the_drawing_s_motion_places_the_pixels_not_the_flow():
    """Beyond the previous frame's edge the flow has no ink to follow and only extrapolates (here 3 px
    off to the side, onto the line and the region beside the channel): the pixels that came from there
    vote where the drawing's motion places them, so the channel keeps its colour."""
    from colorize.flow import Correspondence
    from colorize.regions.palette import NO_COLOR
    from colorize.regions.propagate import propagate

    before = cut_by_the_top_edge()
    h, w = before.shape[:2]
    after = np.vstack([np.repeat(before[:1], 40, axis=0), before[:-40]])  # down 40 px, edge replicated
    prev, cur = segment(before), segment(after)
    colors = np.arange(prev.count + 1, dtype=np.int64) * 1000
    colors[0] = NO_COLOR
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 1] = -40  # the move, right where there is ink to follow
    flow[:40, :, 0] = 3  # beyond the edge: extrapolated off to the side
    where = Correspondence(flow, (h, w))
    channel_before, channel_after = prev.labels[5, 102], cur.labels[20, 102]
    got, conf, _ = propagate(cur, prev, colors, where, motion=np.array([[1.0, 0, 0], [0, 1, -40]]))
    assert got[channel_after] == colors[channel_before] and conf[channel_after] >= 0.5
    got, conf, _ = propagate(cur, prev, colors, where)  # without the motion: the flow's extrapolation
    assert got[channel_after] != colors[channel_before] or conf[channel_after] < 0.5


def test_a_region_that_goes_on_beyond_the_edge_is_confident_where_it_left_the_frame_the_same():
    """The drawing pans down 20 px: the channel cut by the top edge is now 30 rows tall, its first 20 from
    beyond the previous frame. Its 10 rows inside vote for the channel, and where the drawing's motion
    says the other 20 left the frame lies the channel too: nothing speaks against it, so it is confident
    (not marked for a painter). When the motion says they left the frame elsewhere (beside the channel),
    the colour holds (the votes inside decide) but the confidence is low."""
    from colorize.flow import Correspondence
    from colorize.regions.palette import NO_COLOR
    from colorize.regions.propagate import propagate

    before = cut_by_the_top_edge()
    h, w = before.shape[:2]
    after = np.vstack([np.repeat(before[:1], 20, axis=0), before[:-20]])
    prev, cur = segment(before), segment(after)
    colors = np.arange(prev.count + 1, dtype=np.int64) * 1000
    colors[0] = NO_COLOR
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 1] = -20
    where = Correspondence(flow, (h, w))
    channel_before, channel_after = prev.labels[5, 102], cur.labels[15, 102]
    assert cur.areas[channel_after] >= 3 * 29  # 10 rows seen before, 20 from beyond the edge
    got, conf, _ = propagate(cur, prev, colors, where, motion=np.array([[1.0, 0, 0], [0, 1, -20]]))
    assert got[channel_after] == colors[channel_before] and conf[channel_after] >= 0.95
    aside = np.array([[1.0, 0, 6], [0, 1, -20]])  # beyond the edge, 6 px to the right of the channel
    got, conf, _ = propagate(cur, prev, colors, where, motion=aside)
    assert got[channel_after] == colors[channel_before] and 0.5 <= conf[channel_after] < 0.75


def test_merged_regions_tell_a_gap_that_opens_from_a_line_taken_away():
    def merges(before: np.ndarray, after: np.ndarray):
        a, b = segment(before), segment(after)
        return merged_regions(b, a, *landing_pairs(b, a, correspondence(b.ink, a.ink)[0].full()))

    def drawing(gap: int) -> np.ndarray:  # two boxes with a few buttons (something for flow to hold on to)
        img = _two_boxes(gap)
        for x, y, r in ((45, 35, 8), (150, 85, 10), (70, 90, 5), (160, 30, 6)):
            cv2.circle(img, (x, y), r, (0, 0, 0, 255), 2)
        return img

    closed, open12 = drawing(0), drawing(12)  # a 12-px gap: wider than gap_close closes
    assert merges(closed, closed) == []
    found = merges(closed, open12)
    assert len(found) == 1
    x, y = found[0].at
    assert 96 <= x <= 106 and 52 <= y <= 68  # in the gap
    # Drawn a few pixels further (the next drawing moved): still the gap.
    moved = np.full_like(open12, 255)
    moved[4:, 6:] = open12[:-4, :-6]
    found = merges(closed, moved)
    assert len(found) == 1 and 102 <= found[0].at[0] <= 112
    # The wall taken away altogether is the drawing's change, not a gap; so is a gap that closes.
    no_wall = drawing(0)
    no_wall[12:109, 98:104] = 255
    assert merges(closed, no_wall) == []
    assert merges(open12, closed) == []


def _cut(before: np.ndarray, after: np.ndarray, colors: dict[tuple[int, int], int]):
    """(`after` segmented, `after` cut against `before` or None): `colors` paints the regions of `before`
    at the (x, y) points given (the others unknown)."""
    a, b = segment(before), segment(after)
    pairs, src = landing_pairs(b, a, correspondence(b.ink, a.ink)[0].full())
    painted = np.full(a.count + 1, -1, np.int64)
    for (x, y), c in colors.items():
        painted[a.labels[y, x]] = c
    return b, split_joined(b, src, joined_parts(b, a, pairs, painted, 24), 12)


def _buttons(img: np.ndarray, dx: int = 0) -> np.ndarray:
    for x, y, r in (
        (45, 35, 8),
        (150, 85, 10),
        (70, 90, 5),
        (160, 30, 6),
    ):  # something for flow to hold on to
        cv2.circle(img, (x + dx, y), r, (0, 0, 0, 255), 2)
    return img


def test_a_region_that_takes_in_two_painted_areas_whole_is_cut_where_the_line_was():
    # Two boxes painted differently; the next drawing, moved 3 px right, lost most of the wall between them.
    before = _buttons(_two_boxes(0))
    after = np.full_like(before, 255)
    after[:, 3:] = _buttons(_two_boxes(0))[:, :-3]
    after[20:100, 100:107] = 255
    left, right = (30, 60), (130, 60)
    seg, cut = _cut(before, after, {left: 1, right: 2, (45, 35): 3, (150, 85): 3, (70, 90): 3, (160, 30): 3})
    assert seg.labels[60, 33] == seg.labels[60, 133]  # joined as segmented
    assert cut is not None and cut.count == seg.count + 1
    assert cut.labels[60, 33] != cut.labels[60, 133] and cut.labels[60, 33] > 0 and cut.labels[60, 133] > 0
    cols = np.flatnonzero((cut.labels[60] == 0) & (cut.ink[60] == 0))  # the cut: paper, label 0
    assert len(cols) >= 1 and all(98 <= x <= 109 for x in cols)  # where the wall was (moved 3 px)
    assert cut.areas.sum() == cut.labels.size and (np.bincount(cut.labels.ravel()) == cut.areas).all()
    # The same areas painted alike: nothing to keep apart, no cut.
    assert _cut(before, after, {left: 1, right: 1})[1] is None


def test_a_part_that_moved_away_leaves_no_ghost_in_the_sky():
    # A hand (a box) in the sky moves 60 px right: where it was is sky now, but the hand goes on in its own
    # region, so the sky is not its one successor and is not cut.
    # (The flow does not follow so small a part that far: its old place lands in the old hand, taken in
    # whole by the sky; only the drawing, which outlines no hand there, tells.)
    def drawing(x: int) -> np.ndarray:
        img = _blank()
        cv2.rectangle(img, (10, 10), (190, 110), (0, 0, 0, 255), 2)
        cv2.rectangle(img, (x, 40), (x + 30, 70), (0, 0, 0, 255), 2)
        for xx, y, r in ((30, 95, 5), (170, 95, 6)):
            cv2.circle(img, (xx, y), r, (0, 0, 0, 255), 2)
        return img

    for x in (60, 80, 100):
        seg, cut = _cut(drawing(40), drawing(x), {(20, 20): 1, (55, 55): 2})
        assert cut is None, f"moved to x={x}: the sky was cut"


def test_a_piece_of_a_cut_region_left_without_a_color_takes_its_largest_colored_piece_s():
    from colorize.engines.flat_joins import rejoin
    from colorize.regions.palette import NO_COLOR
    from colorize.regions.segment import Segmentation

    # One region (raw label 1) cut into three pieces (1: 60 px, 2: 30 px, 3: 10 px); region 2 of raw is whole.
    raw_labels = np.zeros((10, 12), np.int32)
    raw_labels[:, :10], raw_labels[:, 10:] = 1, 2
    cut_labels = raw_labels.copy()
    cut_labels[:, 6:9], cut_labels[:, 9] = 2, 3
    cut_labels[:, 10:] = 4
    ink = np.zeros((10, 12), np.uint8)
    raw = Segmentation(raw_labels, 2, np.bincount(raw_labels.ravel(), minlength=3), ink)
    seg = Segmentation(cut_labels, 4, np.bincount(cut_labels.ravel(), minlength=5), ink)
    colors = np.array([NO_COLOR, 0xFF112233, NO_COLOR, 0xFF445566, NO_COLOR], np.int64)
    conf = np.array([0, 0.9, 0, 0.95, 0], np.float32)
    origin = np.array([0, 7, 0, 8, 0], np.int64)
    took = rejoin(seg, raw, colors, conf, origin, np.float32(0.7))
    assert took.tolist() == [2]  # piece 2 takes piece 1's color (the largest colored piece of its region)
    assert colors[2] == 0xFF112233 and conf[2] == np.float32(0.7) and origin[2] == 7
    assert colors[4] == NO_COLOR  # region 2 was not cut: left to the engine's fallbacks
    assert colors[3] == 0xFF445566  # a colored piece keeps its own color
