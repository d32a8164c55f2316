"""The second hostile sweep of issue 14's kinds (cases not listed in the issue), one test per
finding. Each failed before its fix: the gate said "ok" to metadata the runner then crashed on or
misread, a huge --keep pruned every older release, odd images hung or crashed a run, NaN options
were accepted. No trained model needed: metadata is validated as data.
"""

from __future__ import annotations

import copy
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from device.bundle import validate_metadata
from device.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

MODEL = {"key": "tflite-int8", "file": "model_int8.tflite", "format": "tflite",
         "precision": "int8", "bytes": 10, "sha256": "0" * 64,
         "verdict": {"ok": True, "violations": [], "accuracy_delta": 0.0}}
IMAGE = {"bundle_format": 2, "task": "digits", "labels": [str(i) for i in range(10)],
         "preprocessing": {"size": [28, 28], "colour": "gray", "channels": 1,
                           "crop": "center_square", "scale": 1 / 255, "offset": 0.0,
                           "camera": "digit_ink"},
         "pipeline": {"kind": "image"}, "models": [MODEL]}
HANDS = {"bundle_format": 2, "task": "handsigns", "labels": ["rock", "paper", "scissors"],
         "input": {"shape": [1, 63]}, "preprocessing": {"camera": "landmarks"},
         "pipeline": {"kind": "hands", "min_confidence": 0.5,
                      "stages": {"palm": {"tflite-fp16": "hands/palm.tflite"},
                                 "landmark": {"tflite-fp16": "hands/landmark.tflite"}},
                      "thresholds": {"min_presence": 0.5, "fallback_angles": [0, 90]}},
         "models": [MODEL],
         "extra_files": [{"file": "hands/palm.tflite", "bytes": 1, "sha256": "0" * 64}]}


def edited(base: dict, path: str, value) -> dict:
    """``base`` with the dotted ``path`` set to ``value`` (``DELETE`` removes it)."""
    metadata = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = metadata
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return metadata


DELETE = object()


def test_the_valid_examples_pass():
    validate_metadata(IMAGE, Path("metadata.json"))
    validate_metadata(HANDS, Path("metadata.json"))


@pytest.mark.parametrize("base,path,value,needle", [
    # F1: wrong-typed hand thresholds passed check and crashed the runner on the first hand
    (HANDS, "pipeline.thresholds.min_presence", "high", "min_presence"),
    (HANDS, "pipeline.thresholds.fallback_angles", "all", "fallback_angles"),
    (HANDS, "pipeline.thresholds.min_palm_score", 2.0, "from 0.0 to 1.0"),
    (HANDS, "pipeline.thresholds.still_views", 1, "true or false"),
    # F4: no model at all was "check: ok"
    (IMAGE, "models", [], "lists no model"),
    # F5: duplicate, empty and reserved labels gave wrong answers
    (IMAGE, "labels.1", "0", "more than once"),
    (IMAGE, "labels.3", "", "non-empty list"),
    (IMAGE, "labels.3", "nothing", "result vocabulary"),
    (IMAGE, "labels.3", "Unsure", "result vocabulary"),
    # F10: mistyped stages / extra_files gave tracebacks
    (HANDS, "pipeline.stages", ["palm"], "pipeline.stages"),
    (HANDS, "extra_files", "hands", "'extra_files' must be a list"),
    (HANDS, "input", DELETE, "input.shape"),
    # F12: min_confidence outside [0, 1]
    (IMAGE, "pipeline.min_confidence", 2.0, "min_confidence"),
    (HANDS, "pipeline.min_confidence", -1, "min_confidence"),
    (IMAGE, "pipeline.min_confidence", float("nan"), "min_confidence"),
    # F13: a verdict "ok" over violations, or an "ok" that is not a boolean
    (IMAGE, "models.0.verdict.violations", ["accuracy drop 7 pt"], "says ok but lists"),
    (IMAGE, "models.0.verdict.ok", "false", "boolean 'ok'"),
    # F14: values the device does not know ran as something else
    (IMAGE, "pipeline.kind", "audio", "pipeline.kind"),
    (IMAGE, "preprocessing.colour", "cmyk", "preprocessing.colour"),
    (IMAGE, "preprocessing.crop", "spiral", "preprocessing.crop"),
    (IMAGE, "models.0.file", "../../other/model_int8.tflite", "inside the bundle"),
    (IMAGE, "models.0.file", "/etc/passwd", "inside the bundle"),
    (HANDS, "pipeline.stages.palm.tflite-fp16", "../palm.tflite", "inside the bundle"),
    (IMAGE, "models", [MODEL, MODEL], "more than once"),
])
def test_metadata_the_device_would_misread_is_refused(base, path, value, needle):
    with pytest.raises(UserError, match="re-export the bundle") as refused:
        validate_metadata(edited(base, path, value), Path("b/metadata.json"))
    assert needle in str(refused.value)


