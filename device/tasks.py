"""The three tasks: their default labels, input geometry and camera handling.

This is the single source of truth that ``train/`` and ``export/`` import, so the model is trained
on exactly the tensor the device feeds it. A trained bundle records the *actual* labels and
preprocessing it used (``metadata.json``); the device reads those, not this table, so a bundle
trained on another class list or size still runs correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

from device.errors import UserError

#: The classic 16-class Fruits-360 subset the product targets when those folders exist.
CLASSIC_FRUITS = (
    "Kiwi", "Banana", "Apricot", "Avocado", "Cocos", "Clementine", "Mandarine", "Orange",
    "Limes", "Lemon", "Peach", "Plum", "Raspberry", "Strawberry", "Pineapple", "Pomegranate",
)
HANDSIGNS = ("rock", "paper", "scissors")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class TaskSpec:
    """What a task's model eats: ``size`` x ``size`` pixels in ``colour``, scaled to [0, 1].

    ``camera`` names the way a live frame becomes that input: ``digit_ink`` turns a dark digit on
    light paper into an MNIST-like patch; ``crop`` takes the region of interest as it is;
    ``locate`` finds the subject against its background and crops a square around it (fruits:
    Fruits-360 photos are fruits segmented from white and scaled to fill the frame).
    """

    name: str
    labels: tuple[str, ...]
    size: int
    colour: str  # "gray" or "rgb"
    camera: str  # "digit_ink", "crop" or "locate"
    description: str

    @property
    def channels(self) -> int:
        return 1 if self.colour == "gray" else 3

    def preprocessing(self, size: int | None = None) -> dict:
        """The preprocessing spec written into metadata.json and read back by the device."""
        side = int(size or self.size)
        return {
            "size": [side, side],
            "colour": self.colour,
            "channels": self.channels,
            "layout": "NHWC",
            "crop": "center_square",
            "interpolation": "area",
            "scale": 1.0 / 255.0,
            "offset": 0.0,
            "camera": self.camera,
        }


TASKS: dict[str, TaskSpec] = {
    "digits": TaskSpec("digits", DIGITS, 28, "gray", "digit_ink",
                       "handwritten digits 0-9 (MNIST)"),
    "fruits": TaskSpec("fruits", CLASSIC_FRUITS, 64, "rgb", "locate",
                       "fruit photos (Fruits-360 folders)"),
    "handsigns": TaskSpec("handsigns", HANDSIGNS, 96, "rgb", "crop",
                          "rock / paper / scissors hand signs"),
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, or fail with the list of valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}") from None
