"""Training-time scenes (train/scene.py): studio photos put on surfaces, under a room's lamp."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def studio_batch(n: int = 64, size: int = 32) -> np.ndarray:
    """White studio photos with a saturated square "fruit" in the middle."""
    images = np.ones((n, size, size, 3), np.float32)
    images[:, 10:22, 10:22] = (0.7, 0.3, 0.1)
    return images


def test_lamp_gains_stay_in_the_lamp_ranges():
    from train import scene

    generator = keras.random.SeedGenerator(3)
    gains = np.asarray(scene.lamp_gains(
        lambda shape, low, high: keras.random.uniform(shape, low, high, seed=generator), 500))
    assert gains.shape == (500, 1, 1, 3)
    green = gains[..., 1]
    low, high = scene.LAMP_EXPOSURE
    assert green.min() >= low - 1e-6 and green.max() <= high + 1e-6
    assert green.max() - green.min() > 0.5 * (high - low)  # it does vary
    for channel in (0, 2):
        cast = gains[..., channel] / green
        assert cast.min() >= scene.LAMP_CAST[0] - 1e-5 and cast.max() <= scene.LAMP_CAST[1] + 1e-5
        assert np.std(cast) > 0.02


def test_scenes_are_lit_and_studio_photos_stay_as_the_studio_lit_them():
    from train.scene import SceneBackground

    images = studio_batch()
    layer = SceneBackground(keep_white=0.5, shadow=0.0, light=True, seed=7)
    out = np.asarray(layer(images, training=True))
    kept = np.all(out == images, axis=(1, 2, 3))
    assert 10 < kept.sum() < 54, "about half are kept on white, untouched"
    fruit = out[~kept, 16, 16]  # the subject itself, in the images put on a surface
    original = images[0, 16, 16]
    changed = np.abs(fruit - original).max(axis=1) > 0.02
    assert changed.mean() > 0.8, "the lamp lights the subject too"
    ratio = fruit[:, 0] / fruit[:, 1] / (original[0] / original[1])
    assert ratio.std() > 0.02, "each image gets its own colour cast"
    unlit = np.asarray(SceneBackground(keep_white=0.5, shadow=0.0, seed=7)(images, training=True))
    assert np.allclose(unlit[~np.all(unlit == images, axis=(1, 2, 3)), 16, 16], original,
                       atol=1e-6), "without light the subject's pixels are the photo's"
    assert np.array_equal(np.asarray(layer(images, training=False)), images)


def test_the_layer_round_trips_through_a_saved_model(tmp_path):
    from train.scene import SceneBackground

    model = keras.Sequential([keras.Input((32, 32, 3)), SceneBackground(light=True, seed=1)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].get_config()["light"] is True
