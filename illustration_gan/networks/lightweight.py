"""FastGAN (Liu et al., ICLR 2021, "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis"), after its code odegeasslbc/FastGAN-pytorch at 1a848e5 (models.py,
train.py; read from a fork holding that history, the original repository now serves other files)
and lucidrains/lightweight-gan at efbec45 (lightweight_gan/lightweight_gan.py, cli.py).

Generator (models.py lines 122-180): z -> a spectrally normalised 4x4 projection, batch norm and
GLU (InitLayer, lines 86-96), then per 2x level a nearest upsampling, a 3x3 convolution to twice
the width, batch norm and GLU (UpBlock, lines 99-105), twice at 8, 32 and 128 px (UpBlockComp,
lines 108-119). Skip-layer excitation (SEBlock, lines 74-83) gates the 64, 128 and 256 px features
channel by channel with a sigmoid computed from the 4, 8 and 16 px ones (lines 142-144, 162-166).
Widths follow the source's table by resolution (line 126) times `g_width` (the source's ngf).
The output is a 3x3 convolution and tanh (lines 147, 178).

Discriminator (lines 183-313): a 3x3 convolution at full size (line 240), then down to 8x8 by
blocks averaging a strided branch and an average-pooled 1x1 branch (DownBlockComp, lines 196-213);
skip-layer excitation from the features 8x larger (lines 254-256, 280-286); widths from the
source's table (line 222) times `d_width` (its ndf). It is also an encoder: small decoders
(SimpleDecoder, lines 316-343) reconstruct the real image from the 8x8 features and one quadrant
of it from a quadrant of the 16x16 features (lines 296-311; train.py lines 24-43). Their loss is
the term `terms.Reconstruction`, read through `call(..., return_features=True)` and `reconstruct`.

Every convolution is spectrally normalised and bias-free (models.py lines 21-31), weights
N(0, 0.02) and batch-norm gammas N(1, 0.02) (lines 10-19), in G and D alike.

Where this differs from the source, and why:
- The reconstruction loss is lightweight-gan's mean squared error between a decoder's output and
  the real image D saw, resized by nearest neighbour (lightweight_gan.py lines 850-869), not
  FastGAN's LPIPS (train.py lines 40-43): LPIPS needs VGG weights that cannot be downloaded here.
- D gives one score per image: FastGAN's last 4x4 convolution (line 252) covers the whole 8x8 map,
  as lightweight-gan's command-line default `disc_output_size = 1` (cli.py line 105, lightweight_gan.py
  lines 788-794) gives one logit; FastGAN's 5x5 patch logits would not fit the project's per-image
  losses. FastGAN's second branch on a 128 px copy with its own decoder (lines 258-269, 292-298)
  and G's 128 px side output feeding it (line 146) are left out: at 64 and 128 px that copy is
  the image itself.
- The decoders output at most 128 px as the source's (four 2x steps from 8x8, lines 333-339), but
  never more than their target: below 256 px they stop at the image's (or quadrant's) own size,
  where the source upsamples the target to 128. Their widths scale with `d_width` (the source
  fixes them at ngf 32 with ndf 64, line 324).
- No noise injection (NoiseInjection, lines 55-66, weight initially 0): it would make one z give
  different images, and sampling here is a function of the seed.
- 32 px is refused (config.validate): the first skip-layer excitation joins 4x4 to 64x64 features.
"""

from __future__ import annotations

import keras
from keras import ops

from illustration_gan.networks.common import Discriminator, Generator, batch_norm, weight_init
from illustration_gan.networks.layers import SpectralNormConv2D, SpectralNormDense, _SpectralNorm

PACKAGE = "illustration_gan"
SIZES = (64, 128, 256)
# Channels per resolution as multiples of ngf (G) and ndf (D): models.py lines 126 and 222. D's map of
# side r has the width the source lists under 2r (its 256 px image gives a 256x256 map of nfc[512]).
G_WIDTHS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
D_WIDTHS = {8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25}
DECODER_WIDTHS = {16: 4, 32: 2, 64: 2, 128: 1}  # SimpleDecoder, lines 321-324, times ndf / 2
G_EXCITATION = 16  # G gates the features at r from those at r / 16 (lines 162-166), for r >= 64
D_EXCITATION = 8  # D: at r from r * 8 (lines 280-286)


