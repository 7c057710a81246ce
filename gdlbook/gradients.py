"""A loss and its gradients on every Keras backend (taught in chapter 4, generative adversarial networks).

``fit()`` computes gradients for a model with one loss and one optimizer. A GAN has two players,
two losses and two optimizers; energy-based models (Langevin dynamics), DeepDream and style
transfer need the gradient of a score with respect to an *image*. Keras 3 has no
backend-independent ``GradientTape``, so :func:`value_and_grad` is the one place where the
backends differ:

- **TensorFlow**: ``tf.GradientTape``; tensors in ``wrt`` are watched.
- **PyTorch**: ``torch.autograd.grad`` (``.grad`` fields are left alone); a tensor in ``wrt``
  that does not yet require a gradient is replaced by a detached copy that does.
- **JAX**: ``jax.value_and_grad`` of a pure function. The variables in ``wrt`` get their values
  from a :class:`keras.StatelessScope` (as in ``model.stateless_call``), so the same stateful
  ``loss_fn`` can be differentiated. Updates the loss makes to other variables (batch-norm
  moving statistics, random-seed states) are applied afterwards, or handed on to an enclosing
  stateless scope. It works in eager code (a Langevin, DeepDream or style-transfer loop) and
  in nested calls. ``fit()`` on JAX compiles ``train_step(state, data)`` as a pure function of
  the model's state, which has no room for a second optimizer; :class:`gdlbook.gans.GAN` shows
  the way around it: run the ordinary stateful step eagerly inside that signature (correct, but
  not jit-compiled, so slower than TensorFlow or PyTorch on a GPU).

Tensors in ``wrt`` are passed to ``loss_fn`` as arguments, in order; variables are read inside
it as usual. So ``value_and_grad(lambda: loss(model(x)), model.trainable_variables)`` gives the
gradients of the weights and ``value_and_grad(lambda x: score(model(x)), [x])`` the gradient with
respect to the input.

Calls may be nested: a ``loss_fn`` may itself call :func:`value_and_grad` and use the gradient
(the gradient penalty of WGAN-GP). The inner gradient is then differentiable: PyTorch builds its
graph (``create_graph=True``), TensorFlow's outer tape records the inner one, and JAX traces it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras

__all__ = ["value_and_grad"]

_depth = 0  # how many value_and_grad calls are running (nested calls need higher-order graphs)


def _is_variable(x: Any) -> bool:
    return isinstance(x, keras.Variable)


def value_and_grad(loss_fn: Callable[..., Any], wrt: Sequence[Any], *,
                   has_aux: bool = False) -> tuple[Any, list[Any]]:
    """The value of ``loss_fn`` and its gradients with respect to each item of ``wrt``.

    Args:
        loss_fn: returns a scalar tensor. It is called with the tensors of ``wrt`` (not the
            variables) as positional arguments, in their order in ``wrt``; with only variables
            in ``wrt`` it takes no argument. With ``has_aux`` it returns ``(loss, aux)``, where
            ``aux`` (tensors to report, e.g. the terms of the loss) is not differentiated.
        wrt: ``keras.Variable`` objects (a model's ``trainable_variables``) and/or backend
            tensors (input images), in any mix.

    Returns:
        ``(loss, grads)``: the loss as a backend tensor and one gradient per item of ``wrt``, in
        order, shaped like it. A variable the loss does not depend on gets zeros. With
        ``has_aux``: ``((loss, aux), grads)``.
    """
    global _depth
    wrt = list(wrt)
    backend = keras.backend.backend()
    impl = {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}.get(backend)
    if impl is None:
        raise NotImplementedError(f"value_and_grad does not support the {backend!r} backend")
    _depth += 1
    try:
        (loss, aux), grads = impl(_with_aux(loss_fn, has_aux), wrt)
    finally:
        _depth -= 1
    return ((loss, aux) if has_aux else loss), grads


def _with_aux(loss_fn, has_aux):
    """``loss_fn`` as a function that returns ``(loss, aux)``."""
    if has_aux:
        return loss_fn
    return lambda *args: (loss_fn(*args), None)


def _zeros_for_none(grads: Sequence[Any], wrt: Sequence[Any]) -> list[Any]:
    return [keras.ops.zeros(w.shape, dtype=w.dtype) if g is None else g
            for g, w in zip(grads, wrt)]


def _tensorflow(loss_fn, wrt):
    import tensorflow as tf

    tensors = [keras.ops.convert_to_tensor(w) for w in wrt if not _is_variable(w)]
    targets, it = [], iter(tensors)
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        for w in wrt:
            targets.append(w if _is_variable(w) else next(it))
        loss, aux = loss_fn(*tensors)
    grads = tape.gradient(loss, targets)
    return (loss, aux), _zeros_for_none(grads, wrt)


def _torch(loss_fn, wrt):
    import torch

    tensors, targets = [], []
    for w in wrt:
        if _is_variable(w):
            targets.append(w.value)
        else:
            t = keras.ops.convert_to_tensor(w)
            if not t.requires_grad:  # a fresh leaf; a tensor inside a graph keeps its history
                t = t.detach().requires_grad_(True)
            tensors.append(t)
            targets.append(t)
    with torch.enable_grad():
        loss, aux = loss_fn(*tensors)
        nested = _depth > 1
        grads = torch.autograd.grad(loss, targets, create_graph=nested, allow_unused=True)
    if not nested:
        loss, aux = keras.tree.map_structure(
            lambda t: t.detach() if isinstance(t, torch.Tensor) else t, (loss, aux))
    return (loss, aux), _zeros_for_none(grads, wrt)


class _RecordingScope(keras.StatelessScope):
    """A stateless scope that remembers which variables were assigned inside it."""

    def __init__(self, state_mapping=None, outer=None):
        super().__init__(state_mapping=None, initialize_variables=False)
        if outer is not None:  # nested: see the enclosing scope's values
            self.state_mapping.update(outer.state_mapping)
        for variable, value in state_mapping or ():
            self.state_mapping[id(variable)] = value
        self.assigned: dict[int, Any] = {}

    def add_update(self, update):
        variable, value = update
        self.assigned[id(variable)] = variable
        super().add_update(update)


def _jax(loss_fn, wrt):
    import jax
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    outer = get_stateless_scope()
    variables = [w for w in wrt if _is_variable(w)]
    tensors = [keras.ops.convert_to_tensor(w) for w in wrt if not _is_variable(w)]
    current = [outer.get_current_value(v) if outer is not None and
               outer.get_current_value(v) is not None else v.value for v in variables]
    scopes = []

    def pure(var_values, tensor_values):
        with _RecordingScope(list(zip(variables, var_values)), outer) as scope:
            loss, aux = loss_fn(*tensor_values)
        scopes.append(scope)
        updates = {k: scope.state_mapping[k] for k in scope.assigned}
        return loss, (aux, updates)

    (loss, (aux, updates)), (var_grads, tensor_grads) = jax.value_and_grad(
        pure, argnums=(0, 1), has_aux=True)(current, tensors)
    scope = scopes[-1]
    for key, value in updates.items():
        variable = scope.assigned[key]
        if outer is not None:
            outer.add_update((variable, value))
        else:
            variable.assign(value)
    vg, tg = iter(var_grads), iter(tensor_grads)
    return (loss, aux), [next(vg) if _is_variable(w) else next(tg) for w in wrt]
