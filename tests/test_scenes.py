"""The camera's real scene (issue 16): fruits anywhere at any size, digits on real paper, and
"nothing there", on footage built here from held-out test data (tests/scene_sets.py).

The fast tests check the camera steps alone (the locator's box, the ink step's answers); the
slow ones run the frame pipeline with the quick models and assert, on the ``label`` a user sees
with the runner's defaults for the source, the issue's targets where they are met (empty scenes
<= 2 % called a class, real subjects <= 1 % called nothing, smoothing lets go within 2 frames)
and regression guards just under what is measured where they are not yet (see each assert).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.camera import flatten_light, parse_roi, roi_for
from device.footage import (
    digit_on_paper,
    digits_on_real_paper,
    empty_scene,
    fruit_on_surface,
    page_without_digit,
)
from device.ink import (
    FIND_SIDE,
    WORK_SIDE,
    ZOOM_MAX_DEPTH,
    ZOOM_SIDE,
    digit_groups,
    find_digit,
    fine_depth,
    ink_strokes,
    pen_mask,
    read_digit,
    zoom_window,
)
from device.locate import locate
from device.pipeline import FramePipeline
from device.result import BLANK_FRAME, NO_INK, NO_SUBJECT, NOTHING
from tests import scene_sets
from train.data import load_dataset

FULL = (0, 0, 640, 480)


def overlap(a, b) -> float:
    """Intersection over the smaller box's area (a square crop is bigger than a long fruit)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / min(aw * ah, bw * bh)


@pytest.fixture(scope="module")
def fruit_photos(data_dir):
    labels = sorted(p.name for p in (data_dir / "fruits" / "Test").iterdir() if p.is_dir())
    return scene_sets.fruit_test_photos(data_dir, labels, 4, seed=3)


@pytest.fixture(scope="module")
def mnist(data_dir):
    data = load_dataset("digits", data_dir, 28)
    return data.x_test[:, :, :, 0], data.y_test


# --- the locator alone ---------------------------------------------------------------------

def test_locator_finds_the_fruit_anywhere_on_every_surface(fruit_photos):
    photos, _ = fruit_photos
    rng = np.random.default_rng(1)
    hits = []
    for index, photo in enumerate(photos):
        kind = scene_sets.SURFACES[index % len(scene_sets.SURFACES)]
        frame, truth = fruit_on_surface(photo, rng, kind)
        found = locate(frame, FULL).box
        box = None if found is None else (found[0], found[1], found[2], found[2])
        hits.append(box is not None and overlap(box, truth) > 0.8
                    and found[2] < 1.6 * max(truth[2:]) + 16)
    print(f"locator on {len(hits)} scenes: {np.mean(hits):.3f} framed")
    assert np.mean(hits) >= 0.95


