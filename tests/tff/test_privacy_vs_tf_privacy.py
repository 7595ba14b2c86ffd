"""fedlang's RDP epsilon agrees with tensorflow-privacy's (which imports TensorFlow, hence tff)."""

import math

import pytest

from fedlang.lib import privacy

# The RDP orders tensorflow-privacy 0.9.0's compute_dp_sgd_privacy uses.
TF_PRIVACY_ORDERS = [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5] + list(range(5, 64)) + [
    128, 256, 512]


@pytest.mark.tff
@pytest.mark.parametrize(
    "population,clients,z,rounds,delta,expected",
    [
        (1000, 100, 1.0, 100, 1e-5, 7.9729),  # the value in the tff-0.87 notes
        (3383, 120, 1.2, 100, 1e-5, None),  # the TFF DP tutorial's setting
        (5000, 50, 0.8, 200, 1e-6, None),
    ],
)
def test_rdp_epsilon_matches_tf_privacy(population, clients, z, rounds, delta, expected):
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib

    epochs = rounds * clients / population
    # tf-privacy turns epochs back into steps = ceil(epochs * n / batch_size): the same rounds.
    assert math.ceil(epochs * population / clients) == rounds
    tf_epsilon, _order = compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy(
        n=population, batch_size=clients, noise_multiplier=z, epochs=epochs, delta=delta)
    q = privacy.sampling_rate(clients, population)
    ours = privacy.epsilon_after(rounds, z, q, delta, orders=TF_PRIVACY_ORDERS)
    assert ours == pytest.approx(tf_epsilon, rel=1e-12)
    if expected is not None:
        assert ours == pytest.approx(expected, abs=1e-4)
