"""The run header's GPU line (fedlang/lib/devices.py), by injecting the devices TensorFlow would list."""

from __future__ import annotations

from collections import namedtuple

from .support import compile_text, load_program

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
    from fedlang.lib.devices import gpu_note

    gpus = [Device("/physical_device:GPU:0", "GPU"), Device("/physical_device:GPU:1", "GPU")]
    fused = gpu_note(True, list_gpus=lambda: gpus)
    assert fused.startswith("TensorFlow sees 2 GPUs (/physical_device:GPU:0, /physical_device:GPU:1)")
    assert "fused path" in fused and "not measured" in fused
    assert "per-client path" in gpu_note(False, list_gpus=lambda: gpus[:1])
    assert gpu_note(True, list_gpus=lambda: []) is None


def test_the_emitted_program_asks_tensorflow_and_prints_the_note(monkeypatch):
    compiled = compile_text(SPEC)
    program = compiled.program()
    main = program[program.index("def main():"):]
    assert "note = gpu_note(fused=True)" in main and "print(note, flush=True)" in main
    ns = load_program(compiled)
    assert ns["gpu_note"](fused=True) is None  # this machine has no GPU: nothing is printed
    monkeypatch.setattr(ns["tf"].config, "list_physical_devices",
                        lambda kind=None: [Device("/physical_device:GPU:0", "GPU")] if kind == "GPU" else [])
    assert ns["gpu_note"](fused=True).startswith("TensorFlow sees 1 GPU (/physical_device:GPU:0)")