def _width(table, resolution, base):
    return max(1, int(table[resolution] * base))


def _conv(filters, kernel, strides=1, padding="same"):
    return SpectralNormConv2D(filters, kernel, strides, padding, use_bias=False, kernel_initializer=weight_init())


def _check_size(size):
    if size not in SIZES:
        raise ValueError(f"the lightweight networks are built for {SIZES} px, not {size}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class GLU(keras.layers.Layer):
    """The first half of the channels times the sigmoid of the second (models.py lines 47-52)."""

    def call(self, x):
        half = x.shape[-1] // 2
        return x[..., :half] * ops.sigmoid(x[..., half:])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralNormProjection(_SpectralNorm, keras.layers.Layer):
    """z -> (N, 4, 4, channels): FastGAN's 4x4 transposed convolution of z as a 1x1 map (models.py
    line 91), spectrally normalised as that convolution is, over the (z * 4 * 4, channels) matrix."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 4, 4, self.channels), initializer=weight_init()
        )
        _SpectralNorm.build(self, input_shape)

    def call(self, z, training=False):
        return ops.tensordot(z, self.normalized_kernel(training), axes=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4, 4, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SkipLayerExcitation(keras.layers.Layer):
    """`big` times a per-channel gate from `small` (SEBlock, models.py lines 74-83): average-pool
    `small` to 4x4, a 4x4 valid convolution to 1x1, Swish, a 1x1 convolution, sigmoid."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv4 = _conv(channels, 4, padding="valid")
        self.conv1 = _conv(channels, 1)

    def build(self, small_shape, big_shape):
        self.pool = keras.layers.AveragePooling2D(small_shape[1] // 4)
        self.conv4.build((small_shape[0], 4, 4, small_shape[-1]))
        self.conv1.build((small_shape[0], 1, 1, self.channels))

    def call(self, small, big, training=False):
        gate = ops.silu(self.conv4(self.pool(small), training=training))
        gate = ops.sigmoid(self.conv1(gate, training=training))
        return big * ops.cast(gate, big.dtype)

    def compute_output_shape(self, small_shape, big_shape):
        return big_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DownBlock(keras.layers.Layer):
    """Halves the size: the mean of a 4x4 stride-2 and a 3x3 convolution branch and of an
    average-pooled 1x1 convolution branch, each with batch norm and LeakyReLU 0.2 (DownBlockComp,
    models.py lines 196-213)."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        lrelu = lambda: keras.layers.LeakyReLU(0.2)  # noqa: E731
        self.main = keras.Sequential(
            [_conv(filters, 4, 2), batch_norm(), lrelu(), _conv(filters, 3), batch_norm(), lrelu()], name="main"
        )
        self.direct = keras.Sequential(
            [keras.layers.AveragePooling2D(2), _conv(filters, 1), batch_norm(), lrelu()], name="direct"
        )

    def build(self, input_shape):
        self.main.build(input_shape)
        self.direct.build(input_shape)

    def call(self, x, training=False):
        return (self.main(x, training=training) + self.direct(x, training=training)) / 2

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def _up_block(filters, twice, name):
    """UpBlock (models.py lines 99-105), or UpBlockComp (lines 108-119) without its noise."""
    layers = [keras.layers.UpSampling2D(2, interpolation="nearest"), _conv(2 * filters, 3), batch_norm(), GLU()]
    if twice:
        layers += [_conv(2 * filters, 3), batch_norm(), GLU()]
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightweightGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        _check_size(c.image_size)
        width = lambda r: _width(G_WIDTHS, r, c.g_width)  # noqa: E731
        self.project = keras.Sequential(
            [SpectralNormProjection(2 * width(4)), batch_norm(), GLU()], name="project"
        )
        self.resolutions = [4 << i for i in range(1, c.levels + 1)]
        # The source repeats the convolution at 8, 32, 128 and 512 px (lines 135-139, 150).
        self.up = [_up_block(width(r), r.bit_length() % 2 == 0, f"up_{r}") for r in self.resolutions]
        self.excite = {  # string keys: checkpoints name tracked dict entries by them
            str(r): SkipLayerExcitation(width(r), name=f"excite_{r}") for r in self.resolutions if r >= 4 * G_EXCITATION
        }
        self.to_rgb = keras.Sequential(
            [_conv(3, 3), keras.layers.Activation("tanh", dtype="float32")], name="to_rgb"
        )

    def call(self, z, training=False, return_features=False):
        x = self.project(z, training=training)
        features = {4: x}
        for r, up in zip(self.resolutions, self.up):
            x = up(x, training=training)
            if str(r) in self.excite:
                x = self.excite[str(r)](features[r // G_EXCITATION], x, training=training)
            features[r] = x
        images = self.to_rgb(x, training=training)
        return (images, None) if return_features else images


def _decoder(width, size, name):
    """SimpleDecoder (models.py lines 316-343): from an 8x8 map, per 2x a nearest upsampling, a 3x3
    convolution to twice the width, batch norm and GLU; a 3x3 convolution to RGB and tanh."""
    layers = []
    r = 8
    while r < size:
        r *= 2
        layers += [keras.layers.UpSampling2D(2, interpolation="nearest"), _conv(2 * width(r), 3), batch_norm(), GLU()]
    layers += [_conv(3, 3), keras.layers.Activation("tanh", dtype="float32")]
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightweightDiscriminator(Discriminator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        _check_size(c.image_size)
        width = lambda r: _width(D_WIDTHS, 2 * r, c.d_width)  # noqa: E731
        self.first = keras.Sequential([_conv(width(c.image_size), 3), keras.layers.LeakyReLU(0.2)], name="first")
        self.resolutions = [c.image_size >> i for i in range(1, c.levels)]  # after each block, down to 8
        self.down = [DownBlock(width(r), name=f"down_{r}") for r in self.resolutions]
        self.excite = {
            str(r): SkipLayerExcitation(width(r), name=f"excite_{r}")
            for r in self.resolutions if r * D_EXCITATION <= c.image_size
        }
        self.head = keras.Sequential(
            [_conv(_width(D_WIDTHS, 8, c.d_width), 1), batch_norm(), keras.layers.LeakyReLU(0.2), keras.layers.Flatten(),
             SpectralNormDense(1, use_bias=False, kernel_initializer=weight_init(), dtype="float32")],
            name="head",
        )
        decoder_width = lambda r: _width(DECODER_WIDTHS, r, c.d_width / 2)  # noqa: E731
        self.decoder = _decoder(decoder_width, min(c.image_size, 128), "decoder")
        self.decoder_part = _decoder(decoder_width, min(c.image_size // 2, 128), "decoder_part")

    def build(self, input_shape):
        # The decoders are not on the scoring path; building them here gives D all its variables at once.
        size = self.model_config.image_size
        images = ops.zeros((1, size, size, 3))
        _, features = self.call(images, return_features=True)
        self.reconstruct(features, images, quadrant=0)

    def call(self, images, training=False, return_features=False):
        x = self.first(images, training=training)
        features = {self.model_config.image_size: x}
        for r, down in zip(self.resolutions, self.down):
            x = down(x, training=training)
            if str(r) in self.excite:
                x = self.excite[str(r)](features[r * D_EXCITATION], x, training=training)
            features[r] = x
        scores = ops.squeeze(self.head(x, training=training), axis=-1)
        return (scores, {"8": features[8], "16": features[16]}) if return_features else scores

    def reconstruct(self, features, images, quadrant, training=False):
        """[(reconstruction, target)] of the whole image from D's 8x8 features and of quadrant
        `quadrant` (0-3, row-major) from that quadrant of its 16x16 features (models.py lines
        296-311); a target larger than its reconstruction is resized by nearest neighbour, i.e.
        every k-th pixel, as PyTorch's F.interpolate (train.py lines 41-43)."""
        whole = self.decoder(features["8"], training=training)
        part = self.decoder_part(quadrant_of(features["16"], quadrant), training=training)
        return [(whole, _every_kth(images, whole.shape[1])), (part, _every_kth(quadrant_of(images, quadrant), part.shape[1]))]


def quadrant_of(x, quadrant):
    """Quadrant 0-3 of NHWC maps, row-major, as crop_image_by_part (train.py lines 24-33)."""
    half = x.shape[1] // 2
    quadrants = ops.stack([x[:, :half, :half], x[:, :half, half:], x[:, half:, :half], x[:, half:, half:]])
    return ops.take(quadrants, quadrant, axis=0)


def _every_kth(images, size):
    step = images.shape[1] // size
    return images[:, ::step, ::step]
