"""Issue 13's camera-like footage: every hand-sign test photo anywhere in a 640x480 scene.

    python bench/hands_footage.py --bundle artifacts/handsigns/bundle [--seed 13] [--keep DIR]

Each of the 270 test photos (tight webcam crops) is put 1/4 to 3/4 of the frame tall, anywhere,
on a procedural surface with lamp light, noise and JPEG (``device.footage.hand_photo_in_scene``),
written as an image folder, and classified by ``python -m device run --headless`` with the
runner's defaults, as a user would. Prints the accuracy of the label a user sees ("no hand",
"nothing" and "unsure" are errors) and how many frames found no hand. Needs DATA_DIR (or
../shared/datasets) and a hand-sign bundle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_scenes(test_dir: Path, folder: Path, seed: int) -> int:
    """The scenes as ``<class>.<photo>.jpg`` (the class is the name's first part)."""
    import cv2
    import numpy as np

    from device.footage import hand_photo_in_scene

    rng = np.random.default_rng(seed)
    photos = sorted(test_dir.glob("*/*.jpg"))
    for path in photos:
        frame, _ = hand_photo_in_scene(cv2.imread(str(path)), rng)
        cv2.imwrite(str(folder / f"{path.parent.name}.{path.stem}.jpg"), frame,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    return len(photos)


def score(records: list[dict]) -> dict:
    truth = [record["source"].split(".")[0] for record in records]
    right = sum(record["label"] == label for record, label in zip(records, truth))
    return {"frames": len(records), "right": right,
            "accuracy": round(right / max(1, len(records)), 4),
            "no_hand": sum(record["reason"] == "no_hand" for record in records),
            "unsure": sum(record["label"] == "unsure" for record in records)}


def main() -> int:
    from tests.conftest import shared_datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a hand-sign bundle")
    parser.add_argument("--seed", type=int, default=13, help="placement and scene seed")
    parser.add_argument("--keep", type=Path, help="write the scenes here (kept), not to a temp dir")
    args = parser.parse_args()
    data = shared_datasets()
    if data is None:
        print("error: set DATA_DIR to the shared datasets", file=sys.stderr)
        return 2
    if not (args.bundle / "metadata.json").is_file():
        print(f"error: {args.bundle} has no metadata.json: pass --bundle DIR", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_scenes(data / "handsigns" / "testing", folder, args.seed)
        done = subprocess.run([sys.executable, "-m", "device", "run", "--bundle", str(args.bundle),
                               "--source", str(folder), "--headless"], cwd=REPO,
                              capture_output=True, text=True)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return done.returncode
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    print(json.dumps({"bundle": str(args.bundle), "seed": args.seed, **score(records)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
