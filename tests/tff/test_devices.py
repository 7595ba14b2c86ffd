"""The run header's GPU line (fedlang/runtime/devices.py), by injecting the devices TensorFlow would list."""

from __future__ import annotations

from collections import namedtuple

from .support import compile_text

Device = namedtuple("Device", "name device_type")
SPEC = """\
seed 1
model m {
  input [4]
  dense 3 softmax
  loss sparse_categorical_crossentropy
}
data { source sklearn.iris  partition iid(clients = 4) }
train fedavg { rounds 1 }
"""


def test_gpu_note_names_the_gpus_and_the_path():
    from fedlang.runtime.devices import gpu_note

    gpus = [Device("/physical_device:GPU:0", "GPU"), Device("/physical_device:GPU:1", "GPU")]
    fused = gpu_note(True, list_gpus=lambda: gpus)
    assert fused.startswith("TensorFlow sees 2 GPUs (/physical_device:GPU:0, /physical_device:GPU:1)")
    assert "fused path" in fused and "not measured" in fused
    assert "per-client path" in gpu_note(False, list_gpus=lambda: gpus[:1])
    assert gpu_note(True, list_gpus=lambda: []) is None


def test_the_run_header_asks_tensorflow(monkeypatch):
    """`fedlang run` prints the note from fedlang/runtime/devices.py; the emitted program carries none."""
    import tensorflow as tf

    from fedlang.runtime.devices import gpu_note

    assert "gpu_note" not in compile_text(SPEC).program()
    assert gpu_note(fused=True) is None  # this machine has no GPU: nothing is printed
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [Device("/physical_device:GPU:0", "GPU")] if kind == "GPU" else [])
    assert gpu_note(fused=True).startswith("TensorFlow sees 1 GPU (/physical_device:GPU:0)")