def test_a_boolean_bundle_format_is_not_format_1(tmp_path):
    import json

    from device.bundle import open_bundle

    (tmp_path / "metadata.json").write_text(json.dumps({**IMAGE, "bundle_format": True}))
    with pytest.raises(UserError, match="bundle format True"):
        open_bundle(tmp_path, verify=False)


def test_a_hand_tracker_refuses_thresholds_of_the_wrong_type():
    from device.hands.tracker import DEFAULT_THRESHOLDS
    from device.hands.validate import threshold_problem

    assert all(threshold_problem(k, v) == "" for k, v in DEFAULT_THRESHOLDS.items())
    assert threshold_problem("fallback_angles", [0, "x"]) == "every element must be a number"
    assert threshold_problem("max_palm_tries", 1.5) == "must be a whole number"


@pytest.mark.parametrize("answers,fails", [
    ([("unsure", "7")] * 4, False),          # a weak model: unsure, but its guesses are right
    ([("7", None)] * 3 + [("3", None)], False),
    ([("unsure", "1")] * 4, True),           # every guess wrong: the camera step misfits
    ([("nothing", None)] * 4, True),         # a subject never seen (thresholds hide it)
])
def test_the_frame_gate_wants_a_quarter_of_the_subjects_shown_or_guessed(monkeypatch, answers,
                                                                         fails):
    """Sweep finding: hand bundles met blank frames only in the gate, so thresholds that hide
    every hand passed. Subject frames must now show (or, unsure, guess) their class."""
    import device.check as check

    frames = [(np.full((4, 4, 3), 128, np.uint8), "7")] * 4 + check.blank_frames()
    replies = iter(answers + [("nothing", None)] * 2)

    def fake_classifier(bundle_dir, key, threads, still=False):
        def classify(frame):
            return next(replies)
        classify.labels = [str(i) for i in range(10)]
        return classify

    monkeypatch.setattr(check, "frame_classifier", fake_classifier)
    problem = check.frame_problem(Path("b"), "tflite-int8", 1, frames)
    assert (problem is not None) == fails, problem
    if fails:
        assert "show their own class" in problem


# --- F2, F3, F9: deploy's --keep and --dir ---------------------------------------------------

