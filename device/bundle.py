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
PREFERENCE = ("tflite-int8", "onnx-int8", "tflite-dynamic", "tflite-fp16", "tflite-fp32",
              "onnx-fp32", "onnx-dynamic")


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

    def choose(self, requested: str | None = None) -> str:
        """``requested`` if the bundle has it, else the best available by :data:`PREFERENCE`."""
        available = self.models
        if requested:
            if requested not in available:
                raise UserError(f"--model {requested} is not in bundle {self.root}: it has "
                                f"{', '.join(available)}")
            return requested
        for key in PREFERENCE:
            if key in available:
                return key
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


def open_bundle(root: str | Path, verify: bool = True, keys: list[str] | None = None) -> Bundle:
    """Read and validate ``root/metadata.json``; verify checksums of ``keys`` (all by default)."""
    root = Path(root)
    meta_path = root / "metadata.json"
    if not meta_path.is_file():
        raise UserError(f"no bundle at {root} (metadata.json missing): run `make export` or "
                        "pass --bundle pointing at artifacts/<task>/bundle")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}): re-export the bundle") from None
    version = metadata.get("bundle_format") if isinstance(metadata, dict) else None
    if version not in READABLE_FORMATS:
        raise UserError(f"{meta_path} has bundle format {version!r}, this device runner reads "
                        f"format {' or '.join(map(str, READABLE_FORMATS))}: re-export with the "
                        "same toolkit version")
    for field in ("task", "labels", "preprocessing", "models"):
        if field not in metadata:
            raise UserError(f"{meta_path} lacks {field!r}: re-export the bundle")
    bundle = Bundle(root, metadata)
    if verify:
        bundle.verify(keys)
    return bundle
