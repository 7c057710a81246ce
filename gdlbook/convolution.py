"""``keras.layers.Conv2D``, run without layout copies on the PyTorch backend.

A Keras image is channels-last: ``(batch, height, width, channels)``. PyTorch's convolutions take
``(batch, channels, height, width)`` but accept any *memory format* behind that shape, and on a
CPU its oneDNN kernels are fastest in the *channels-last* one, which is exactly how a Keras image
already lies in memory. Keras's PyTorch backend (``keras.ops.conv``) does not use that: it copies
the image into channels-first memory, then copies it again into channels-last memory before
``conv2d`` (two copies of every convolution's input, and two more in the backward pass).

:class:`Conv2D` hands PyTorch a channels-first *view* of the same memory instead, no copy. Same
arguments, weights, saved files and outputs as ``keras.layers.Conv2D`` (to float round-off; the
tests compare them on every backend); on TensorFlow and JAX it *is* Keras's layer. The transposed
convolution has the same treatment in :mod:`gdlbook.upsampling`, and
``benchmarks/vae_step_floor.py`` measures both layouts in plain PyTorch.
"""

from __future__ import annotations

import keras
from keras import layers


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras's (TensorFlow's) ``"same"`` padding of one spatial axis, ``(before, after)``: the
    output has ``ceil(size / stride)`` pixels, the extra pixel of an odd total goes after."""
    extent = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


@keras.saving.register_keras_serializable(package="gdlbook")
class Conv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` that, on PyTorch, convolves in channels-last memory (no copies).

    Everything else (TensorFlow, JAX, ``data_format="channels_first"``) runs Keras's own code.
    """

    def _uses_torch_channels_last(self) -> bool:
        return keras.backend.backend() == "torch" and self.data_format == "channels_last"

    def convolution_op(self, inputs, kernel):
        if not self._uses_torch_channels_last():
            return super().convolution_op(inputs, kernel)
        import torch
        import torch.nn.functional as F

        x = inputs.permute(0, 3, 1, 2)          # NCHW view of NHWC memory: channels-last
        k = keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        padding = 0
        if self.padding == "same":
            (top, bottom), (left, right) = (
                same_padding(n, k_, s, d) for n, k_, s, d in
                zip(x.shape[2:], self.kernel_size, self.strides, self.dilation_rate))
            if top == bottom and left == right:
                padding = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(x, k, stride=self.strides, padding=padding, dilation=self.dilation_rate,
                     groups=self.groups)
        return y.permute(0, 2, 3, 1)
