"""The --node-* options: their argparse definitions, defaults and validation.

Validation runs when the model is built (before any training step) and every message names the flag.
"""
import argparse
import math
from dataclasses import dataclass
from typing import Optional, Tuple

from odeint_ext import ADAPTIVE_METHODS, FIXED_GRID_METHODS, METHODS

GRADIENT_MODES = ("adjoint", "backprop")
# scipy_solver runs outside torch (no adjoint parameters, no step callbacks): not for ODE blocks.
SUPPORTED_METHODS = tuple(m for m in METHODS if m != "scipy_solver")

DEFAULTS = dict(
    node_encoder=False,
    node_decoder=False,
    node_rtol=0.01,
    node_atol=0.01,
    node_ts="0,1",
    node_method="dopri5",
    node_step_size=None,
    node_max_num_steps=1000,
    node_augment_dims=0,
    node_time_dependent=False,
    node_separated_decoder=False,
    node_gradient="adjoint",
    node_adjoint_seminorm=False,
)


def add_node_args(parser):
    """Add the --node-* options to ``parser`` (fairseq hands models its model-specific group)."""
    group = parser
    # No defaults here: the architecture functions fill them, as fairseq's architectures do.
    group.add_argument("--node-encoder", action="store_true", default=None,
                       help="replace the encoder's layer stack by one Neural-ODE block")
    group.add_argument("--node-decoder", action="store_true", default=None,
                       help="replace the decoder's layer stack by one Neural-ODE block")
    group.add_argument("--node-rtol", type=float, metavar="R",
                       help="relative tolerance of the adaptive solver (default 0.01)")
    group.add_argument("--node-atol", type=float, metavar="A",
                       help="absolute tolerance of the adaptive solver (default 0.01)")
    group.add_argument("--node-ts", type=str, metavar="T0,T1[,...]",
                       help="integration times, increasing; the block returns the state at the last one "
                            "(default 0,1; '[0.0, 1.0]' is accepted too)")
    group.add_argument("--node-method", type=str, metavar="METHOD",
                       help="torchdiffeq solver: " + ", ".join(SUPPORTED_METHODS) + " (default dopri5)")
    group.add_argument("--node-step-size", type=float, metavar="H",
                       help="step size of fixed-grid methods (" + ", ".join(FIXED_GRID_METHODS) + "); required by them")
    group.add_argument("--node-max-num-steps", type=int, metavar="N",
                       help="step budget (accepted + rejected steps) of each adaptive solve, forward and adjoint "
                            "(default 1000)")
    group.add_argument("--node-augment-dims", type=int, metavar="N",
                       help="ANODE: N zero channels per attention head appended to the ODE state, which grows by "
                            "N x heads channels; a linear layer maps the result back to the embedding width "
                            "(default 0)")
    group.add_argument("--node-time-dependent", action="store_true", default=None,
                       help="the ODE function also sees t, as one extra input channel per attention head")
    group.add_argument("--node-separated-decoder", action="store_true", default=None,
                       help="with --node-decoder: keep decoder self-attention a classic residual layer; only "
                            "encoder-decoder attention + feed-forward form the ODE")
    group.add_argument("--node-gradient", type=str, metavar="MODE",
                       help="how gradients pass the solver: 'adjoint' (solve the adjoint ODE, constant memory) or "
                            "'backprop' (through the solver's operations) (default adjoint)")
    group.add_argument("--node-adjoint-seminorm", action="store_true", default=None,
                       help="adjoint steps judged on the state and its adjoint only, not the parameter adjoints "
                            "(Kidger et al. 2021): fewer backward evaluations")


def fill_node_defaults(args):
    for name, value in DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def parse_times(text) -> Tuple[float, ...]:
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [s for s in str(text).strip().strip("[]()").replace(",", " ").split()]
    try:
        return tuple(float(s) for s in items)
    except ValueError:
        raise ValueError(f"--node-ts must be numbers separated by commas, e.g. 0,1; got {text!r}") from None