def test_a_count_the_target_shell_cannot_read_prunes_nothing(tmp_path):
    """Before: `--keep 9223372036854775808` reached prune, dash could not compare it, the
    fallback was "keep 1", and every older good release was deleted."""
    base = tmp_path / "edge"
    for name in ("20260101T000000Z-aaa", "20260102T000000Z-bbb", "20260103T000000Z-ccc"):
        (base / "releases" / name).mkdir(parents=True)
        (base / "releases" / name / ".edgekit-good").touch()
    for keep in ("9223372036854775808", "99999999999999999999999", "abc", ""):
        done = subprocess.run(["sh", str(REPO / "deploy" / "remote.sh"), "prune", str(base), keep],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "nothing pruned" in done.stdout, (keep, done.stdout)
        assert len(list((base / "releases").iterdir())) == 3, keep


def test_deploy_refuses_a_huge_keep_an_empty_dir_and_a_symlink_loop(tmp_path):
    def deploy(*args):
        return subprocess.run([PY, "-m", "deploy", "local", "--task", "digits", "--artifacts",
                               str(tmp_path), *args], cwd=REPO, capture_output=True, text=True,
                              timeout=120)

    huge = deploy("--dir", str(tmp_path / "pi"), "--keep", "9223372036854775808")
    assert huge.returncode == 2 and "argument --keep: must be at most" in huge.stderr
    empty = deploy("--dir", "")  # before: deployed into the current directory (the repo)
    assert empty.returncode == 2 and "error: --dir is empty" in empty.stderr
    assert not (REPO / "releases").exists() and not (REPO / "current").exists()
    (tmp_path / "loopA").symlink_to(tmp_path / "loopB")
    (tmp_path / "loopB").symlink_to(tmp_path / "loopA")
    loop = deploy("--dir", str(tmp_path / "loopA"))  # before: a RuntimeError traceback
    assert loop.returncode == 2 and "cannot be resolved" in loop.stderr
    assert "Traceback" not in loop.stderr


# --- F6, F7, F8: images and sources ----------------------------------------------------------

def png_claiming(width: int, height: int) -> bytes:
    """A 57-byte PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_an_undecodable_image_not_a_crash(tmp_path):
    """Before: OpenCV's pixel limit raised cv2.error, a traceback that ended a folder run."""
    from device.sources.folder import ImageFolderSource, decode_image

    bomb = tmp_path / "photos" / "bomb.png"
    bomb.parent.mkdir()
    bomb.write_bytes(png_claiming(50000, 50000))
    assert decode_image(bomb) is None
    import cv2
    cv2.imwrite(str(tmp_path / "photos" / "fine.png"), np.full((40, 40, 3), 200, np.uint8))
    source = ImageFolderSource(tmp_path / "photos")
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert len(frames) == 1 and source.skipped == ["bomb.png"]


@pytest.mark.parametrize("text,needle", [("²", "no such file"), (" ", "--source is empty")])
def test_odd_source_names_are_one_line(text, needle):
    """Before: '²'.isdigit() is True and int('²') raised; ' ' ran on the current folder."""
    from device.sources import open_source

    with pytest.raises(UserError, match=needle):
        open_source(text)


def test_slivers_and_panoramas_shrink_to_a_bounded_work_image():
    """Before: a 1x20000 image took minutes (a closing with a 3333 px disc), a 12000x200
    panorama 12 s; the work image and the flattening disc are now bounded."""
    from device.camera import flatten_light
    from device.ink import WORK_SIDE, shrink_keeping_ink

    for shape in ((1, 20000), (200, 12000), (20000, 1), (480, 640), (28, 28)):
        work = shrink_keeping_ink(np.full(shape, 220, np.uint8))
        assert work.size > 0 and work.size <= max(16 * WORK_SIDE * WORK_SIDE, 28 * 28), shape
        assert flatten_light(work).shape == work.shape
    # An ordinary frame shrinks exactly as before: by its shorter side.
    assert shrink_keeping_ink(np.full((480, 640), 220, np.uint8)).shape == (80, 106)


def test_no_footage_from_a_hand_bundle():
    """Before: footage and bench read landmark features as pictures (IndexError)."""
    from device.footage import bundle_footage

    class HandBundle:
        kind = "hands"
        root = Path("hs/bundle")

    with pytest.raises(UserError, match="hand pipeline"):
        bundle_footage(HandBundle(), 5)


# --- F16, F17, F18, F19: options (a bad --roi or --save was found after the model loaded) ----

@pytest.mark.parametrize("args,needle", [
    (["device", "collect", "--label", "x", "--out", "o", "--interval", "nan"], "--interval"),
    (["device", "collect", "--label", "x", "--out", "o", "--interval", "inf"], "--interval"),
    (["device", "collect", "--label", "x", "--out", "o", "--countdown", "nan"], "--countdown"),
    (["device", "collect", "--label", "x", "--out", "o", "--min-change", "nan"], "--min-change"),
    (["device", "collect", "--label", "x", "--out", "o", "--fps", "-1"], "--fps"),
    (["device", "run", "--bundle", "b", "--source", "0", "--roi", "abc"], "'abc' is not valid"),
    (["device", "run", "--bundle", "b", "--source", "0", "--save", "/no/such/x.mp4"], "--save"),
    (["device", "run", "--bundle", "b", "--source", "0", "--save", "clip.txt"], "--save"),
    (["train", "digits", "--embedded", "--seed", "-1"], "--seed"),
    (["train", "doctor", "--steps", "0"], "--steps"),
    (["train", "doctor", "--batch-size", "-5"], "--batch-size"),
    (["train", "fruits", "--classes", ","], "--classes"),
    (["train", "images", "--data", "d", "--name", "x", "--weights", "/no/such.h5"], "--weights"),
    (["export", "digits", "--calibration-seed", "-1"], "--calibration-seed"),
    (["export", "digits", "--formats", ","], "--formats"),
])
def test_options_are_refused_in_one_line_before_anything_loads(args, needle, tmp_path):
    probe = ("import runpy, sys\n"
             "module = sys.argv[1]\n"
             "sys.argv = [module] + sys.argv[2:]\n"
             "try:\n"
             "    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
             "    code = 0\n"
             "except SystemExit as exit:\n"
             "    code = exit.code\n"
             "print('tf-loaded' if 'tensorflow' in sys.modules else 'tf-not-loaded')\n"
             "sys.exit(code)\n")
    result = subprocess.run([PY, "-c", probe, *args], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and needle in result.stderr, result.stderr
    assert "tf-not-loaded" in result.stdout
