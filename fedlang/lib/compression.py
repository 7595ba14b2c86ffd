"""Sparsified client updates: top-k through TFF's tensor encoding (`tff.aggregators.EncodedSumFactory`).

Each client sends, for every tensor of its model update with more than ``threshold`` values,
only the ``k = ceil(fraction * n)`` entries of largest magnitude: their float32 values and int32
positions (8*k bytes instead of 4*n); smaller tensors go as they are. The server scatters each
client's entries back into a zero tensor before summing (a gather encoder: decoding happens
before the sum, since sparse supports differ between clients). This is the source document's
``EncodedSumFactory(as_gather_encoder(sparsity_encoding_fn, ...))`` with a top-k stage, which
tensor_encoding 0.7.5 does not ship (its research stage SplitBySmallValueEncodingStage
sparsifies by a threshold, whose bytes depend on the data and cannot be planned).

Like the other modules of fedlang/lib, this is copied verbatim into the programs fedlang
generates (TensorFlow, TFF and tensor_encoding from tensorflow-model-optimization, a TFF
dependency). ``REQUIRES`` at the bottom maps each name to the helpers of this module it uses.
"""

import collections
import math

import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_model_optimization.python.core.internal import tensor_encoding as te


class TopKEncodingStage(te.core.EncodingStageInterface):
    """Keeps the k = ceil(fraction * n) entries of largest magnitude of a rank-1 tensor
    (their values and int32 indices); decoding scatters them into zeros. Use it through
    top_k_encoding_stage, which applies tensor_encoding's TF-style decorator."""

    def __init__(self, fraction):
        self._fraction = fraction

    @property
    def name(self):
        return "top_k"

    @property
    def compressible_tensors_keys(self):
        return ["values", "indices"]

    @property
    def commutes_with_sum(self):
        return False

    @property
    def decode_needs_input_shape(self):
        return True

    def get_params(self):
        return collections.OrderedDict(), collections.OrderedDict()

    def encode(self, x, encode_params):
        k = max(1, math.ceil(self._fraction * x.shape.num_elements() - 1e-9))  # as fedlang plan counts
        _, indices = tf.math.top_k(tf.abs(x), k=k, sorted=False)
        return collections.OrderedDict([("values", tf.gather(x, indices)), ("indices", tf.cast(indices, tf.int32))])

    def decode(self, encoded_tensors, decode_params, num_summands=None, shape=None):
        indices = tf.expand_dims(encoded_tensors["indices"], 1)
        return tf.scatter_nd(indices, encoded_tensors["values"], tf.cast(shape, tf.int32))


def top_k_encoding_stage(fraction):
    """A TopKEncodingStage wrapped by te.core.tf_style_encoding_stage (name scopes, the `name`
    arguments the encoders pass), as tensor_encoding's own stages are."""
    return te.core.tf_style_encoding_stage(TopKEncodingStage)(fraction)


def top_k_sum_factory(fraction, threshold=0):
    """A TFF sum whose clients send only the top-k entries of each tensor with more than
    `threshold` values (the others uncompressed), through `tff.aggregators.EncodedSumFactory`."""
    def encoder_fn(value_spec):
        if value_spec.shape.num_elements() > threshold:
            encoder = te.core.EncoderComposer(top_k_encoding_stage(fraction)).add_parent(
                te.stages.FlattenEncodingStage(), te.stages.FlattenEncodingStage.ENCODED_VALUES_KEY).make()
            return te.encoders.as_gather_encoder(encoder, value_spec)
        return te.encoders.as_gather_encoder(te.encoders.identity(), value_spec)

    return tff.aggregators.EncodedSumFactory(encoder_fn)


REQUIRES: dict[str, tuple[str, ...]] = {
    "TopKEncodingStage": (),
    "top_k_encoding_stage": ("TopKEncodingStage",),
    "top_k_sum_factory": ("top_k_encoding_stage",),
}
