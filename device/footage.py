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
                   shape=FRAME, model_side: int = 1) -> np.ndarray:
    """A BGR photo scaled to fill the centre box of a larger frame, the rest a blurred,
    unevenly lit scene; then noise and JPEG. The box is the one the runner draws for a
    ``model_side``-pixel model (see :func:`device.camera.roi_for`): where a user would hold it."""
    height, width = shape
    side = roi_for(shape, box, model_side).width
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
    with np.load(bundle.root / bundle.metadata["samples"]["file"]) as archive:
        images = archive["x"]
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        image = images[(i // hold) % len(images)]
        if bundle.preprocessing.get("camera") == "digit_ink":
            frames.append(digit_on_paper(image[:, :, 0], rng))
        else:
            bgr = image[:, :, ::-1] if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
            frames.append(photo_in_scene(np.ascontiguousarray(bgr), rng,
                                         model_side=bundle.preprocessing["size"][0]))
    return frames


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