def framed_by_its_card(photo: np.ndarray, rng: np.random.Generator, sizes: tuple[int, int]
                       ) -> bool:
    """Hold ``photo`` up in a busy scene (its longer side ``sizes`` px, centred): is the
    locator's box its card (the photo's white studio background)?"""
    from device.footage import photo_in_scene

    side = int(rng.integers(sizes[0], sizes[1] + 1))
    frame = photo_in_scene(photo, rng, side=side)
    h, w = photo.shape[:2]
    card_w, card_h = int(w * side / max(h, w)), int(h * side / max(h, w))
    card = ((640 - card_w) // 2, (480 - card_h) // 2, card_w, card_h)
    found = locate(frame, FULL).box
    return (found is not None and overlap((*found, found[2]), card) > 0.8
            and found[2] < 1.1 * max(card_w, card_h))


def test_a_photo_held_up_in_a_busy_scene_is_framed_by_its_white_card(fruit_photos):
    """The photo's white studio background is a card in the scene: the model's box is the card
    (measured: 40 of 40 framed; 38 of 40 before the card pieces were joined, 1 of 40 without
    the card step, whose boxes on this busy background took in the patches beside the card, or
    a piece of it)."""
    photos, _ = fruit_photos
    rng = np.random.default_rng(4)
    framed = [framed_by_its_card(photo, rng, (200, 300)) for photo in photos]
    print(f"cards framed: {np.mean(framed):.3f} of {len(framed)}")
    assert np.mean(framed) >= 0.9


def test_a_card_the_fruit_cuts_into_pieces_is_framed_whole(data_dir):
    """Dark apples that fill their photo, held up small (120-300 px): the fruit reaches the
    card's edges and cuts its white margin into strips, and the subject's box is often a piece
    (a dark half, a patch beside the card). The card is still the frame: its pieces are joined
    and looked for at finer detail (measured: 16 of 24 framed before, 20 of 24 now)."""
    photos = sorted((data_dir / "fruits" / "Test" / "apple_red_delicios_1").glob("*.jpg"))
    rng = np.random.default_rng(12)
    framed = [framed_by_its_card(cv2.imread(str(path)), rng, (120, 300))
              for path in photos[::max(1, len(photos) // 24)][:24]]
    print(f"cut cards framed: {sum(framed)} of {len(framed)}")
    assert np.mean(framed) >= 0.8


def test_a_dark_fruit_on_a_table_of_its_own_hue_is_framed_whole(data_dir):
    """A dark red apple on brown wood: its colours are close to the grain's dark stripes, but
    not the same. With colours matched 16-32 levels wide in lightness the whole body passed for
    the table and only the highlight was framed (measured: 12 of 16 framed; 15 of 16 now)."""
    photos = sorted((data_dir / "fruits" / "Test" / "apple_red_delicios_1").glob("*.jpg"))
    rng = np.random.default_rng(11)
    framed = []
    for path in photos[::max(1, len(photos) // 16)][:16]:
        frame, truth = fruit_on_surface(cv2.imread(str(path)), rng, "wood",
                                        height_range=(0.3, 0.55))
        found = locate(frame, FULL).box
        box = None if found is None else (found[0], found[1], found[2], found[2])
        framed.append(box is not None and overlap(box, truth) > 0.8
                      and found[2] >= 0.8 * max(truth[2:]))
    print(f"dark apples on wood framed: {np.mean(framed):.3f} of {len(framed)}")
    assert np.mean(framed) >= 0.9


@pytest.mark.parametrize("kind", ["plain", "wood", "wall", "cloth", "page"])
def test_locator_finds_nothing_on_empty_surfaces(kind):
    rng = np.random.default_rng(2)
    found = [locate(empty_scene(rng, kind), FULL).box for _ in range(10)]
    assert sum(box is not None for box in found) <= 1, found


def test_roi_bounds_the_search(fruit_photos):
    photos, _ = fruit_photos
    frame, truth = fruit_on_surface(photos[0], np.random.default_rng(4), "wood",
                                    height_range=(0.2, 0.25))
    x, y, w, h = truth
    bounds = (max(0, x - 40), max(0, y - 40), min(640 - max(0, x - 40), w + 80),
              min(480 - max(0, y - 40), h + 80))
    box = locate(frame, bounds).box
    assert box is not None
    assert bounds[0] <= box[0] and box[0] + box[2] <= bounds[0] + bounds[2]
    assert bounds[1] <= box[1] and box[1] + box[2] <= bounds[1] + bounds[3]
    far = (0, 0, 100, 100) if x > 200 or y > 200 else (500, 340, 140, 140)
    assert locate(frame, far).box is None


# --- the ink step alone --------------------------------------------------------------------

def centre_box(frame):
    from device.camera import roi_for

    return roi_for(frame.shape, 0.6).cut(frame)


@pytest.mark.parametrize("paper", ["plain", "ruled", "squared"])
def test_ink_step_answers_nothing_for_blank_and_printed_paper(paper):
    rng = np.random.default_rng(5)
    read = [read_digit(centre_box(page_without_digit(rng, paper, bool(i % 2)))).patch is not None
            for i in range(12)]
    # Known limit: printed lines darkened by a deep shadow can break into short dashes that
    # pass for ink (about 1 page in 12 of the shadowed ruled ones); the classifier then
    # mostly says unsure.
    assert sum(read) <= 1, read


def test_wood_grain_in_many_pieces_is_no_digit():
    """A pale, nearly neutral wood table passes for paper, and through the webcam box its
    grain breaks into 20-70 short strokes, a cluster of which was read as a digit (an 8, a 4).
    No writing comes in that many pieces; 200 tables, the box and the whole frame each."""
    read = 0
    for seed in range(200):
        frame = empty_scene(np.random.default_rng(seed), "wood")
        read += sum(read_digit(view).patch is not None for view in (frame, centre_box(frame)))
    assert read <= 12, read  # 19 before, 10 now: a few pieces of grain still pass


def test_ink_step_reads_the_digit_nearest_the_centre_and_counts_the_others(mnist):
    x, _ = mnist
    rng = np.random.default_rng(6)
    for others in (1, 2):
        frame = digits_on_real_paper([x[0], *x[1:1 + others]], rng, pen="blue", paper="squared",
                                     stroke=3, shadow=False, max_tilt=5)
        reading = read_digit(frame)
        assert reading.patch is not None and reading.others == others


def test_a_fine_pen_in_a_whole_frame_is_read_again_around_its_digit(mnist):
    """Issue 16: a 640x480 frame shrinks 6 times to find the digit; a fine pen's patch is read
    again from a square twice the digit's size around it (the other digits counted on the
    whole frame), and a thick digit is read once."""
    x, _ = mnist
    rng = np.random.default_rng(8)
    frame = digits_on_real_paper([x[3], x[4]], rng, pen="black", paper="ruled", stroke=1.5,
                                 shadow=True, max_tilt=10)
    gray = cv2.extractChannel(frame, 1)
    found = find_digit(gray, WORK_SIDE)
    assert found.digit is not None and found.factor == 6
    assert fine_depth(found) <= ZOOM_MAX_DEPTH
    rows, cols = zoom_window(found, gray.shape)
    ys, xs = np.nonzero(found.digit)
    tall = (ys.max() + 1 - ys.min()) * found.factor
    wide = (xs.max() + 1 - xs.min()) * found.factor
    side = max(rows.stop - rows.start, cols.stop - cols.start)
    assert abs(side - ZOOM_SIDE * max(tall, wide)) <= 2
    assert rows.start <= ys.min() * found.factor and (ys.max() + 1) * found.factor <= rows.stop
    assert cols.start <= xs.min() * found.factor and (xs.max() + 1) * found.factor <= cols.stop
    again = find_digit(gray[rows, cols], FIND_SIDE)
    assert again.factor < found.factor
    reading = read_digit(frame)
    assert reading.others == 1
    assert np.array_equal(reading.patch, again.patch())
    assert not np.array_equal(reading.patch, found.patch())
    thick = digit_on_paper(x[3], rng)
    once = find_digit(cv2.extractChannel(thick, 1), WORK_SIDE)
    assert fine_depth(once) > ZOOM_MAX_DEPTH
    assert np.array_equal(read_digit(thick).patch, once.patch())


def test_a_fine_pen_on_printed_paper_stays_one_digit(data_dir):
    """A 1 px pen is no darker than the printed lines where it crosses them. Cut at every
    crossing, a digit fell apart (a 6 into its stem and its loop: a 1 read, one more digit
    counted); a shadow edge spilt false ink into the shade. On the harder paper (the whole
    frame, as an image folder reads it) the digits in view were counted right in 0.923 of the
    frames before (fine pens: 0.83), then 0.98 (0.99); since a fine pen is followed across its
    fades (more digits read right), 0.973 (0.966): a stroke now and then carries on into a
    ruled line's dashes in a deep shadow, which count as one more digit."""
    data = load_dataset("digits", data_dir, 28)
    x, y = scene_sets.seeded_digits(data.x_test, data.y_test, 300)
    neighbours, _ = scene_sets.seeded_digits(data.x_test, data.y_test, 200, seed=99)
    scenes = scene_sets.digits_hard_paper(x, y, neighbours=neighbours)
    counted = np.array([read_digit(frame).others == tags["others"]
                        for frame, tags in zip(scenes.frames, scenes.tags)])
    fine = np.array([tags["stroke"] <= 2 for tags in scenes.tags])
    print(f"digits in view counted right: {counted.mean():.3f} (fine pens "
          f"{counted[fine].mean():.3f} of {fine.sum()})")
    assert counted.mean() >= 0.96 and counted[fine].mean() >= 0.95


def test_a_ruled_page_with_a_margin_line_is_no_digit():
    """The margin's red line is one long straight line, not a family, and in the green channel
    it is as dark as a pen: cut where the ruled lines cross it, its pieces passed for 1s
    (3 of these 24 whole sheets were read as a digit before, 1 now)."""
    rng = np.random.default_rng(13)
    read = [read_digit(page_without_digit(rng, "ruled", bool(i % 2))).patch is not None
            for i in range(24)]
    assert sum(read) <= 1, read


def test_ink_step_keeps_a_digit_touching_the_box_edge(mnist):
    x, _ = mnist
    rng = np.random.default_rng(7)
    frame = digits_on_real_paper([x[3]], rng, pen="black", paper="squared", stroke=4,
                                 touch_edge=True)
    reading = read_digit(centre_box(frame))
    assert reading.patch is not None and reading.others == 0
    # The patch is a whole digit: its ink spans most of MNIST's 20 px box.
    rows = np.flatnonzero(reading.patch[:, :, 0].max(axis=1) > 60)
    assert np.ptp(rows) >= 16


def test_paper_that_darkens_towards_the_edge_is_not_ink():
    """A shadow falling off the box's edge: OpenCV's closing ignores what lies outside the image
    (and a borderType), so the paper's estimate there stayed at the lit level a disc-width
    inside and the shaded edge read 0.6 "ink" (blank pages in a shadowed corner called a 0 or
    a 1: 1.7-3.0 % of the empty pages, 0.3-1.3 % now)."""
    x = np.arange(106, dtype=np.float32)
    page = np.tile(80 + 140 / (1 + np.exp(-(x - 6) / 2)), (80, 1)).astype(np.uint8)
    assert flatten_light(page).max() < 0.05
    assert flatten_light(page.T.copy()).max() < 0.05


def test_a_fine_pen_that_fades_between_its_seeds_is_followed():
    """A 1 px pen in a shadow is pen-dark only here and there (0.13-0.2 inkness elsewhere, under
    the seed threshold): two steps of growth from the seeds kept a 6's stem and lost its loop."""
    inkness = np.zeros((80, 106), np.float32)
    ring = np.zeros_like(inkness, dtype=np.uint8)
    cv2.ellipse(ring, (53, 40), (8, 12), 0, 0, 360, 1, 1)
    inkness[ring > 0] = 0.17
    ys, xs = np.mgrid[0:80, 0:106]
    angle = np.degrees(np.arctan2(ys - 40, xs - 53)) % 60
    seeds = ring * (angle < 12)  # six short arcs of the ring are dark enough to seed
    inkness[seeds > 0] = 0.35
    assert seeds.sum() < ring.sum() / 3
    mask = pen_mask(inkness)
    assert mask[ring > 0].mean() > 0.9
    assert mask[ring == 0].sum() < ring.sum()  # no spread onto paper


def test_digits_side_by_side_stay_apart_and_a_digits_pieces_join():
    """Strokes closer than a fifth of a digit's height were one digit, so two digits written close
    were read as one (an 8 and a 2 as a 2). Two pieces of full height side by side are two
    digits now; a short piece (a 5's flag) still joins its digit; a 1 beside an 8 counts though
    it has a quarter of its ink."""
    strokes = np.zeros((80, 106), np.uint8)
    cv2.ellipse(strokes, (44, 40), (7, 12), 0, 0, 360, 1, 1)
    cv2.ellipse(strokes, (62, 40), (7, 12), 0, 0, 360, 1, 1)  # 3 px apart
    digit, others = digit_groups(strokes)
    assert others == 1 and digit[:, :52].sum() > 0 and digit[:, 52:].sum() == 0

    five = np.zeros((80, 106), np.uint8)
    cv2.ellipse(five, (53, 46), (8, 8), 0, -100, 160, 1, 1)  # the body
    cv2.line(five, (50, 30), (50, 36), 1, 1)  # its stem
    cv2.line(five, (53, 28), (62, 28), 1, 1)  # the flag, a gap of 3 px above the stem
    digit, others = digit_groups(five)
    assert others == 0 and digit[28, 53:63].all()

    one_and_eight = np.zeros((80, 106), np.uint8)
    cv2.ellipse(one_and_eight, (53, 34), (6, 6), 0, 0, 360, 1, 1)
    cv2.ellipse(one_and_eight, (53, 47), (7, 7), 0, 0, 360, 1, 1)
    cv2.line(one_and_eight, (75, 28), (75, 54), 1, 1)
    assert digit_groups(one_and_eight)[1] == 1


def test_a_flag_written_with_the_pen_lifted_joins_its_digit_but_a_second_digit_does_not():
    """A 5's flag drawn after lifting the pen sits further from the body than a stroke's fades
    leave (here 9 px, a third of the digit's height): read alone it was the digit nearest the
    centre, a bar read as a 1 or a 2. A piece shorter than a digit joins across twice the
    usual gap; two digits of full height at that distance stay two."""
    five = np.zeros((80, 106), np.uint8)
    cv2.ellipse(five, (53, 46), (8, 8), 0, -150, 160, 1, 1)  # the body, 27 px tall with ...
    cv2.line(five, (46, 28), (46, 42), 1, 1)  # ... its stem
    cv2.line(five, (46, 19), (62, 19), 1, 1)  # the flag, 9 px above the stem
    digit, others = digit_groups(five)
    assert others == 0 and digit[19, 46:63].all() and digit[46:54, 45:62].any()

    one_and_eight = np.zeros((80, 106), np.uint8)
    cv2.ellipse(one_and_eight, (53, 34), (6, 6), 0, 0, 360, 1, 1)
    cv2.ellipse(one_and_eight, (53, 47), (7, 7), 0, 0, 360, 1, 1)
    cv2.line(one_and_eight, (69, 28), (69, 54), 1, 1)  # 9 px right of the 8
    assert digit_groups(one_and_eight)[1] == 1


def test_a_blotted_digit_thicker_than_the_flattening_disc_stays_ink(mnist):
    """A thick pen's 6 with its loop filled in (MNIST has many) fills the webcam box's work
    image: the blot is wider than the light flattening's disc, so its middle was taken for
    paper and came out grey in the patch (the 6 read as a 1, ``unsure``; a blotted 5 as a 3).
    Flattened again with a disc wider than the ink, the patch keeps MNIST's solid ink solid:
    on the first footage's 58 digits with the most solid ink, the worst five patches held
    0.34-0.67 of full ink over it, now 0.74-0.83."""
    x, y = mnist
    digits, labels = scene_sets.seeded_digits(x, y, 300)
    scenes = scene_sets.digits_plain_footage(digits, labels)
    solid_ink = []
    for digit, frame in zip(digits, scenes.frames):
        solid = digit >= 230
        if solid.sum() >= 95:  # a blotted digit
            region = roi_for(frame.shape, parse_roi("0.6")).cut(frame)  # the webcam box
            patch = read_digit(region).patch[:, :, 0].astype(np.float32) / 255.0
            solid_ink.append(float(patch[solid].mean()))
    print(f"solid ink in the patch, worst five: {np.round(sorted(solid_ink)[:5], 3)}")
    assert len(solid_ink) >= 5 and min(solid_ink) >= 0.72, sorted(solid_ink)[:5]


def test_a_stroke_broken_into_specks_beside_a_digit_is_kept():
    """A 1 px pen's bar along a squared sheet's line breaks into pieces smaller than a speck (a
    2's foot in a shadow): dropped as specks, the 2 read as a 7. Pieces chained to a stroke
    stay; a speck on its own still goes."""
    mask = np.zeros((96, 96), np.uint8)
    cv2.line(mask, (40, 20), (40, 58), 1, 1)  # the stroke
    for x0 in (42, 47, 52):  # its foot in three 4 px pieces, a pixel's gap between them
        cv2.line(mask, (x0, 59), (x0 + 3, 59), 1, 1)
    cv2.line(mask, (80, 80), (82, 80), 1, 1)  # a speck far from everything
    strokes = ink_strokes(mask)
    assert strokes[59, 42:56].sum() == 12
    assert strokes[80, 80:83].sum() == 0


# --- the frame pipeline with real models ---------------------------------------------------

def fraction(results, predicate) -> float:
    return float(np.mean([predicate(r) for r in results]))


def accuracy(results, scenes, labels) -> float:
    return float(np.mean([r.label == labels[t] for r, t in zip(results, scenes.y)]))


@pytest.fixture(scope="module")
def fruits_bundle(quick_artifacts):
    bundle = quick_artifacts("fruits") / "fruits" / "bundle"
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["preprocessing"]["camera"] == "locate"
    return bundle, metadata["labels"]


@pytest.fixture(scope="module")
def fruit_scenes(fruits_bundle, data_dir):
    _, labels = fruits_bundle
    photos, y = scene_sets.fruit_test_photos(data_dir, labels, 10)
    return {"photo": scene_sets.fruit_photo_scenes(photos, y),
            "anywhere": scene_sets.fruits_anywhere(photos, y),
            "empty": scene_sets.empty_scenes(len(y))}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["folder", "webcam"])
def test_fruit_photos_in_a_scene_with_the_runner_defaults(source, fruits_bundle, fruit_scenes):
    bundle, labels = fruits_bundle
    pipeline = FramePipeline(bundle, still=source == "folder")
    scenes = fruit_scenes["photo"]
    results = [pipeline(frame) for frame in scenes.frames]
    score = accuracy(results, scenes, labels)
    print(f"fruit photos in a scene, {source} default: {score:.3f}")
    # Issue 16's target is 0.97; the quick model (8 epochs) with the locator measures 0.88-0.93
    # here over three builds (from 0.10 / 1.00 before, folder / webcam): the quick model's
    # training varies from build to build. This guards what is reached.
    assert score >= 0.85
    assert fraction(results, lambda r: r.label == NOTHING) <= 0.01


@pytest.mark.slow
def test_fruits_anywhere_at_any_size_and_empty_scenes(fruits_bundle, fruit_scenes):
    bundle, labels = fruits_bundle
    pipeline = FramePipeline(bundle)
    anywhere = fruit_scenes["anywhere"]
    results = [pipeline(frame) for frame in anywhere.frames]
    score = accuracy(results, anywhere, labels)
    empty = [pipeline(frame) for frame in fruit_scenes["empty"].frames]
    called_class = fraction(empty, lambda r: r.is_class)
    print(f"fruits anywhere: {score:.3f}; empty scenes called a fruit: {called_class:.3f}")
    # Target 0.90; measured 0.79 with the quick model (from 0.095), twice (two builds).
    # A regression guard.
    assert score >= 0.75
    assert fraction(results, lambda r: r.label == NOTHING) <= 0.01
    assert called_class <= 0.02
    # "Nothing stands out" (no_subject), or a scene too featureless to hold one (blank_frame,
    # device/camera.py): both say why there is no fruit; never no_ink or a class's reason.
    assert {r.reason for r in empty if r.label == NOTHING} <= {NO_SUBJECT, BLANK_FRAME}
    # The box in the record is the square the model looked at, around the fruit. Known
    # limit: on a surface of the fruit's own colour the box can frame only part of it.
    assert all(r.box[2] == r.box[3] for r in results if r.label != NOTHING)
    framed = [r.box[2] >= 0.9 * t["height"] for r, t in zip(results, anywhere.tags)]
    print(f"boxes at least 0.9 of the fruit's height: {np.mean(framed):.3f}")
    assert np.mean(framed) >= 0.8


@pytest.fixture(scope="module")
def digits_bundle(quick_artifacts):
    return quick_artifacts("digits") / "digits" / "bundle"


@pytest.fixture(scope="module")
def digit_scenes(mnist):
    x, y = mnist
    picked, labels = scene_sets.seeded_digits(x, y, 200)
    neighbours, _ = scene_sets.seeded_digits(x, y, 100, seed=99)
    return {"plain": scene_sets.digits_plain_footage(picked, labels),
            "hard": scene_sets.digits_hard_paper(picked, labels, neighbours=neighbours),
            "empty": scene_sets.empty_pages(80)}


@pytest.mark.slow
def test_digits_on_real_paper_and_empty_pages(digits_bundle, digit_scenes):
    labels = [str(d) for d in range(10)]
    pipeline = FramePipeline(digits_bundle)  # the webcam default: the centre box
    scores = {}
    for key in ("plain", "hard"):
        scenes = digit_scenes[key]
        results = [pipeline(frame) for frame in scenes.frames]
        scores[key] = accuracy(results, scenes, labels)
        assert fraction(results, lambda r: r.label == NOTHING) <= 0.01
        if key == "hard":
            wanted = [t["others"] for t in scenes.tags]
            counted = [r.others or 0 for r in results]
            right = np.mean([c == w for c, w in zip(counted, wanted)])
            assert right >= 0.8
            assert all(r.to_json().get("others") == r.others for r in results if r.others)
    empty = [pipeline(frame) for frame in digit_scenes["empty"].frames]
    called_class = fraction(empty, lambda r: r.is_class)
    print(f"digits: first footage {scores['plain']:.3f}, harder paper {scores['hard']:.3f}, "
          f"empty pages called a digit {called_class:.3f}")
    # Targets 0.99 and 0.97; the quick model measures 0.99 and 0.955 (hard: from 0.40 on this
    # footage before the ink step was reworked), and a rebuild of it 0.975 plain (3 epochs: the
    # quick model varies between builds). Regression guards below the targets.
    assert scores["plain"] >= 0.97 and scores["hard"] >= 0.93
    assert called_class <= 0.02
    assert any(r.reason == NO_INK for r in empty)


@pytest.mark.slow
def test_smoothing_switches_to_nothing_within_two_frames_when_the_fruit_leaves(
        fruits_bundle, fruit_scenes):
    bundle, labels = fruits_bundle
    scenes = fruit_scenes["anywhere"]
    pipeline = FramePipeline(bundle, smoothing=True)
    index = next(i for i, f in enumerate(scenes.frames) if pipeline(f).label == labels[scenes.y[i]])
    pipeline = FramePipeline(bundle, smoothing=True)
    for _ in range(10):
        held = pipeline(scenes.frames[index])
    assert held.label == labels[scenes.y[index]]
    empty = fruit_scenes["empty"].frames[0]
    after = [pipeline(empty).label for _ in range(5)]
    switched = after.index(NOTHING) + 1
    print(f"frames until nothing after the fruit leaves: {switched}")
    assert switched <= 2
