"""The bundle: model files + ``metadata.json``, the only thing that crosses from cloud to device.

``metadata.json`` carries the task, ordered labels, input shape, preprocessing spec and one
entry per model file (format, precision, bytes, SHA-256). :func:`open_bundle` refuses a bundle
whose format version differs or whose files do not match their checksums, so a half-copied or
tampered bundle never classifies anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from device.errors import UserError

BUNDLE_FORMAT = 2
#: Formats this runner reads: 2 adds ``pipeline``, per-model ``verdict`` and ``extra_files``
#: (docs/contracts.md); a format 1 bundle is an image pipeline with no extra files.
READABLE_FORMATS = (1, 2)
#: Float precisions, best first: what a stage falls back to when it lacks the requested key.
FLOAT_PRECISIONS = ("fp32", "fp16")
#: Default model choice, best first: full-int8 TFLite is the fastest on a Pi's CPU.
# An int8 model the export's fallback rescued (some layers kept in float, ``-mixed``) stands
# right after the fully int8 one it replaces: nearly as small and fast, and within thresholds.
PREFERENCE = ("tflite-int8", "tflite-int8-mixed", "onnx-int8", "onnx-int8-mixed",
              "tflite-dynamic", "tflite-fp16", "tflite-fp32", "onnx-fp32", "onnx-dynamic")
RESCUE_SUFFIX = "-mixed"  #: the key suffix of such a model (export/fallback.py writes it)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_key(entry: dict) -> str:
    """``tflite-int8``-style name of a model entry, as ``--model`` accepts it."""
    return f"{entry['format']}-{entry['precision']}"


@dataclass
class Bundle:
    root: Path
    metadata: dict

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def labels(self) -> list[str]:
        return self.metadata["labels"]

    @property
    def preprocessing(self) -> dict:
        return self.metadata["preprocessing"]

    @property
    def models(self) -> dict[str, dict]:
        return {model_key(entry): entry for entry in self.metadata["models"]}

    def model_path(self, key: str) -> Path:
        return self.root / self.models[key]["file"]

    def choose(self, requested: str | None = None, allow_failing: bool = False) -> str:
        """``requested`` if the bundle has it, else the best passing model by :data:`PREFERENCE`.

        A model whose export verdict failed (quantisation broke it beyond the thresholds) is
        never the default, and an explicit ``--model`` of one is refused unless
        ``allow_failing`` (diagnosis): a failing model must not answer a user unnoticed.
        """
        available = self.models
        if requested:
            if requested not in available:
                raise UserError(f"--model {requested} is not in bundle {self.root}: it has "
                                f"{', '.join(available)}")
            if verdict_state(available[requested]) == "failed" and not allow_failing:
                raise UserError(f"--model {requested} failed its export checks "
                                f"({verdict_summary(available[requested])}): pick another "
                                "model (`python -m device check` lists them) or re-export")
            return requested
        for key in PREFERENCE:
            if key in available and verdict_state(available[key]) != "failed":
                return key
        if available:
            raise UserError(f"every model in bundle {self.root} failed its export checks: "
                            "re-export it (see its report.md)")
        raise UserError(f"bundle {self.root} lists no model: re-export it")

    def verify(self, keys: list[str] | None = None) -> None:
        """Check size and SHA-256 of the listed models (all by default) against the metadata,
        and of the extra files (hand models, licences) those models need."""
        for key in keys or list(self.models):
            verify_file(self.root, self.models[key])
        for entry in self.extra_files_for(keys):
            verify_file(self.root, entry)

    # --- format 2: the pipeline and its extra files ----------------------------------------

    @property
    def pipeline(self) -> dict:
        """``metadata["pipeline"]``; a bundle without one is an image pipeline."""
        return self.metadata.get("pipeline") or {"kind": "image"}

    @property
    def kind(self) -> str:
        return self.pipeline.get("kind", "image")

    @property
    def extra_files(self) -> list[dict]:
        return list(self.metadata.get("extra_files", []))

    def stage_variant(self, stage: str, key: str) -> tuple[str, Path]:
        """The variant of pipeline ``stage`` that runs with ``--model key``: the same key if the
        stage has it, else the same format's float variant (fp32, then fp16)."""
        stages = self.pipeline.get("stages", {})
        if stage not in stages:
            raise UserError(f"bundle {self.root} has no pipeline stage {stage!r} (it has "
                            f"{', '.join(stages) or 'none'}): re-export it")
        variants = stages[stage]
        model_format = key.split("-", 1)[0]
        candidates = [key] + [f"{model_format}-{precision}" for precision in FLOAT_PRECISIONS]
        for candidate in candidates:
            if candidate in variants:
                return candidate, self.root / variants[candidate]
        raise UserError(f"bundle {self.root}: stage {stage!r} has no {model_format} variant for "
                        f"--model {key} (it has {', '.join(variants)}): pick another --model")

    def stage_paths(self, key: str) -> dict[str, tuple[str, Path]]:
        """Every stage's (variant key, file) for ``--model key``, in pipeline order."""
        return {stage: self.stage_variant(stage, key)
                for stage in self.pipeline.get("stages", {})}

    def describe_stages(self, key: str) -> str:
        """One line naming each stage's variant, and why when it is not ``key`` itself."""
        parts = []
        for stage, (variant, _) in self.stage_paths(key).items():
            note = "" if variant == key else f" (no {key} variant: float)"
            parts.append(f"{stage} {variant}{note}")
        return ", ".join(parts)

    def extra_files_for(self, keys: list[str] | None = None) -> list[dict]:
        """The extra files to verify for ``keys``: all of them by default; else the stage
        files those keys run, plus every file no stage names (licences, labels)."""
        extras = self.extra_files
        if not keys or not self.pipeline.get("stages"):
            return extras
        staged = {file for variants in self.pipeline["stages"].values()
                  for file in variants.values()}
        needed = {str(path.relative_to(self.root)) for key in keys
                  for _, path in self.stage_paths(key).values()}
        return [entry for entry in extras if entry["file"] in needed or entry["file"] not in staged]


