"""DCGAN (Radford et al. 2015, arXiv:1511.06434) as in the PyTorch DCGAN tutorial.

Generator: z -> 4x4 projection, then 4x4 stride-2 transposed convolutions with
batch norm and ReLU, tanh output. Discriminator: 4x4 stride-2 convolutions with
batch norm (not on the first) and LeakyReLU 0.2, one linear output. At 64x64
the widths are 512-256-128-64 (G) and 64-128-256-512 (D), as in the tutorial.
With `spectral_norm`, D's convolutions and output are spectrally normalised and
D has no batch norm, as SNGAN's "standard CNN" (Miyato et al. 2018). With
`upsampling="resize"`, each transposed convolution of G becomes a nearest-neighbour
2x resize and a 3x3 convolution, the fix for checkerboard artefacts of Odena et al.
2016 ("Deconvolution and Checkerboard Artifacts", Distill). With
`d_norm="none"`, D's convolutions have biases and no batch norm: batch norm over a
batch of only reals or only fakes removes any shift or scale that the whole batch
shares (e.g. every sample a little less contrasted), so D cannot see it.
In bfloat16, the 4x4 stride-2 convolutions at maps of 16 pixels and less (D's last two, G's
first two transposed ones) take their kernel gradient as one matmul (`matmul_grad`): the same
variables and values; the gradient alone 1.2-5.4x faster there on a CPU with AMX.
With `minibatch_place="first_block"`, D has the Pokemon GAN's convolutional minibatch
discrimination after its first block (Edouard99/GAN Models/gan64.py at 06d4eb2, lines 96-140,
whose networks are these with ngf = ndf = 128 and a widest level of 1024).
With `framework="pytorch"` (the tutorial's and the Pokemon GAN's presets), the layers PyTorch
built: G's last transposed convolution has no bias (`bias=False`, the tutorial's Generator and
gan64.py line 88); D's output is the tutorial's bias-free 4x4 valid convolution (gan64.py line
138) as a bias-free dense layer, and a critic's is `nn.Linear(ndf*8*4*4, 1)` (gan64.py lines
131-135) with PyTorch's default initialisation, weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
which `weights_init` (lines 45-52: Conv and BatchNorm modules only) leaves as it is.
With `grow_from` (ProGAN, Karras et al. 2018; the schedule is training/grow.py), G has a 1x1
"toRGB" convolution (and tanh) at each size from `grow_from` to half the image size, and D a 1x1
"fromRGB" convolution with LeakyReLU feeding the block that takes that size. At size r, G runs its
levels up to r, and its image is repeated (nearest) up to the full size; D averages its full-size
input down to r and enters there, so pooling G's image gives G's r x r image back exactly. While
level r fades in, both blend it with the level below as ProGAN's networks.py does (`lerp_clip`):
(1 - alpha) x the level below (G: its image, 2x nearest; D: fromRGB of the 2x-average-pooled input)
+ alpha x the new level. `set_growth` picks the size (the compiled step is traced again) and alpha
(a variable, saved with the weights).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from illustration_gan.networks.common import (
    Discriminator,
    Generator,
    batch_norm,
    level_widths,
    weight_init,
)
from illustration_gan.networks.layers import MinibatchDiscrimination2D, SpectralNormConv2D, SpectralNormDense
from illustration_gan.networks import matmul_grad

PACKAGE = "illustration_gan"


class _Growing:
    """The size a growing network runs at, and its fade (module docstring); full size when not growing."""

    def _init_growth(self, grow_resolution: int | None, grow_blend: bool):
        c = self.model_config
        self.grow_resolution, self.grow_blend = grow_resolution or c.image_size, grow_blend
        self.grow_sizes = [c.grow_from << i for i in range((c.image_size // c.grow_from).bit_length() - 1)] if c.grow_from else []
        self.grow_alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="grow_alpha",
                                          dtype="float32") if c.grow_from else None

    def set_growth(self, resolution: int, blend: bool, alpha: float):
        self.grow_resolution, self.grow_blend = resolution, blend
        self.grow_alpha.assign(alpha)

    def get_config(self):
        return {**super().get_config(), "grow_resolution": self.grow_resolution, "grow_blend": self.grow_blend}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DCGANGenerator(_Growing, Generator):
    def __init__(self, config: dict, grow_resolution: int | None = None, grow_blend: bool = False, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self._init_growth(grow_resolution, grow_blend)
        widths = level_widths(c.g_width, c.levels, coarse_first=True, max_width=c.max_width)
        # A dense projection to 4x4 equals the tutorial's 4x4 transposed conv on a 1x1 input.
        self.project = keras.Sequential(
            [
                keras.layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=weight_init()),
                keras.layers.Reshape((4, 4, widths[0])),
                batch_norm(),  # per channel, as after the tutorial's transposed convolution
                keras.layers.ReLU(),
            ],
            name="project",
        )
        blocks = []
        for level, width in enumerate(widths[1:]):
            blocks += [*self._upsample_2x(width, False, 8 << level), batch_norm(), keras.layers.ReLU()]
        self.block_length = len(blocks) // max(1, len(widths) - 1)  # layers per 2x level below the last
        blocks += self._upsample_2x(3, c.framework != "pytorch", c.image_size)
        blocks.append(keras.layers.Activation("tanh", dtype="float32"))
        self.upsample = keras.Sequential(blocks, name="upsample")
        self.to_rgb = [keras.Sequential([keras.layers.Conv2D(3, 1, kernel_initializer=weight_init()),
                                         keras.layers.Activation("tanh", dtype="float32")], name=f"to_rgb_{size}")
                       for size in self.grow_sizes]
        for size, to_rgb in zip(self.grow_sizes, self.to_rgb):  # weights now, before any optimizer or checkpoint
            to_rgb.build((None, size, size, widths[size.bit_length() - 3]))

    def _upsample_2x(self, width, use_bias, size):
        if self.model_config.upsampling == "resize":
            return [
                keras.layers.UpSampling2D(2, interpolation="nearest"),
                keras.layers.Conv2D(width, 3, 1, "same", use_bias=use_bias, kernel_initializer=weight_init()),
            ]
        transpose = matmul_grad.Conv2DTranspose if size <= matmul_grad.MATMUL_GRAD_MAX_MAP else keras.layers.Conv2DTranspose
        return [transpose(width, 4, 2, "same", use_bias=use_bias, kernel_initializer=weight_init())]

    def call(self, z, training=False, return_features=False):
        x = self.project(z, training=training)
        if self.grow_resolution == self.model_config.image_size and not self.grow_blend:
            images = self.upsample(x, training=training)
        else:
            images = self._grown(x, training)
        return (images, None) if return_features else images

    def _grown(self, x, training):
        """The image at grow_resolution (blended with the level below while it fades in), repeated to full size."""
        size, layers = self.model_config.image_size, self.upsample.layers
        levels = int(self.grow_resolution).bit_length() - 3  # 2x levels from 4x4 up to grow_resolution
        for layer in layers[: (levels - 1) * self.block_length]:
            x = layer(x, training=training)
        below = x  # the features at grow_resolution / 2
        if self.grow_resolution == size:
            for layer in layers[(levels - 1) * self.block_length:]:
                x = layer(x, training=training)
            images = x
        else:
            for layer in layers[(levels - 1) * self.block_length: levels * self.block_length]:
                x = layer(x, training=training)
            images = self.to_rgb[self.grow_sizes.index(self.grow_resolution)](x, training=training)
        if self.grow_blend:
            smaller = self.to_rgb[self.grow_sizes.index(self.grow_resolution // 2)](below, training=training)
            smaller = tf.repeat(tf.repeat(smaller, 2, axis=1), 2, axis=2)
            images = smaller + (images - smaller) * self.grow_alpha
        factor = size // self.grow_resolution
        return tf.repeat(tf.repeat(images, factor, axis=1), factor, axis=2) if factor > 1 else images


@keras.saving.register_keras_serializable(package=PACKAGE)
class DCGANDiscriminator(_Growing, Discriminator):
    def __init__(self, config: dict, grow_resolution: int | None = None, grow_blend: bool = False, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self._init_growth(grow_resolution, grow_blend)
        batch_normalised = c.d_norm == "batch" and not c.spectral_norm
        # Without batch norm the convolutions get biases; spectral norm keeps the tutorial's bias-free ones.
        use_bias = c.d_norm == "none" and not c.spectral_norm
        layers = []
        widths = level_widths(c.d_width, c.levels, coarse_first=False, max_width=c.max_width)
        self.block_starts = []
        for i, width in enumerate(widths):
            self.block_starts.append(len(layers))
            conv = keras.layers.Conv2D if c.image_size >> i > matmul_grad.MATMUL_GRAD_MAX_MAP else matmul_grad.Conv2D
            conv = SpectralNormConv2D if c.spectral_norm else conv
            layers.append(conv(width, 4, 2, "same", use_bias=use_bias, kernel_initializer=weight_init()))
            if i > 0 and batch_normalised:
                layers.append(batch_norm())
            layers.append(keras.layers.LeakyReLU(0.2))
            if i == 0 and c.minibatch_kernels > 0 and c.minibatch_place == "first_block":
                # Edouard99/GAN Models/gan64.py line 118 (at 06d4eb2): after the first block, on its 32x32 map at 64 px.
                layers.append(MinibatchDiscrimination2D(c.minibatch_kernels, c.minibatch_dims))
        self.block_starts.append(len(layers))
        self.body = keras.Sequential(layers, name="body")
        # fromRGB at size r feeds the block that takes r: the output width of the block before it.
        self.from_rgb = [keras.Sequential([keras.layers.Conv2D(widths[(c.image_size // size).bit_length() - 2], 1,
                                                               kernel_initializer=weight_init()),
                                           keras.layers.LeakyReLU(0.2)], name=f"from_rgb_{size}")
                         for size in self.grow_sizes]
        for size, from_rgb in zip(self.grow_sizes, self.from_rgb):
            from_rgb.build((None, size, size, 3))
        self._make_head(_pytorch_head(c, 4 * 4 * widths[-1]) if c.framework == "pytorch" else None)

    def call(self, images, training=False):
        if self.grow_resolution == self.model_config.image_size and not self.grow_blend:
            features = self.body(images, training=training)
        else:
            features = self._grown(images, training)
        flat = self.flatten(features)
        # The tutorial's final 4x4 valid convolution is this dense layer on the flattened 4x4 map.
        return self._score(flat, self._minibatch_features(flat))


    def _enter(self, images, size: int, training):
        """(features entering the block that takes `size`, that block's index): `images` at full size."""
        factor = self.model_config.image_size // size
        if factor == 1:
            return images, 0
        pooled = tf.nn.avg_pool2d(images, factor, factor, "VALID")
        return self.from_rgb[self.grow_sizes.index(size)](pooled, training=training), factor.bit_length() - 1

    def _blocks(self, x, first: int, last: int, training):
        for layer in self.body.layers[self.block_starts[first]: self.block_starts[last]]:
            x = layer(x, training=training)
        return x

    def _grown(self, images, training):
        """D entered at grow_resolution (blended with the level below while it fades in)."""
        x, block = self._enter(images, self.grow_resolution, training)
        if self.grow_blend:
            x = self._blocks(x, block, block + 1, training)
            smaller, block = self._enter(images, self.grow_resolution // 2, training)
            x = smaller + (x - smaller) * tf.cast(self.grow_alpha, x.dtype)
        return self._blocks(x, block, len(self.block_starts) - 1, training)


def _pytorch_head(c, features: int):
    """D's output layer as PyTorch built it (module docstring)."""
    dense = SpectralNormDense if c.spectral_norm else keras.layers.Dense
    if c.critic:
        fan_in = features + (c.minibatch_kernels if c.minibatch_place == "head" else 0)
        init = keras.initializers.RandomUniform(-fan_in**-0.5, fan_in**-0.5)
        return dense(1, kernel_initializer=init, bias_initializer=init, dtype="float32")
    return dense(1, use_bias=False, kernel_initializer=weight_init(), dtype="float32")
