"""``python -m calibration_data TASK``: build the int8 calibration set from the training split.

It reads the trained model's metrics.json for the labels, image size and data source, so the
calibration inputs match the model exactly.
"""

import argparse
import os
import sys
from pathlib import Path

from device.errors import UserError


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m calibration_data", description=__doc__)
    parser.add_argument("task", help="digits, fruits or handsigns")
    parser.add_argument("--count", type=int, default=500, help="images (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="dataset folder (default: as the model was trained)")
    parser.add_argument("--artifacts", default="artifacts", help="artifacts root")
    args = parser.parse_args(argv)
    try:
        from export.source import load_trained, training_data

        trained = load_trained(Path(args.artifacts), args.task)
        data = training_data(trained, args.data_dir)
        import calibration_data

        path = calibration_data.build(args.task, data.x_train, data.y_train, data.labels,
                                      trained.spec, data.source, args.count, args.seed,
                                      calibration_data.folder_for(trained.folder))
        print(f"calibration set: {path} ({args.count} images from the training split)")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


sys.exit(main())
