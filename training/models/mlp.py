"""Dense encoder / decoder stacks shared by both models."""
from __future__ import annotations

import math
from statistics import NormalDist

from training.backend import keras
from keras import ops


def encoder_trunk(image_shape, hidden, activation, name):
    """Flatten then `hidden` dense layers: (B, H, W) -> (B, hidden[-1])."""
    inputs = keras.Input(shape=tuple(image_shape), name="image")
    h = keras.layers.Flatten()(inputs)
    for i, width in enumerate(hidden):
        h = keras.layers.Dense(width, activation=activation, name=f"{name}_dense_{i}")(h)
    return inputs, h


def decoder_trunk(latent_dim, hidden, activation, name):
    """Mirror of the encoder: (B, latent) -> (B, hidden[0])."""
    inputs = keras.Input(shape=(latent_dim,), name="code")
    h = inputs
    for i, width in enumerate(reversed(hidden)):
        h = keras.layers.Dense(width, activation=activation, name=f"{name}_dense_{i}")(h)
    return inputs, h


def pixels(image_shape) -> int:
    return int(math.prod(image_shape))


def drop_inputs(x, noise, rate):
    """Denoising corruption: zero each pixel with probability `rate`, rescale the rest by 1 / (1 - rate).

    x: (B, H, W); noise: (B, H*W) standard normal draws from the input pipeline, so the mask
    depends only on (seed, epoch, example), not on how the batch is split across replicas.
    """
    keep = ops.cast(noise >= NormalDist().inv_cdf(rate), x.dtype)
    return x * ops.reshape(keep, ops.shape(x)) / (1.0 - rate)


class ConfiguredModel(keras.Model):
    """A model built from its own config part whole (training.config.VAEConfig or SAEConfig, its likelihood
    resolved): saved as its Keras config, and rebuilt from it on load (Keras safe mode)."""

    config_type: type  # the config part this model is built from
    renamed: dict[str, str] = {}  # keys that models saved before their config was a part wrote otherwise

    def __init__(self, image_shape, config, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.config = config

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def get_config(self):
        return {"name": self.name, "image_shape": list(self.image_shape), **self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        values = {cls.renamed.get(k, k): v for k, v in config.items()}
        name, image_shape = values.pop("name", None), values.pop("image_shape")
        return cls(image_shape, cls.config_type(**values), name=name)
