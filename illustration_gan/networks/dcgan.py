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
"""

from __future__ import annotations

import keras

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


@keras.saving.register_keras_serializable(package=PACKAGE)
class DCGANGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
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
        blocks += self._upsample_2x(3, c.framework != "pytorch", c.image_size)
        blocks.append(keras.layers.Activation("tanh", dtype="float32"))
        self.upsample = keras.Sequential(blocks, name="upsample")

    def _upsample_2x(self, width, use_bias, size):
        if self.model_config.upsampling == "resize":
            return [
                keras.layers.UpSampling2D(2, interpolation="nearest"),
                keras.layers.Conv2D(width, 3, 1, "same", use_bias=use_bias, kernel_initializer=weight_init()),
            ]
        transpose = matmul_grad.Conv2DTranspose if size <= matmul_grad.MATMUL_GRAD_MAX_MAP else keras.layers.Conv2DTranspose
        return [transpose(width, 4, 2, "same", use_bias=use_bias, kernel_initializer=weight_init())]

    def call(self, z, training=False, return_features=False):
        images = self.upsample(self.project(z, training=training), training=training)
        return (images, None) if return_features else images


@keras.saving.register_keras_serializable(package=PACKAGE)
class DCGANDiscriminator(Discriminator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        batch_normalised = c.d_norm == "batch" and not c.spectral_norm
        # Without batch norm the convolutions get biases; spectral norm keeps the tutorial's bias-free ones.
        use_bias = c.d_norm == "none" and not c.spectral_norm
        layers = []
        widths = level_widths(c.d_width, c.levels, coarse_first=False, max_width=c.max_width)
        for i, width in enumerate(widths):
            conv = keras.layers.Conv2D if c.image_size >> i > matmul_grad.MATMUL_GRAD_MAX_MAP else matmul_grad.Conv2D
            conv = SpectralNormConv2D if c.spectral_norm else conv
            layers.append(conv(width, 4, 2, "same", use_bias=use_bias, kernel_initializer=weight_init()))
            if i > 0 and batch_normalised:
                layers.append(batch_norm())
            layers.append(keras.layers.LeakyReLU(0.2))
            if i == 0 and c.minibatch_kernels > 0 and c.minibatch_place == "first_block":
                # Edouard99/GAN Models/gan64.py line 118 (at 06d4eb2): after the first block, on its 32x32 map at 64 px.
                layers.append(MinibatchDiscrimination2D(c.minibatch_kernels, c.minibatch_dims))
        self.body = keras.Sequential(layers, name="body")
        self._make_head(_pytorch_head(c, 4 * 4 * widths[-1]) if c.framework == "pytorch" else None)

    def call(self, images, training=False):
        flat = self.flatten(self.body(images, training=training))
        # The tutorial's final 4x4 valid convolution is this dense layer on the flattened 4x4 map.
        return self._score(flat, self._minibatch_features(flat))


def _pytorch_head(c, features: int):
    """D's output layer as PyTorch built it (module docstring)."""
    dense = SpectralNormDense if c.spectral_norm else keras.layers.Dense
    if c.critic:
        fan_in = features + (c.minibatch_kernels if c.minibatch_place == "head" else 0)
        init = keras.initializers.RandomUniform(-fan_in**-0.5, fan_in**-0.5)
        return dense(1, kernel_initializer=init, bias_initializer=init, dtype="float32")
    return dense(1, use_bias=False, kernel_initializer=weight_init(), dtype="float32")