def verify_file(root: Path, entry: dict) -> None:
    """Size and SHA-256 of ``root / entry["file"]`` against the entry, or a UserError."""
    path = root / entry["file"]
    if not path.is_file():
        raise UserError(f"{path} is missing from the bundle: re-copy or re-export it")
    if path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
        raise UserError(f"checksum mismatch for {path}: the file is corrupt or was "
                        "changed, re-copy or re-export the bundle")


def verdict_state(entry: dict) -> str:
    """``passed``, ``failed`` or ``unknown`` (a bundle exported before verdicts existed, or a
    float model the thresholds do not apply to and the export left without one)."""
    verdict = entry.get("verdict")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool):
        return "unknown"
    return "passed" if verdict["ok"] else "failed"


def verdict_summary(entry: dict) -> str:
    """The verdict's violations in one line (what the export measured)."""
    verdict = entry.get("verdict") or {}
    violations = verdict.get("violations") or []
    return "; ".join(str(v) for v in violations) or "outside the export thresholds"


#: metadata.json fields the device reads, with the type each must have.
REQUIRED_FIELDS = {"task": str, "labels": list, "preprocessing": dict, "models": list}
PREPROCESSING_FIELDS = {"size": list, "colour": str, "channels": int, "scale": (int, float),
                        "offset": (int, float)}
MODEL_FIELDS = {"file": str, "format": str, "precision": str, "bytes": int, "sha256": str}


#: Values the device understands for the fields that choose what it does: anything else would
#: silently run as something else (an unknown colour as RGB, an unknown kind as an image).
KINDS = ("image", "hands")
COLOURS = ("gray", "rgb")
CROPS = (None, "center_square", "none")
#: Names the result vocabulary gives a meaning of its own (docs/contracts.md): a class cannot
#: be called that.
RESERVED_LABELS = ("nothing", "unsure")


