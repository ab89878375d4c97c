"""Input validation for ``odeint_ext``: every check in one place, every message naming its argument."""
import math
import numbers

import torch
from torch import nn

from ._torchdiffeq import ADAPTIVE_METHODS, METHODS

FIXED_GRID_METHODS = tuple(m for m in METHODS if m not in ADAPTIVE_METHODS and m != "scipy_solver")


def is_adaptive(method):
    return method in ADAPTIVE_METHODS


def check_method(method, name="method", choices=None):
    """``choices``: the methods a caller supports, by default every torchdiffeq method."""
    choices = METHODS if choices is None else choices
    if method not in choices:
        raise ValueError(f"{name}={method!r} is not a supported torchdiffeq method; valid methods: {', '.join(choices)}")


def check_tolerance(value, name):
    """A positive number or tensor; for a tuple state also a tuple of them, one per component."""
    if isinstance(value, tuple):
        for i, component in enumerate(value):
            check_tolerance(component, f"{name}[{i}]")
        return
    if isinstance(value, torch.Tensor):
        if value.numel() == 0 or not bool((value > 0).all()):
            raise ValueError(f"{name} must be positive, got {value}")
        return
    check_positive_number(value, name)


def check_times(t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a 1-D torch.Tensor of times, got {type(t).__name__}")
    if t.dim() != 1:
        raise ValueError(f"t must be 1-D, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"t must be a floating tensor, got dtype {t.dtype}")
    if len(t) < 1:
        raise ValueError("t must hold at least one time")
    steps = t[1:] - t[:-1]
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ValueError(f"t must be strictly increasing or strictly decreasing, got {t.tolist()}")


def check_state(y0):
    """A floating tensor, or a non-empty tuple of them (torchdiffeq's tuple state)."""
    if isinstance(y0, tuple):
        if not y0:
            raise ValueError("y0 must be a tensor or a non-empty tuple of tensors, got an empty tuple")
        for i, component in enumerate(y0):
            _check_state_tensor(component, f"y0[{i}]")
        return
    _check_state_tensor(y0, "y0")


def _check_state_tensor(y, name):
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (y0: a tensor or a tuple of tensors), got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {y.dtype}")


def check_event(event_fn, t0):
    if not callable(event_fn):
        raise TypeError(f"event_fn must be callable as event_fn(t, y), got {type(event_fn).__name__}")
    if not isinstance(t0, torch.Tensor) or not t0.is_floating_point() or t0.numel() != 1:
        raise TypeError(f"t0 must be a floating torch.Tensor holding one time, got {t0!r}")


def check_func(func, adjoint):
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y, *args), got {type(func).__name__}")
    if adjoint and not isinstance(func, nn.Module):
        raise TypeError(
            f"func must be an nn.Module when adjoint=True (its parameters get adjoint gradients), "
            f"got {type(func).__name__}"
        )


def check_args(args):
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"args must be a tuple of extra arguments for func, got {type(args).__name__}")


def check_solver_options(options, method, name="options"):
    """Validate the options odeint_ext interprets itself; the rest goes to torchdiffeq unchanged."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict, got {type(options).__name__}")
    budget = options.get("max_num_steps")
    if budget is not None:
        if not is_adaptive(method):
            raise ValueError(
                f"{name}['max_num_steps'] applies to adaptive methods ({', '.join(ADAPTIVE_METHODS)}), "
                f"not to {method!r}"
            )
        check_integer(budget, f"{name}['max_num_steps']", minimum=1)
    step_size = options.get("step_size")
    if step_size is not None:
        check_positive_number(step_size, f"{name}['step_size']")


def check_integer(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_non_negative_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
