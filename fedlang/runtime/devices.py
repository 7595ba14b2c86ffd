"""What `fedlang run`'s header says about accelerators (the emitted program does not print it).

There is no GPU on the machines fedlang is developed on, so nothing here claims a speed-up; the
header only says what TensorFlow sees and where each part of a run executes.
"""

import tensorflow as tf


def gpu_note(fused, list_gpus=None):
    """One line for the run header if TensorFlow sees a GPU, else None. `list_gpus` (default
    `tf.config.list_physical_devices("GPU")`) can be replaced to test the message."""
    gpus = (list_gpus or (lambda: tf.config.list_physical_devices("GPU")))()
    if not gpus:
        return None
    names = ", ".join(getattr(gpu, "name", str(gpu)) for gpu in gpus)
    path = ("fused path: each group of clients trains as one graph there" if fused else
            "per-client path: one small graph per client")
    return (f"TensorFlow sees {len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({names}): Keras evaluation runs on it "
            f"in this process; training runs in the TFF worker_binary, whose TensorFlow places ops on a GPU it "
            f"sees ({path}); not measured by fedlang")