@dataclass(frozen=True)
class NodeSettings:
    """Validated solver settings shared by every ODE block of a model."""

    ts: Tuple[float, ...]
    rtol: float
    atol: float
    method: str
    step_size: Optional[float]
    max_num_steps: int
    augment_dims: int
    time_dependent: bool
    adjoint: bool
    seminorm: bool

    @property
    def adaptive(self):
        return self.method in ADAPTIVE_METHODS

    def solver_kwargs(self):
        """Keyword arguments of odeint_ext for one solve."""
        if self.adaptive:
            options = {"max_num_steps": self.max_num_steps}
        elif self.method in FIXED_GRID_METHODS:
            options = {"step_size": self.step_size}
        else:
            options = {}
        return dict(
            rtol=self.rtol,
            atol=self.atol,
            method=self.method,
            options=options,
            adjoint=self.adjoint,
            adjoint_options={"norm": "seminorm"} if self.seminorm else None,
        )


def _positive(value, flag):
    if value is None or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a positive number, got {value!r}")


def validate_node_args(args) -> NodeSettings:
    """Check every --node-* value; raise ValueError naming the flag."""
    fill_node_defaults(args)
    _positive(args.node_rtol, "--node-rtol")
    _positive(args.node_atol, "--node-atol")
    ts = parse_times(args.node_ts)
    if len(ts) < 2:
        raise ValueError(f"--node-ts needs at least two times (start and end), got {args.node_ts!r}")
    if any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"--node-ts must be strictly increasing, got {args.node_ts!r}")
    if args.node_method not in SUPPORTED_METHODS:
        raise ValueError(
            f"--node-method {args.node_method!r} is not supported; choose one of " + ", ".join(SUPPORTED_METHODS)
        )
    if args.node_method in FIXED_GRID_METHODS:
        if args.node_step_size is None:
            raise ValueError(f"--node-method {args.node_method} is a fixed-grid method and needs --node-step-size")
        _positive(args.node_step_size, "--node-step-size")
        if args.node_step_size > ts[-1] - ts[0]:
            raise ValueError(
                f"--node-step-size {args.node_step_size} is longer than the integration interval --node-ts {args.node_ts}"
            )
    elif args.node_step_size is not None:
        raise ValueError(f"--node-step-size applies to fixed-grid methods, not to --node-method {args.node_method}")
    if isinstance(args.node_max_num_steps, bool) or not isinstance(args.node_max_num_steps, int) \
            or args.node_max_num_steps < 1:
        raise ValueError(f"--node-max-num-steps must be a positive integer, got {args.node_max_num_steps!r}")
    if isinstance(args.node_augment_dims, bool) or not isinstance(args.node_augment_dims, int) \
            or args.node_augment_dims < 0:
        raise ValueError(f"--node-augment-dims must be a non-negative integer, got {args.node_augment_dims!r}")
    if args.node_separated_decoder and not args.node_decoder:
        raise ValueError("--node-separated-decoder needs --node-decoder")
    if args.node_gradient not in GRADIENT_MODES:
        raise ValueError(f"--node-gradient must be one of {', '.join(GRADIENT_MODES)}, got {args.node_gradient!r}")
    if args.node_adjoint_seminorm and args.node_gradient != "adjoint":
        raise ValueError("--node-adjoint-seminorm needs --node-gradient adjoint")
    return NodeSettings(
        ts=ts,
        rtol=float(args.node_rtol),
        atol=float(args.node_atol),
        method=args.node_method,
        step_size=args.node_step_size,
        max_num_steps=args.node_max_num_steps,
        augment_dims=args.node_augment_dims,
        time_dependent=bool(args.node_time_dependent),
        adjoint=args.node_gradient == "adjoint",
        seminorm=bool(args.node_adjoint_seminorm),
    )