def is_number(value) -> bool:
    """A real, finite number (JSON has no NaN, but Python's json reads one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def validate_metadata(metadata: dict, meta_path: Path) -> None:
    """Refuse, in one line, metadata with a missing field, one of the wrong type or a value the
    device does not know: the runner would otherwise fail later with a traceback, or run as
    something else and answer wrongly (the gate, ``device check``, relies on this)."""
    def bad(what: str) -> UserError:
        return UserError(f"{meta_path}: {what}: re-export the bundle")

    def need(container: dict, fields: dict, where: str) -> None:
        for name, kind in fields.items():
            if name not in container:
                raise UserError(f"{meta_path} lacks {where}{name!r}: re-export the bundle")
            value = container[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise bad(f"{where}{name!r} has the wrong type ({type(value).__name__})")

    need(metadata, REQUIRED_FIELDS, "")
    labels = metadata["labels"]
    validate_labels(labels, bad)
    pipeline = metadata.get("pipeline", {"kind": "image"})
    if not isinstance(pipeline, dict) or not isinstance(pipeline.get("kind"), str):
        raise bad("'pipeline' must be an object with a 'kind'")
    if pipeline["kind"] not in KINDS:
        raise bad(f"pipeline.kind {pipeline['kind']!r} is not one this runner knows "
                  f"({', '.join(KINDS)})")
    confidence = pipeline.get("min_confidence")
    if confidence is not None and not (is_number(confidence) and 0 <= confidence <= 1):
        raise bad(f"pipeline.min_confidence {confidence!r} must be a number from 0 to 1")
    if pipeline["kind"] == "image":  # the hands pipeline's classifier reads landmarks instead
        validate_image_preprocessing(metadata["preprocessing"], need, bad)
    else:
        validate_hand_pipeline(pipeline, bad)
        shape = metadata.get("input", {}).get("shape") if isinstance(metadata.get("input"),
                                                                       dict) else None
        if not (isinstance(shape, list) and shape and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise bad("input.shape must be the classifier's input shape, e.g. [1, 63]")
    if not metadata["models"]:
        raise bad("'models' lists no model")
    for index, entry in enumerate(metadata["models"]):
        if not isinstance(entry, dict):
            raise bad(f"models[{index}] is not an object")
        need(entry, MODEL_FIELDS, f"models[{index}].")
        inside_bundle(entry["file"], f"models[{index}].file", bad)
        validate_verdict(entry.get("verdict"), f"models[{index}].verdict", bad)
    keys = [model_key(entry) for entry in metadata["models"]]
    doubles = sorted({key for key in keys if keys.count(key) > 1})
    if doubles:
        raise bad(f"'models' lists {', '.join(doubles)} more than once")
    extras = metadata.get("extra_files", [])
    if not isinstance(extras, list):
        raise bad("'extra_files' must be a list")
    for index, entry in enumerate(extras):
        if not isinstance(entry, dict):
            raise bad(f"extra_files[{index}] is not an object")
        need(entry, {"file": str, "bytes": int, "sha256": str}, f"extra_files[{index}].")
        inside_bundle(entry["file"], f"extra_files[{index}].file", bad)
        if entry.get("role") == "sample-frame" and entry.get("label") not in labels:
            raise bad(f"extra_files[{index}] is a sample frame whose label "
                      f"{entry.get('label')!r} is not one of the bundle's labels")


def validate_labels(labels: list, bad) -> None:
    if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
        raise bad("'labels' must be a non-empty list of class names")
    doubles = sorted({label for label in labels if labels.count(label) > 1})
    if doubles:
        raise bad(f"'labels' names {', '.join(map(repr, doubles))} more than once")
    reserved = [label for label in labels if label.lower() in RESERVED_LABELS]
    if reserved:
        raise bad(f"'labels' has {reserved[0]!r}, an answer of its own in the result vocabulary "
                  "(rename the class)")


def validate_image_preprocessing(spec: dict, need, bad) -> None:
    need(spec, PREPROCESSING_FIELDS, "preprocessing.")
    size = spec["size"]
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                 for v in size):
        raise bad("preprocessing.size must be [height, width] in pixels")
    if spec["colour"] not in COLOURS:
        raise bad(f"preprocessing.colour {spec['colour']!r} is not one of {', '.join(COLOURS)}")
    if spec.get("crop") not in CROPS:
        raise bad(f"preprocessing.crop {spec.get('crop')!r} is not one this runner knows "
                  "(center_square)")
    if not (is_number(spec["scale"]) and spec["scale"] > 0 and is_number(spec["offset"])):
        raise bad("preprocessing.scale must be a positive number and offset a number")


def validate_hand_pipeline(pipeline: dict, bad) -> None:
    """Stages as {stage: {key: file}}, the landmark features this runner computes, and
    thresholds of the types and ranges the tracker uses (device/hands/tracker.py
    DEFAULT_THRESHOLDS): a string where a number belongs would pass every check and crash on
    the first hand."""
    from device.hands import features as hand_features
    from device.hands.tracker import DEFAULT_THRESHOLDS
    from device.hands.validate import threshold_problem

    stages = pipeline.get("stages")
    if not isinstance(stages, dict) or not stages or not all(
            isinstance(variants, dict) and variants
            and all(isinstance(k, str) and isinstance(f, str) for k, f in variants.items())
            for variants in stages.values()):
        raise bad("pipeline.stages must map each stage to its {model key: file}")
    for stage, variants in stages.items():
        for key, file in variants.items():
            inside_bundle(file, f"pipeline.stages.{stage}.{key}", bad)
    features = pipeline.get("features", hand_features.VERSION)  # absent: the one there is
    if features != hand_features.VERSION:
        raise bad(f"pipeline.features {features!r} is not the landmark features this runner "
                  f"computes ({hand_features.VERSION!r}): a newer toolkit's bundle, update the "
                  "device (or re-export the bundle with this toolkit)")
    thresholds = pipeline.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise bad("pipeline.thresholds must be an object")
    for name, value in thresholds.items():
        if name not in DEFAULT_THRESHOLDS:
            raise bad(f"pipeline.thresholds has {name!r}, which this runner does not know "
                      "(a newer toolkit's bundle: update the device)")
        problem = threshold_problem(name, value)
        if problem:
            raise bad(f"pipeline.thresholds.{name} {value!r}: {problem}")


def inside_bundle(file: str, where: str, bad) -> None:
    """A bundle's files are inside it: a relative path without '..' (a bundle must never make
    the device read another file, such as another bundle's model)."""
    parts = Path(file).parts
    if not file or Path(file).is_absolute() or ".." in parts or file.startswith("~"):
        raise bad(f"{where} {file!r} must be a path inside the bundle")


