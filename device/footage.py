"""Camera-like footage made from real test images, for tests, benchmarks and demos.

Nothing here invents a subject: every frame shows a real dataset image, rendered the way a
webcam would see it. Digits (white ink on black, MNIST style) become dark ink on light paper
under a lighting gradient; photos (fruits, hand signs) are scaled into a larger scene. Sensor
noise and JPEG compression are added to both. Frames are generated at run time, never stored
in the repository.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.camera import roi_for

FRAME = (480, 640)  # height, width


def lighting(rng: np.random.Generator, shape=FRAME, low: float = 0.55) -> np.ndarray:
    """A smooth brightness field in [low, 1]: a tilted gradient times a vignette, like a desk
    lamp on one side."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    tilt = (np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5))
    field = 1.0 - (1.0 - low) * (tilt + 0.7) / 1.4
    radius = np.hypot(xx / width - rng.uniform(0.3, 0.7), yy / height - rng.uniform(0.3, 0.7))
    field *= 1.0 - 0.25 * radius ** 2
    return np.clip(field, low * 0.8, 1.0)


def camera_artifacts(frame: np.ndarray, rng: np.random.Generator, noise: float = 6.0,
                     jpeg_quality: int = 70) -> np.ndarray:
    """Gaussian sensor noise and a JPEG round trip."""
    noisy = frame.astype(np.float32) + rng.normal(0.0, noise, frame.shape)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else frame


def digit_on_paper(digit: np.ndarray, rng: np.random.Generator, box: float = 0.6,
                   shape=FRAME) -> np.ndarray:
    """An MNIST digit (28x28, white on black) as dark ink on light paper in a BGR frame: the
    digit's 28x28 cell fills 60-95 % of the centre box, jittered in position."""
    height, width = shape
    side = int(min(shape) * box)
    cell = int(side * rng.uniform(0.6, 0.95))
    ink = cv2.resize(digit.reshape(28, 28), (cell, cell), interpolation=cv2.INTER_CUBIC)
    ink = np.clip(ink.astype(np.float32) / 255.0, 0.0, 1.0)
    paper_tone = rng.uniform(200, 245)
    ink_tone = rng.uniform(20, 70)
    canvas = np.zeros(shape, np.float32)
    jitter = int((side - cell) / 2)
    top = (height - cell) // 2 + int(rng.integers(-jitter, jitter + 1))
    left = (width - cell) // 2 + int(rng.integers(-jitter, jitter + 1))
    canvas[top:top + cell, left:left + cell] = ink
    gray = paper_tone * (1.0 - canvas) + ink_tone * canvas
    gray *= lighting(rng, shape)
    tint = np.array([rng.uniform(0.95, 1.0), 1.0, rng.uniform(0.95, 1.05)], np.float32)
    frame = np.clip(gray[:, :, None] * tint, 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng)


