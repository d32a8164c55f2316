"""The built-in tasks, and the user's own: their labels, input geometry and camera handling.

This is the single source of truth that ``train/`` and ``export/`` import, so the model is trained
on exactly the tensor the device feeds it. A trained bundle records the *actual* labels and
preprocessing it used (``metadata.json``); the device reads those, not this table, so a bundle
trained on another class list or size, or a task of the user's own (``python -m train images``,
:func:`custom_task`), runs without the device knowing its name.
"""

from __future__ import annotations

import re
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
    #: The training recipe (train/: defaults, convnet plan, augmentation) this task uses: a
    #: built-in task's own name, or ``images`` for a task made from the user's image folders.
    recipe: str = ""

    @property
    def family(self) -> str:
        return self.recipe or self.name

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


#: The recipe family of tasks trained from a user's own image folders.
IMAGES = "images"
#: Input side of a user's task trained from scratch (the fruits convnet's size).
CUSTOM_SIZE = 64
#: A task name becomes a folder (artifacts/NAME/) and a file name (calibration_data/NAME.npz).
TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def check_task_name(name: str) -> str:
    """A user's task name: a safe folder name that does not shadow a built-in task."""
    if name in TASKS or name in (IMAGES, "diagnose"):
        raise UserError(f"--name {name!r} is taken by a built-in task or command: pick another "
                        "name for your classes (e.g. --name my_fruits)")
    if not TASK_NAME.match(name):
        raise UserError(f"--name {name!r} is not a usable task name: use 1-40 lower-case letters, "
                        "digits, '_' or '-', starting with a letter (e.g. --name gestures)")
    return name


def custom_task(name: str, labels, size: int = CUSTOM_SIZE, colour: str = "rgb") -> TaskSpec:
    """A task of the user's own: photos of ``labels`` taken as they are (camera mode ``crop``)."""
    return TaskSpec(check_task_name(name), tuple(labels), int(size), colour, "crop",
                    f"your own classes: {', '.join(labels)}", recipe=IMAGES)


def get_task(name: str, labels=None, size: int | None = None) -> TaskSpec:
    """A built-in task by name; any other name is a user's task when its ``labels`` are known
    (from its dataset or its trained model's metrics.json), else an error naming the choices."""
    if name in TASKS:
        return TASKS[name]
    if labels is not None:
        return custom_task(name, labels, size or CUSTOM_SIZE)
    raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}, or train your own "
                    "classes with `python -m train images --data DIR --name NAME`")