def validate_verdict(verdict, where: str, bad) -> None:
    """A verdict, when there is one, is the export's: ``ok`` a boolean, ``violations`` a list,
    and ``ok`` true only with no violations (a hand-edited "ok" over failing figures is
    refused, not trusted)."""
    if verdict is None:
        return
    if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool):
        raise bad(f"{where} must be an object with a boolean 'ok'")
    violations = verdict.get("violations", [])
    if not isinstance(violations, list):
        raise bad(f"{where}.violations must be a list")
    if verdict["ok"] and violations:
        raise bad(f"{where} says ok but lists violations ({'; '.join(map(str, violations))})")


def open_bundle(root: str | Path, verify: bool = True, keys: list[str] | None = None) -> Bundle:
    """Read and validate ``root/metadata.json``; verify checksums of ``keys`` (all by default)."""
    root = Path(root)
    meta_path = root / "metadata.json"
    if not meta_path.is_file():
        raise UserError(f"no bundle at {root} (metadata.json missing): run `make export` or "
                        "pass --bundle pointing at artifacts/<task>/bundle")
    try:
        metadata = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}): re-export the bundle") from None
    version = metadata.get("bundle_format") if isinstance(metadata, dict) else None
    if isinstance(version, bool) or version not in READABLE_FORMATS:
        raise UserError(f"{meta_path} has bundle format {version!r}, this device runner reads "
                        f"formats {', '.join(map(str, READABLE_FORMATS))}: re-export with the "
                        "same toolkit version")
    validate_metadata(metadata, meta_path)
    bundle = Bundle(root, metadata)
    if verify:
        bundle.verify(keys)
    return bundle
