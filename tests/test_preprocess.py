"""The shared preprocessing: shapes, colours, crop geometry and scaling."""

import numpy as np
import pytest

from device.errors import UserError
from device.preprocess import center_square, fit_image, preprocess, to_colour, to_input
from device.tasks import TASKS, get_task


def test_center_square_keeps_the_middle():
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, 30:70] = 255
    square = center_square(image)
    assert square.shape == (40, 40, 3)
    assert square.min() == 255


def test_to_colour_converts_bgr_to_rgb_and_gray():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV order
    assert to_colour(bgr, "rgb")[0, 0].tolist() == [0, 0, 200]
    gray = to_colour(bgr, "gray")
    assert gray.shape == (4, 4) and 20 < gray[0, 0] < 30  # 0.114 * 200
    assert to_colour(gray, "rgb").shape == (4, 4, 3)


@pytest.mark.parametrize("task", list(TASKS))
def test_fit_image_produces_the_model_input_shape(task):
    spec = TASKS[task].preprocessing()
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    fitted = fit_image(frame, spec)
    assert fitted.shape == (*spec["size"], spec["channels"]) and fitted.dtype == np.uint8
    batch = preprocess(frame, spec)
    assert batch.shape == (1, *fitted.shape) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_to_input_scales_exactly_per_spec():
    spec = TASKS["digits"].preprocessing()
    pixels = np.array([[[[0]], [[255]]]], np.uint8)
    np.testing.assert_allclose(to_input(pixels, spec).ravel(), [0.0, 1.0])


def test_unknown_task_is_a_user_error():
    with pytest.raises(UserError, match="unknown task 'cats'"):
        get_task("cats")
