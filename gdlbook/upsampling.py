"""A transposed convolution computed as a sub-pixel convolution: the same layer, a faster gradient.

A stride-``s`` transposed convolution writes each input pixel, multiplied by the kernel, into an
``s × s`` block of the output, overlapping its neighbours. Every output pixel of one *phase*
(its row and column modulo ``s``) receives contributions from the same few kernel taps. So the
layer can be computed at the input's resolution instead: one ordinary convolution whose
``s·s·filters`` output channels are the phases, then a *depth-to-space* rearrangement that
interleaves them into the ``s``-times larger image (Shi et al.'s sub-pixel convolution,
``shi2016real``). The kernel of that convolution is gathered from the transposed convolution's own
kernel, so the weights, the saved files and the function computed are those of
``keras.layers.Conv2DTranspose``; only the arithmetic is arranged differently.

Why bother: on a CPU, XLA (the JAX backend) computes the gradient of a transposed convolution
with respect to its kernel far more slowly than that of an ordinary convolution (a minimal
reproduction is ``benchmarks/conv_transpose_xla.py``). :class:`Conv2DTranspose` therefore takes
the sub-pixel route on JAX for ``padding="same"``, and leaves TensorFlow on
``keras.ops.conv_transpose``.

On PyTorch the layer keeps the transposed convolution but changes the memory layout it runs in.
Keras's PyTorch backend copies the channels-last image into PyTorch's default channels-first
layout before ``conv_transpose2d`` and back after it; PyTorch's CPU kernels (oneDNN) are faster
in its *channels-last* memory format, which is exactly the layout a Keras image already has. So
on PyTorch the layer hands the image to ``torch.nn.functional.conv_transpose2d`` as a
channels-first view of the same memory, no copy, and crops the output as Keras does for
``"same"``. Same weights, same function, to float round-off; ``benchmarks/vae_step_floor.py``
measures the two layouts in plain PyTorch.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops


def _same_left_padding(kernel: int, stride: int) -> int:
    """The padding Keras puts before the first row (column) of a "same" transposed convolution."""
    return max(kernel - stride, 0) // 2


def _phase_taps(kernel: int, stride: int) -> tuple[int, np.ndarray]:
    """For one spatial axis: the low-resolution offset ``j0`` of the first tap and, for every
    offset ``j`` and phase ``a``, the kernel tap ``t`` that maps input ``m + j0 + j`` to output
    ``s·m + a`` (or -1 where none does).

    With ``"same"`` padding Keras pads the transposed convolution by ``p = max(K - s, 0) // 2``
    on the left, so that output ``o = s·i + t - p`` receives ``x[i]·k[t]``. For
    ``o = s·m + a`` and ``i = m + j`` the tap is ``t = a + p - s·j``.
    """
    pad = _same_left_padding(kernel, stride)
    lo = min(-((kernel - 1 - a - pad) // stride) for a in range(stride))   # ceil((a+p-K+1)/s)
    hi = max((a + pad) // stride for a in range(stride))
    taps = np.full((hi - lo + 1, stride), -1, dtype=np.int64)
    for j in range(lo, hi + 1):
        for a in range(stride):
            t = a + pad - stride * j
            if 0 <= t < kernel:
                taps[j - lo, a] = t
    return lo, taps


@keras.saving.register_keras_serializable(package="gdlbook")
class Conv2DTranspose(layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` that runs as a sub-pixel convolution where that pays.

    Same arguments, weights (``kernel`` of shape ``(kh, kw, filters, in_channels)``, ``bias``)
    and outputs as the Keras layer. With ``subpixel=None`` (the default) the sub-pixel route is
    taken on the JAX backend and the channels-last route on PyTorch; ``True`` forces the
    sub-pixel route on any backend, ``False`` runs the Keras layer's own code. Both routes apply
    to ``padding="same"``, channels-last data, no dilation and no ``output_padding``; any other
    configuration runs the Keras layer's own code.
    """

    def __init__(self, *args, subpixel: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.subpixel = subpixel

    def _applicable(self) -> bool:
        return (self.padding == "same" and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and self.output_padding is None
                and max(self.strides) > 1)

    def _uses_subpixel(self) -> bool:
        wanted = keras.backend.backend() == "jax" if self.subpixel is None else self.subpixel
        return self._applicable() and wanted

    def _uses_torch_channels_last(self) -> bool:
        return (self.subpixel is None and keras.backend.backend() == "torch"
                and self._applicable())

    def build(self, input_shape):
        super().build(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        (self._lo_h, taps_h), (self._lo_w, taps_w) = _phase_taps(kh, sh), _phase_taps(kw, sw)
        # index into the kernel flattened over (kh, kw), for [jh, jw, a_h, a_w]; -1 = no tap
        th, tw = taps_h[:, None, :, None], taps_w[None, :, None, :]
        valid = (th >= 0) & (tw >= 0)
        self._tap_index = np.where(valid, th * kw + tw, 0).astype("int32")
        self._tap_mask = valid.astype(self.compute_dtype)
        self._window = (taps_h.shape[0], taps_w.shape[0])

    def subpixel_kernel(self):
        """The low-resolution convolution's kernel, ``(jh, jw, in_channels, sh·sw·filters)``."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        jh, jw = self._window
        flat = ops.reshape(self.kernel, (kh * kw, self.filters, -1))
        taps = ops.take(flat, ops.reshape(self._tap_index, (-1,)), axis=0)
        taps = ops.reshape(taps, (jh, jw, sh, sw, self.filters, -1))
        taps = taps * ops.reshape(ops.convert_to_tensor(self._tap_mask), (jh, jw, sh, sw, 1, 1))
        taps = ops.transpose(taps, (0, 1, 5, 2, 3, 4))          # jh, jw, in, sh, sw, filters
        return ops.reshape(taps, (jh, jw, -1, sh * sw * self.filters))

    def _torch_channels_last(self, inputs):
        """``conv_transpose2d`` in PyTorch's channels-last memory format, cropped to "same"."""
        import torch

        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        x = inputs.permute(0, 3, 1, 2)          # NCHW view of NHWC memory: channels-last
        k = self.kernel.value.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        y = torch.nn.functional.conv_transpose2d(x, k, stride=(sh, sw))   # (H-1)s + K rows
        ph, pw = _same_left_padding(kh, sh), _same_left_padding(kw, sw)
        height, width = inputs.shape[1] * sh, inputs.shape[2] * sw
        if y.shape[2] < ph + height or y.shape[3] < pw + width:    # kernel smaller than stride
            y = torch.nn.functional.pad(y, (0, max(pw + width - y.shape[3], 0),
                                            0, max(ph + height - y.shape[2], 0)))
        return y[:, :, ph:ph + height, pw:pw + width].permute(0, 2, 3, 1)

    def _subpixel(self, inputs):
        """One convolution at the input's resolution, then depth to space."""
        (sh, sw), (jh, jw) = self.strides, self._window
        pad = [[0, 0], [-self._lo_h, jh - 1 + self._lo_h], [-self._lo_w, jw - 1 + self._lo_w],
               [0, 0]]
        y = ops.conv(ops.pad(inputs, pad), self.subpixel_kernel(), padding="valid")
        shape = ops.shape(y)
        y = ops.reshape(y, (shape[0], shape[1], shape[2], sh, sw, self.filters))
        y = ops.transpose(y, (0, 1, 3, 2, 4, 5))                # depth to space
        return ops.reshape(y, (shape[0], shape[1] * sh, shape[2] * sw, self.filters))

    def call(self, inputs):
        if self._uses_torch_channels_last():
            y = self._torch_channels_last(inputs)
        elif self._uses_subpixel():
            y = self._subpixel(inputs)
        else:
            return super().call(inputs)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        return {**super().get_config(), "subpixel": self.subpixel}
