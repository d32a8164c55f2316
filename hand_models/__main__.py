"""``python -m hand_models fetch|path``: get MediaPipe's hand models, or say where they are.

    python -m hand_models fetch              # download mediapipe==0.10.14 once, extract, verify
    python -m hand_models fetch --optional   # for `make setup`: a warning instead of an error
    python -m hand_models path               # the verified folder (error if not fetched)

``EDGEKIT_HAND_MODELS=/some/folder`` keeps them elsewhere.
"""

from __future__ import annotations

import argparse
import sys

from device.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hand_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download, extract and verify the models (once)")
    fetch.add_argument("--optional", action="store_true",
                       help="on failure print one warning line and exit 0 (set-up goes on; "
                            "everything but the hand-landmark pipeline works)")
    commands.add_parser("path", help="print the folder holding the verified models")
    args = parser.parse_args(argv)

    import hand_models

    try:
        folder = hand_models.fetch() if args.command == "fetch" else hand_models.model_dir()
    except UserError as exc:
        if args.command == "fetch" and args.optional:
            print(f"warning: hand models not fetched, the hand-landmark pipeline is unavailable "
                  f"until they are: {exc}", file=sys.stderr)
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "fetch":
        print(f"hand models ok: {folder} ({hand_models.WHEEL}, SHA-256 verified)")
    else:
        print(folder)
    return 0


sys.exit(main())