def photo_in_scene(photo: np.ndarray, rng: np.random.Generator, box: float = 0.6,
                   shape=FRAME, model_side: int = 1, side: int | None = None) -> np.ndarray:
    """A BGR photo scaled to fill the centre box of a larger frame, the rest a blurred,
    unevenly lit scene; then noise and JPEG. The box is the one the runner draws for a
    ``model_side``-pixel model (see :func:`device.camera.roi_for`): where a user would hold it.
    ``side`` (pixels) overrides the box: the photo at that size, centred."""
    height, width = shape
    side = side or roi_for(shape, box, model_side).width
    background = rng.integers(60, 200, (6, 8, 3)).astype(np.uint8)
    scene = cv2.resize(background, (width, height), interpolation=cv2.INTER_CUBIC)
    scene = (scene.astype(np.float32) * lighting(rng, shape, low=0.7)[:, :, None])
    h, w = photo.shape[:2]
    fit = side / max(h, w)
    resized = cv2.resize(photo, (max(1, int(w * fit)), max(1, int(h * fit))),
                         interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    top, left = (height - rh) // 2, (width - rw) // 2
    scene[top:top + rh, left:left + rw] = resized
    frame = np.clip(scene, 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80)


def write_video(frames, path: str | Path, fps: float = 15.0) -> Path:
    """Frames (BGR, same size) -> an MJPG .avi or mp4v .mp4 that OpenCV reads back everywhere."""
    path = Path(path)
    frames = list(frames)
    height, width = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write video {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_folder(frames, folder: str | Path, names=None) -> Path:
    """Frames -> numbered PNGs (or ``names``) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        name = names[index] if names else f"frame_{index:05d}.png"
        cv2.imwrite(str(folder / name), frame)
    return folder


def bundle_footage(bundle, count: int, hold: int = 1, seed: int = 0) -> list[np.ndarray]:
    """640x480 frames of the bundle's own sample images (real test images) as a camera would
    see them, each held for ``hold`` frames (a subject held up to the camera, with fresh sensor
    noise in every frame)."""
    from device.errors import UserError

    if bundle.kind == "hands":
        raise UserError(f"bundle {bundle.root} is a hand pipeline: its samples are landmark "
                        "features, not pictures, so no footage can be made from them; record a "
                        "clip of your hand (python -m device collect, or any phone video) and "
                        "pass it as --source (device bench: --video)")
    with np.load(bundle.root / bundle.metadata["samples"]["file"]) as archive:
        images = archive["x"]
    rng = np.random.default_rng(seed)
    return [sample_frame(images[(i // hold) % len(images)], rng, bundle.preprocessing)
            for i in range(count)]


def sample_frame(image: np.ndarray, rng: np.random.Generator, preprocessing: dict) -> np.ndarray:
    """One of a bundle's sample images (uint8, as fitted for the model) as a 640x480 camera
    frame: a digit as ink on paper, a photo scaled into a scene where the runner looks."""
    if preprocessing.get("camera") == "digit_ink":
        return digit_on_paper(image[:, :, 0], rng)
    bgr = image[:, :, ::-1] if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    return photo_in_scene(np.ascontiguousarray(bgr), rng, model_side=preprocessing["size"][0])


def main(bundle_dir: Path, out: Path, frames: int = 300, hold: int = 15) -> int:
    """``python -m device footage``: the bundle's samples as a 15 fps video at ``out``."""
    from device.atomic import atomic_path
    from device.bundle import open_bundle
    from device.errors import UserError

    out = Path(out)
    if out.suffix.lower() not in (".avi", ".mp4"):
        raise UserError(f"--out {out}: use a .avi or .mp4 file name")
    bundle = open_bundle(bundle_dir, verify=False)
    with atomic_path(out, suffix=out.suffix) as partial:   # never a half-written video
        write_video(bundle_footage(bundle, frames, hold), partial, fps=15.0)
    print(f"wrote {out} ({frames} frames, 15 fps): python -m device run --bundle {bundle_dir} "
          f"--source {out}")
    return 0


# --- harder scenes: a subject anywhere, at any size, on real-looking surfaces -----------------
#
# Procedural surfaces stand in for a table, a wall or a sheet of paper; the subject is always a
# real test photo (a fruit cut from its white background) or a real MNIST digit. Nothing here
# is stored: tests and measurements build these frames when they run.

SURFACES = ("plain", "wood", "wall", "cloth")


def smooth_noise(rng: np.random.Generator, shape, cells: int) -> np.ndarray:
    """Noise in [-1, 1] with about ``cells`` blobs across the frame (a cubic-upsampled grid)."""
    height, width = shape
    grid = rng.uniform(-1, 1, (max(2, cells * height // width), max(2, cells))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def surface(rng: np.random.Generator, kind: str, shape=FRAME) -> np.ndarray:
    """A float32 BGR surface (0-255) of ``kind``: ``plain`` (one tinted colour), ``wood``
    (a table: grain stripes bent by noise), ``wall`` (plaster: light, mottled) or ``cloth``
    (a fine weave on a coloured table cloth). Lighting is applied later, by the scene."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "wood":
        base = np.array([rng.uniform(40, 110), rng.uniform(80, 150), rng.uniform(120, 200)])
        angle = rng.uniform(-0.3, 0.3) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
        along = np.cos(angle) * xx + np.sin(angle) * yy
        across = -np.sin(angle) * xx + np.cos(angle) * yy
        warp = 25 * smooth_noise(rng, shape, 4) + 6 * smooth_noise(rng, shape, 12)
        period = rng.uniform(8, 30)
        grain = np.sin(2 * np.pi * (across + warp + 0.02 * along) / period)
        streaks = smooth_noise(rng, shape, 40) * 0.5
        texture = 1.0 + rng.uniform(0.08, 0.2) * grain + 0.06 * streaks
    elif kind == "wall":
        base = np.full(3, rng.uniform(170, 235)) * rng.uniform(0.9, 1.05, 3)
        texture = 1.0 + 0.04 * smooth_noise(rng, shape, 6) + 0.03 * smooth_noise(rng, shape, 60)
    elif kind == "cloth":
        base = rng.uniform(60, 210, 3)
        period = rng.uniform(3, 7)
        weave = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
        texture = 1.0 + 0.08 * weave + 0.05 * smooth_noise(rng, shape, 8)
    else:
        base = rng.uniform(70, 230, 3)
        texture = 1.0 + 0.02 * smooth_noise(rng, shape, 5)
    return texture[:, :, None] * base.astype(np.float32)[None, None, :]


def fruit_cutout(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Fruits-360 photo -> (the photo cropped to its fruit, alpha in [0, 1]).

    The white studio background is the near-white region connected to the photo's border (a
    highlight inside the fruit stays fruit); its edge is feathered by a pixel, as a cut-out is.
    """
    near_white = (photo.min(axis=2) > 215).astype(np.uint8)
    count, labels = cv2.connectedComponents(near_white, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, border[border > 0] if count > 1 else [])
    fruit = (~background).astype(np.uint8)
    fruit = cv2.morphologyEx(fruit, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(fruit)
    if len(ys) == 0:
        return photo, np.ones(photo.shape[:2], np.float32)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # The studio light leaves a pale fringe a pixel or two wide around the fruit: cut inside it.
    fruit = cv2.erode(fruit, np.ones((3, 3), np.uint8), iterations=2)
    alpha = cv2.GaussianBlur(fruit.astype(np.float32), (3, 3), 0)[top:bottom, left:right]
    return photo[top:bottom, left:right], alpha


def scene_light(frame: np.ndarray, rng: np.random.Generator, low: float = 0.6) -> np.ndarray:
    """Lamp gradient and vignette, and a colour cast (warm bulb, cool daylight)."""
    cast = np.array([rng.uniform(0.85, 1.1), 1.0, rng.uniform(0.85, 1.15)], np.float32)
    return frame * lighting(rng, frame.shape[:2], low=low)[:, :, None] * cast


def fruit_on_surface(photo: np.ndarray, rng: np.random.Generator, kind: str | None = None,
                     height_range=(1 / 6, 2 / 3), shape=FRAME, shadow: bool = True):
    """A fruit cut from its photo, ``height_range`` of the frame's height tall, anywhere in a
    640x480 frame on a ``kind`` surface (random when None), with a soft cast shadow, lamp
    light, noise and JPEG. Returns (frame, fruit box [x, y, w, h])."""
    height, width = shape
    kind = kind or SURFACES[int(rng.integers(len(SURFACES)))]
    scene = surface(rng, kind, shape)
    cut, alpha = fruit_cutout(photo)
    fruit_height = rng.uniform(*height_range) * height
    fit = fruit_height / cut.shape[0]
    w = max(4, min(width - 2, int(round(cut.shape[1] * fit))))
    h = max(4, min(height - 2, int(round(fruit_height))))
    interpolation = cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR
    cut = cv2.resize(cut, (w, h), interpolation=interpolation).astype(np.float32)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    if shadow:
        layer = np.zeros(shape, np.float32)
        layer[top:top + h, left:left + w] = alpha[:, :, 0]
        offset = np.float32([[1, 0, rng.uniform(-0.25, 0.25) * w],
                             [0, 1, rng.uniform(0.02, 0.2) * h]])
        layer = cv2.warpAffine(layer, offset, (width, height))
        layer = cv2.GaussianBlur(layer, (0, 0), max(1.0, 0.08 * h))
        scene *= (1.0 - rng.uniform(0.25, 0.5) * layer)[:, :, None]
    window = scene[top:top + h, left:left + w]
    scene[top:top + h, left:left + w] = alpha * cut + (1.0 - alpha) * window
    frame = np.clip(scene_light(scene, rng), 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80), (left, top, w, h)


def hand_photo_in_scene(photo: np.ndarray, rng: np.random.Generator, kind: str | None = None,
                        height_range=(0.25, 0.75), shape=FRAME):
    """A hand-sign photo (a webcam shot of a hand) anywhere in a 640x480 frame, its height
    ``height_range`` of the frame's, on a ``kind`` surface (random when None), with lamp light,
    noise and JPEG: the hand as a camera on a desk or wall would frame it, at any distance.
    The photo keeps its own background (a rectangle in the scene, as an arm's reach in front of
    another backdrop). Returns (frame, photo box [x, y, w, h])."""
    height, width = shape
    kind = kind or SURFACES[int(rng.integers(len(SURFACES)))]
    scene = surface(rng, kind, shape)
    fit = rng.uniform(*height_range) * height / photo.shape[0]
    w = max(4, min(width, int(round(photo.shape[1] * fit))))
    h = max(4, min(height, int(round(photo.shape[0] * fit))))
    interpolation = cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(photo, (w, h), interpolation=interpolation).astype(np.float32)
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    scene[top:top + h, left:left + w] = resized
    frame = np.clip(scene_light(scene, rng, low=0.7), 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80), (left, top, w, h)


def empty_scene(rng: np.random.Generator, kind: str, shape=FRAME) -> np.ndarray:
    """No subject: a ``kind`` surface (``plain``/``wood``/``wall``/``cloth``), a blank ``page``
    or a ``covered`` lens (dark, featureless), lit and compressed like the scenes above."""
    if kind == "covered":
        dark = np.full((*shape, 3), rng.uniform(2, 25), np.float32)
        dark *= lighting(rng, shape, low=0.8)[:, :, None]
        return camera_artifacts(np.clip(dark, 0, 255).astype(np.uint8), rng, noise=3.0)
    if kind == "page":
        scene = np.full((*shape, 3), rng.uniform(200, 245), np.float32)
        scene *= rng.uniform(0.95, 1.03, 3).astype(np.float32)
    else:
        scene = surface(rng, kind, shape)
    frame = np.clip(scene_light(scene, rng), 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng, noise=4.0, jpeg_quality=80)


# --- digits on real paper: pens, ruled and squared sheets, tilt, shadows ----------------------

#: Pen colours in BGR: a black felt tip, a blue ballpoint, a red pen.
PENS = {"black": (35, 30, 30), "blue": (150, 60, 25), "red": (45, 40, 185)}
PAPERS = ("plain", "ruled", "squared")


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a binary mask to one-pixel centre lines (numpy, vectorised).

    MNIST strokes scaled up to a 200 px digit are ~20 px wide; a pen draws 1-6 px. The centre
    line of the real handwriting, redrawn at a pen's width, keeps the writer's shape."""
    image = np.pad((mask > 0).astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:],
                 p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]  # P2..P9 clockwise
            neighbours = sum(n)
            transitions = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)) for i in range(8))
            if step == 0:
                gate = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                gate = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            remove = (p[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & \
                (transitions == 1) & gate
            if remove.any():
                image[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1]


def pen_strokes(digit: np.ndarray, cell: int, width: float) -> np.ndarray:
    """An MNIST digit redrawn as a pen line ``width`` px wide in a ``cell``-px square, in [0, 1]."""
    big = cv2.resize(digit.reshape(28, 28), (cell, cell), interpolation=cv2.INTER_CUBIC)
    centre = thin(big > 110).astype(np.float32)
    radius = max(0.0, (width - 1.0) / 2.0)
    if radius > 0:
        distance = cv2.distanceTransform((1 - centre).astype(np.uint8), cv2.DIST_L2, 5)
        return np.clip(radius + 0.5 - distance, 0.0, 1.0)  # anti-aliased edge
    return cv2.GaussianBlur(centre, (3, 3), 0.5) * 1.6  # a 1 px line, a little soft


def paper_sheet(rng: np.random.Generator, kind: str, shape) -> np.ndarray:
    """Float32 BGR paper (0-255) with ``kind`` printing: ``plain``, ``ruled`` (light blue lines,
    sometimes a red margin) or ``squared`` (a light grey-blue grid)."""
    height, width = shape
    tone = rng.uniform(205, 245)
    sheet = np.full((height, width, 3), tone, np.float32) * rng.uniform(0.97, 1.02, 3)
    if kind == "plain":
        return sheet.astype(np.float32)
    spacing = rng.uniform(22, 40) if kind == "ruled" else rng.uniform(16, 28)
    colour = np.array([rng.uniform(200, 235), rng.uniform(170, 205), rng.uniform(130, 180)],
                      np.float32)
    darkness = rng.uniform(0.35, 0.8)
    line_width = int(rng.integers(1, 3))
    lines = np.zeros((height, width), np.float32)
    offset = rng.uniform(0, spacing)
    for y in np.arange(offset, height, spacing):
        cv2.line(lines, (0, int(y)), (width, int(y)), 1.0, line_width, cv2.LINE_AA)
    if kind == "squared":
        for x in np.arange(rng.uniform(0, spacing), width, spacing):
            cv2.line(lines, (int(x), 0), (int(x), height), 1.0, line_width, cv2.LINE_AA)
    lines = (lines * darkness)[:, :, None]
    sheet = sheet * (1 - lines) + colour * lines
    if kind == "ruled" and rng.random() < 0.3:
        margin = int(rng.uniform(0.05, 0.25) * width)
        cv2.line(sheet, (margin, 0), (margin, height), (120, 110, 225), 2, cv2.LINE_AA)
    return sheet.astype(np.float32)


def tilt_homography(rng: np.random.Generator, shape, max_degrees: float) -> np.ndarray:
    """A homography for a sheet tilted up to ``max_degrees`` away from the camera (about a
    random in-plane axis through the frame's centre) and turned a little in its plane, as a
    hand-held phone sees a page: the frame's corners rotated in 3-D and projected again."""
    height, width = shape
    tilt = np.radians(rng.uniform(0, max_degrees))
    axis = rng.uniform(0, 2 * np.pi)
    spin = np.radians(rng.uniform(-8, 8))
    ax, ay = np.cos(axis), np.sin(axis)
    skew = np.array([[0, 0, ay], [0, 0, -ax], [-ay, ax, 0]], np.float64)
    rotate = np.eye(3) + np.sin(tilt) * skew + (1 - np.cos(tilt)) * skew @ skew  # Rodrigues
    spin_m = np.array([[np.cos(spin), -np.sin(spin), 0], [np.sin(spin), np.cos(spin), 0],
                       [0, 0, 1]])
    focal = 1.2 * width
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    centred = np.column_stack([corners - [width / 2, height / 2], np.zeros(4)])
    moved = centred @ (rotate @ spin_m).T + [0, 0, focal]
    projected = moved[:, :2] * (focal / moved[:, 2:3]) + [width / 2, height / 2]
    return cv2.getPerspectiveTransform(corners, projected.astype(np.float32))


def soft_shadow(rng: np.random.Generator, shape) -> np.ndarray:
    """A brightness field with a soft shadow edge running through the middle of the frame (a
    hand or a lamp's arm between the light and the page)."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    distance = (np.cos(angle) * (xx - width / 2) + np.sin(angle) * (yy - height / 2)
                - rng.uniform(-0.12, 0.12) * min(shape))
    softness = rng.uniform(6, 30)
    depth = rng.uniform(0.3, 0.55)
    return 1.0 - depth / (1.0 + np.exp(-distance / softness))


def digits_on_real_paper(digits: list[np.ndarray], rng: np.random.Generator, pen: str | None = None,
                         paper: str | None = None, stroke: float | None = None,
                         max_tilt: float = 25.0, shadow: bool | None = None,
                         touch_edge: bool = False, box: float = 0.6, shape=FRAME) -> np.ndarray:
    """MNIST digits written with a pen on a sheet under a lamp, as a webcam sees it.

    ``digits[0]`` is the one at the centre of the box (the one to read); further digits sit to
    its left and right on the same line. ``pen`` (black/blue/red), ``paper`` (plain/ruled/
    squared), ``stroke`` width (1-6 px) are random when None; the sheet is tilted up to
    ``max_tilt`` degrees; ``shadow`` draws a soft shadow edge across it; ``touch_edge`` moves the
    centre digit until it touches the edge of the centre box.
    """
    height, width = shape
    pen = pen or list(PENS)[int(rng.integers(len(PENS)))]
    paper = paper or PAPERS[int(rng.integers(len(PAPERS)))]
    stroke = float(stroke if stroke is not None else rng.uniform(1, 6))
    shadow = bool(rng.random() < 0.5) if shadow is None else shadow
    side = int(min(shape) * box)
    cell = int(side * rng.uniform(0.55, 0.85) / (1.0 if len(digits) == 1 else 1.15))
    ink = np.zeros(shape, np.float32)
    centre_x, centre_y = width // 2, height // 2
    slack = (side - cell) // 2
    if touch_edge:
        direction = rng.choice([-1, 1])
        dx = int(direction * slack)
        dy = int(rng.integers(-slack // 2, slack // 2 + 1))
    else:
        dx, dy = (int(v) for v in rng.integers(-slack // 2, slack // 2 + 1, 2))
    pitch = int(cell * rng.uniform(0.8, 0.95))
    for index, digit in enumerate(digits):
        strokes = pen_strokes(digit, cell, stroke)
        if touch_edge and index == 0:  # slide the ink itself (not its cell) onto the box edge
            cols = np.flatnonzero(strokes.max(axis=0) > 0.5)
            if len(cols):
                edge_gap = (cols[0] if dx < 0 else cell - 1 - cols[-1])
                dx += int(-edge_gap if dx < 0 else edge_gap)
        slot = (index + 1) // 2 * (1 if index % 2 else -1)
        left = centre_x - cell // 2 + dx + slot * pitch
        top = centre_y - cell // 2 + dy
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(width, left + cell), min(height, top + cell)
        if x1 <= x0 or y1 <= y0:
            continue
        region = strokes[y0 - top:y1 - top, x0 - left:x1 - left]
        ink[y0:y1, x0:x1] = np.maximum(ink[y0:y1, x0:x1], region)
    sheet = paper_sheet(rng, paper, shape)
    pen_colour = np.array(PENS[pen], np.float32) * rng.uniform(0.85, 1.15)
    strength = rng.uniform(0.8, 1.0)
    sheet = sheet * (1 - strength * ink[:, :, None]) + pen_colour * strength * ink[:, :, None]
    if max_tilt > 0:
        homography = tilt_homography(rng, shape, max_tilt)
        sheet = cv2.warpPerspective(sheet, homography, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
    light = lighting(rng, shape) * (soft_shadow(rng, shape) if shadow else 1.0)
    frame = np.clip(sheet * light[:, :, None], 0, 255).astype(np.uint8)
    return camera_artifacts(frame, rng)


def page_without_digit(rng: np.random.Generator, paper: str | None = None,
                       shadow: bool | None = None, shape=FRAME) -> np.ndarray:
    """A blank (``plain``) or printed (``ruled``/``squared``) sheet with no writing on it."""
    return digits_on_real_paper([np.zeros((28, 28), np.uint8)], rng, paper=paper, shadow=shadow,
                                shape=shape)
