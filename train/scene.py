"""Training-time scenes for studio photos: the real subject on procedural backgrounds.

Fruits-360 photos show each fruit on pure white. On the device the locator (device/locate.py)
cuts a square around the fruit wherever it lies, so the model sees the fruit with a margin of
table, wall or cloth around it, lit by a lamp, sometimes with its shadow. This layer shows the
model that during training: the white is replaced by a random surface (a plain colour with a
gradient, wood-like grain, mottled plaster, a fine weave), sometimes with a soft cast shadow,
and a room lamp's exposure and colour cast over subject and surface alike. The subject's shape
and texture are never altered here: it stays the real photo.

It runs inside the Keras augmentation model (tf.data on a CPU, in the model on a GPU), after
the geometric layers (whose reflect/constant fill keeps the studio white white) and before the
brightness and contrast layers.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="edgekit")
class SceneBackground(layers.Layer):
    """Replace a studio photo's white background by a random surface (training only).

    ``keep_white``: the fraction of images left on white (the photos as they are).
    ``shadow``: the fraction that get a soft shadow of the subject cast on the surface.
    ``light``: the images put on a surface are also lit by a random lamp (:func:`lamp_gains`).
    Inputs are float images in [0, 1], NHWC, 3 channels.
    """

    def __init__(self, keep_white: float = 0.2, shadow: float = 0.5, light: bool = False,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.keep_white = keep_white
        self.shadow = shadow
        self.light = light
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {**super().get_config(), "keep_white": self.keep_white, "shadow": self.shadow,
                "light": self.light, "seed": self.seed}

    def uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, low, high, seed=self.generator)

    def background_mask(self, images):
        """1 where the studio white is: near-white in every channel, specks (highlights on the
        fruit) removed by an opening, grown and softened by a pixel."""
        darkest = ops.min(images, axis=-1, keepdims=True)
        white = ops.clip((darkest - 0.82) / 0.08, 0.0, 1.0)
        eroded = -ops.max_pool(-white, 5, strides=1, padding="same")
        opened = ops.max_pool(eroded, 5, strides=1, padding="same")
        # Grown by a pixel: the photo's anti-aliased rim is half white, a pale halo no camera
        # scene has.
        grown = ops.max_pool(ops.minimum(opened, white), 3, strides=1, padding="same")
        return ops.average_pool(grown, 3, strides=1, padding="same")

    def surfaces(self, batch, height, width):
        """A batch of random surfaces (N, H, W, 3) in [0, 1]."""
        ys = ops.reshape(ops.linspace(-0.5, 0.5, height), (1, height, 1, 1))
        xs = ops.reshape(ops.linspace(-0.5, 0.5, width), (1, 1, width, 1))
        base = self.uniform((batch, 1, 1, 3), 0.12, 0.95)
        angle = self.uniform((batch, 1, 1, 1), 0.0, 2 * math.pi)
        along = ops.cos(angle) * xs + ops.sin(angle) * ys
        gradient = self.uniform((batch, 1, 1, 1), -0.35, 0.35) * along
        blotches = ops.image.resize(self.uniform((batch, 4, 4, 1), -1.0, 1.0), (height, width),
                                    interpolation="bicubic")
        warp = ops.image.resize(self.uniform((batch, 3, 3, 1), -1.0, 1.0), (height, width),
                                interpolation="bicubic")
        period = self.uniform((batch, 1, 1, 1), 0.04, 0.25)
        across = -ops.sin(angle) * xs + ops.cos(angle) * ys
        grain = ops.sin(2 * math.pi * (across + 0.08 * warp) / period)
        fine = self.uniform((batch, height, width, 1), -1.0, 1.0)
        # Per image, how much of each texture: none (plain), grain (wood), blotches (plaster),
        # fine noise (weave, paper, sensor).
        amounts = self.uniform((batch, 1, 1, 3), 0.0, 1.0) * ops.convert_to_tensor([0.18, 0.1, 0.06])
        use_grain = ops.cast(self.uniform((batch, 1, 1, 1)) < 0.4, "float32")
        texture = 1.0 + gradient + amounts[..., 0:1] * grain * use_grain \
            + amounts[..., 1:2] * blotches + amounts[..., 2:3] * fine
        return ops.clip(base * texture, 0.0, 1.0)

    def cast_shadow(self, subject, batch, height, width):
        """A soft shadow of ``subject`` (N, H, W, 1), offset down and sideways, as a dimming
        factor in [0.5, 1]."""
        shift_y = int(round(0.08 * height))
        shifted = ops.concatenate([ops.zeros_like(subject[:, :shift_y]),
                                   subject[:, :height - shift_y]], axis=1)
        sideways = ops.cast(self.uniform((batch, 1, 1, 1)) < 0.5, "float32")
        shift_x = int(round(0.06 * width))
        right = ops.concatenate([ops.zeros_like(shifted[:, :, :shift_x]),
                                 shifted[:, :, :width - shift_x]], axis=2)
        shifted = sideways * right + (1.0 - sideways) * shifted
        soft = ops.average_pool(shifted, 9, strides=1, padding="same")
        depth = self.uniform((batch, 1, 1, 1), 0.2, 0.5)
        on = ops.cast(self.uniform((batch, 1, 1, 1)) < self.shadow, "float32")
        return 1.0 - on * depth * soft

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width = shape[0], images.shape[1], images.shape[2]
        mask = self.background_mask(images)
        scene = self.surfaces(batch, height, width)
        scene = scene * self.cast_shadow(1.0 - mask, batch, height, width)
        replace = ops.cast(self.uniform((batch, 1, 1, 1)) >= self.keep_white, "float32")
        mask = mask * replace
        composed = images * (1.0 - mask) + scene * mask
        if not self.light:
            return composed
        # A subject on a surface is lit by the room's lamp, subject and surface alike; a studio
        # photo (kept on white) stays as the studio lit it.
        gains = lamp_gains(self.uniform, batch)
        lit = ops.clip(composed * gains, 0.0, 1.0)
        return replace * lit + (1.0 - replace) * composed

    def compute_output_shape(self, input_shape):
        return input_shape


#: A room lamp as a camera records it: the exposure (all channels) and the colour cast (red and
#: blue each against green) it leaves after the camera's auto white balance.
LAMP_EXPOSURE = (0.65, 1.1)
LAMP_CAST = (0.9, 1.1)


def lamp_gains(uniform, batch):
    """Per-image channel gains (N, 1, 1, 3) of a dim or bright, warm or cool lamp.

    Studio photos are evenly lit and white-balanced; a webcam on a desk sees the subject under
    a dim or warm bulb, or cool daylight, and its auto white balance is rarely exact. Measured
    on the fruits footage before this: most of the fruits the locator framed well but the model
    misread were under a dim or tinted light (an orange read as a peach, a golden apple as a
    papaya). ``uniform(shape, low, high)`` draws the random numbers (the layer's generator)."""
    exposure = uniform((batch, 1, 1, 1), *LAMP_EXPOSURE)
    red, blue = uniform((batch, 1, 1, 1), *LAMP_CAST), uniform((batch, 1, 1, 1), *LAMP_CAST)
    return exposure * ops.concatenate([red, ops.ones_like(red), blue], axis=-1)
