"""sharpjac: sharpness <-> input-output Jacobian (companion to arXiv:2305.14683)."""

__version__ = "0.1.0"
