"""A user's own gestures over three random draws: 30 captures per gesture, the 270 test photos.

    python bench/custom_gestures.py [--draws 3] [--out /tmp/gestures]

Runs tests/test_custom_gestures.py's flow (collect --hands from a video of randomly drawn
training photos, train images --arch landmarks, export, device run on the test photos) once
per draw and prints each draw's accuracy (no hand = error), the mean, and the time from
captures to an exported bundle. Needs DATA_DIR (or ../shared/datasets) and the hand models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from tests.conftest import shared_datasets
    from tests.test_custom_gestures import gesture_accuracy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit-gestures"))
    args = parser.parse_args()
    data = shared_datasets()
    if data is None:
        print("error: set DATA_DIR to the shared datasets", file=sys.stderr)
        return 2
    results = []
    for draw in range(args.draws):
        result = gesture_accuracy(data, draw, args.out / f"draw{draw}", dict(os.environ))
        result.pop("manifest")
        results.append(result)
        print(json.dumps({"draw": draw, **{k: round(v, 4) if isinstance(v, float) else v
                                           for k, v in result.items()}}), flush=True)
    mean = sum(r["accuracy"] for r in results) / len(results)
    worst = max(r["train_s"] + r["export_s"] for r in results)
    print(f"mean accuracy over {len(results)} draws: {mean:.2%} of 270 test photos; captures "
          f"-> exported bundle: at most {worst:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
