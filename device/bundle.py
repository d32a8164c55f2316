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
#: Formats this runner reads: 1 (PR-era classic bundles) and 2 (adds pipeline, verdicts, extra
#: files; docs/contracts.md). A format-1 bundle is an ``image`` pipeline with no verdicts.
READABLE_FORMATS = (1, 2)
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

    def stage_model(self, stage: str, key: str) -> tuple[Path, str]:
        """(file, variant key) of a pipeline stage's model for the ``--model`` choice ``key``.

        A stage takes the same key where it has it (``tflite-int8``), else the same format's
        float variant (fp32, then fp16): each stage runs at the chosen precision where it has
        that precision, and in float where it does not.
        """
        variants = ((self.metadata.get("pipeline") or {}).get("stages") or {}).get(stage)
        if not variants:
            raise UserError(f"bundle {self.root} has no {stage!r} stage model: re-export it")
        model_format = key.split("-")[0]
        for candidate in (key, f"{model_format}-fp32", f"{model_format}-fp16"):
            if candidate in variants:
                return self.root / variants[candidate], candidate
        raise UserError(f"bundle {self.root} has no {model_format} variant of its {stage!r} "
                        f"stage (it has {', '.join(variants)}): pick another --model")

    def verify(self, keys: list[str] | None = None) -> None:
        """Check size and SHA-256 of the listed models (all by default) against the metadata."""
        for key in keys or list(self.models):
            entry = self.models[key]
            path = self.root / entry["file"]
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
                        f"formats {', '.join(map(str, READABLE_FORMATS))}: re-export with the "
                        "same toolkit version")
    for field in ("task", "labels", "preprocessing", "models"):
        if field not in metadata:
            raise UserError(f"{meta_path} lacks {field!r}: re-export the bundle")
    bundle = Bundle(root, metadata)
    if verify:
        bundle.verify(keys)
    return bundle
