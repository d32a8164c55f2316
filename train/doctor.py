"""``python -m train doctor``: what this machine will train on, proven by a short timed run.

The GPU paths (MirroredStrategy over several GPUs, mixed float16, augmentation inside the
model) are exercised by the test suite only on CPU, where they fall back. On a GPU box this
command shows what ``python -m train`` will actually use there: the devices TensorFlow sees, the
strategy and replica count that ``--strategy auto`` picks, whether mixed precision turns on,
and a few real training steps of the digits network with that set-up, timed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np


def nvidia_smi() -> str:
    if not shutil.which("nvidia-smi"):
        return "nvidia-smi: not found (no NVIDIA driver on this machine)"
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                           "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    return ("nvidia-smi: " + "; ".join(done.stdout.split("\n")).strip("; ")
            if done.returncode == 0 else f"nvidia-smi: failed ({done.stderr.strip()})")


def device_lines(tf) -> list[str]:
    lines = []
    for device in tf.config.list_physical_devices():
        detail = ""
        if device.device_type == "GPU":
            info = tf.config.experimental.get_device_details(device)
            detail = f"  {info.get('device_name', '?')}, compute capability " \
                     f"{info.get('compute_capability', '?')}"
        lines.append(f"  {device.name}{detail}")
    return lines


def timed_steps(tf, keras, strategy, mixed: bool, steps: int, batch: int) -> tuple[float, float]:
    """``steps`` real training steps of the digits convnet on random 28x28 images under
    ``strategy``; returns (seconds per step after the first, images per second)."""
    from train.models import build_model

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    global_batch = batch * strategy.num_replicas_in_sync
    rng = np.random.default_rng(0)
    x = rng.random((global_batch * (steps + 1), 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)
    with strategy.scope():
        model = build_model("digits", "convnet", (28, 28, 1), 10, None)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    model.fit(data.take(1), epochs=1, verbose=0, shuffle=False)  # trace and compile once
    started = time.perf_counter()
    model.fit(data.skip(1), epochs=1, verbose=0, shuffle=False)
    seconds = (time.perf_counter() - started) / steps
    keras.mixed_precision.set_global_policy("float32")
    return seconds, global_batch / seconds


def main(strategy_name: str = "auto", mixed_setting: str = "auto", steps: int = 20,
         batch: int = 128) -> int:
    import keras
    import tensorflow as tf

    from train.trainer import choose_strategy, use_mixed_precision

    print(f"tensorflow {tf.__version__} (built with CUDA: {tf.test.is_built_with_cuda()}), "
          f"keras {keras.__version__}")
    print(nvidia_smi())
    print("devices TensorFlow sees:")
    print("\n".join(device_lines(tf)))
    if os.environ.get("TF_CONFIG"):
        print(f"TF_CONFIG: {os.environ['TF_CONFIG']}")
    strategy = choose_strategy(strategy_name)
    mixed = use_mixed_precision(mixed_setting)
    print(f"strategy (--strategy {strategy_name}): {type(strategy).__name__}, "
          f"{strategy.num_replicas_in_sync} replica(s)")
    print(f"mixed precision (--mixed-precision {mixed_setting}): "
          f"{'mixed_float16' if mixed else 'float32'}")
    gpus = tf.config.list_physical_devices("GPU")
    print(f"augmentation runs: {'inside the model, on the GPU' if gpus else 'in tf.data, on the CPU'}")
    seconds, rate = timed_steps(tf, keras, strategy, mixed, steps, batch)
    print(f"timed run: {steps} steps of the digits convnet, global batch "
          f"{batch * strategy.num_replicas_in_sync}: {seconds * 1000:.1f} ms/step, "
          f"{rate:,.0f} images/s")
    return 0
