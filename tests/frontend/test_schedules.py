"""Learning-rate schedules: the rate of every round (fedlang/lib/schedules.py), the syntax inside
an optimizer call, and what the emitted program does with them. No TensorFlow here."""

import math

import pytest

from fedlang.diagnostics import Source, SpecError
from fedlang.lib.schedules import learning_rate_at
from fedlang.pipeline import compile_source

SPEC = """seed 1
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data {
  source sklearn.digits
  partition iid(clients = 20)
}
train fedavg {
  rounds 30  clients_per_round 5
  TRAIN
}
"""


def compile_train(lines: str):
    return compile_source(Source("s.fed", SPEC.replace("TRAIN", lines)))


def test_exponential_decay_is_the_seeds_keras_schedule():
    # tf.keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.96) at step t = round - 1
    schedule = ("exponential_decay", 0.01, 10, 0.96, False)
    for round_num in (1, 2, 11, 30):
        assert learning_rate_at(schedule, round_num) == pytest.approx(0.01 * 0.96 ** ((round_num - 1) / 10))
    stair = ("exponential_decay", 0.01, 10, 0.96, True)
    assert [learning_rate_at(stair, r) for r in (1, 10, 11, 21)] == pytest.approx([0.01, 0.01, 0.0096, 0.009216])


def test_warmup_cosine_and_step():
    assert [learning_rate_at(("warmup", 0.1, 4, 0.0), r) for r in (1, 2, 5, 9)] == pytest.approx([0, 0.025, 0.1, 0.1])
    cosine = ("cosine", 0.1, 10, 0.01)
    assert learning_rate_at(cosine, 1) == pytest.approx(0.1)
    assert learning_rate_at(cosine, 6) == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi / 2)) / 2)
    assert learning_rate_at(cosine, 11) == learning_rate_at(cosine, 40) == 0.01
    assert [learning_rate_at(("step", 0.1, 5, 0.5), r) for r in (1, 5, 6, 11)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_schedule_in_the_optimizer_call_lowers_to_round_one_rate_and_per_round_hparams():
    compiled = compile_train("client_optimizer sgd(learning_rate = exponential_decay(0.01, 10, 0.96))\n"
                             "  server_optimizer sgd(learning_rate = cosine(1.0, 30), momentum = 0.9)")
    program = compiled.program()
    assert "CLIENT_LEARNING_RATE = ('exponential_decay', 0.01, 10, 0.96, False)" in program
    assert "SERVER_LEARNING_RATE = ('cosine', 1.0, 30, 0.0)" in program
    assert "build_sgdm(learning_rate=0.01)" in program  # round 1's rate when the process is built
    assert "state, rates = set_learning_rates(process, state, round_num)" in program
    assert "def learning_rate_at(schedule, round_num):" in program  # copied, not imported


def test_plain_rates_emit_no_schedule_code():
    program = compile_train("client_optimizer sgd(learning_rate = 0.05)").program()
    assert "set_learning_rates" not in program and "learning_rate_at" not in program


def test_a_bad_schedule_is_a_positioned_error():
    with pytest.raises(SpecError) as failure:
        compile_train("client_optimizer sgd(learning_rate = exponential_decay(0.01, 10, 1.5))")
    (diagnostic,) = failure.value.diagnostics
    assert diagnostic.code == "E206" and "rate" in diagnostic.message
    with pytest.raises(SpecError) as failure:
        compile_train("client_optimizer sgd(learning_rate = exponential(0.01, 10, 0.9))")
    assert "exponential_decay" in (failure.value.diagnostics[0].hint or "")
