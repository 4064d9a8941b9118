"""Claims of the structure chapters: hessian_structure, conjugate_matrix, ansatz.

Every claim is decided by its rule from numbers the chapter computes (``claims.evaluate``); the
thresholds below are the companion's choices, stated in each claim's statistic.
"""

from __future__ import annotations

from .registry import Claim, register
from .rules import AtMost, Count, Holds, Sign

#: Relative tolerance of "the top of H is the top of G" (median over the top C-1 eigenvalues). Why a
#: quarter: the paper gives no number; the companion reads "the outliers come from G" as "G accounts for
#: at least three quarters of each outlier eigenvalue of H", so that the residual R is the smaller part.
GN_TOP_TOLERANCE = 0.25
#: How far the count of class directions may be from C-1 (cross-entropy) or C (squared error): one,
#: because the paper's count is "about one outlier per class" and the C-th direction is degenerate
#: under cross-entropy (its logits sum to a constant), so an off-by-one is within the claim.
PER_CLASS_TOLERANCE = 1
#: Largest |lambda_j(G) - lambda_j(K)| / lambda_max accepted as "the same spectrum" (float64 rounding is ~1e-15).
SPECTRA_TOLERANCE = 1e-8

register(
    Claim(
        id="hessian_structure.outliers_per_class",
        chapter="hessian_structure",
        statement=(
            "The paper, following the empirical Hessian literature, says the top of the Hessian spectrum "
            "holds about one outlier per class."
        ),
        statistic=(
            "per seed and loss at the end of training, the number of top eigenvectors of G with more than half "
            "of their squared norm in the span of the class-mean gradients; a case agrees when it is within one "
            "of C-1 (cross-entropy) or C (squared error) (one: the paper says *about* one per class, and the "
            "C-th class direction is degenerate under cross-entropy); every run must agree"
        ),
        rule=Count(required=1.0),
        source="paper",
    ),
    Claim(
        id="hessian_structure.outliers_from_gauss_newton",
        chapter="hessian_structure",
        statement="The paper says the outlier eigenvalues of the Hessian come from the Gauss-Newton matrix $G$.",
        statistic=(
            "median over the top C-1 eigenvalues of |lambda_j(H) - lambda_j(G)| / lambda_j(H) at the end of "
            f"training, largest over seeds and losses, against the companion's tolerance {GN_TOP_TOLERANCE:g} (the "
            "paper gives no number: 'the outliers come from G' is read as 'G accounts for at least three quarters "
            "of each outlier eigenvalue', so that the residual R is the smaller part)"
        ),
        rule=AtMost(GN_TOP_TOLERANCE),
        source="paper",
    ),
    Claim(
        id="hessian_structure.residual_shrinks",
        chapter="hessian_structure",
        statement=(
            "The paper says the residual term $R$ is small near interpolation: $\\|R\\|$ relative to the sharpness "
            "is smaller at the end of training than at initialisation."
        ),
        statistic=(
            "per seed: log(||R||_2 / lambda_1(H) at the end / the same at initialisation), averaged over both "
            "losses (the two runs of a seed share their initialisation); 95 % t interval over seeds"
        ),
        rule=Sign(-1),
        source="paper",
    ),
    Claim(
        id="conjugate_matrix.equal_spectra",
        kind="check",
        chapter="conjugate_matrix",
        statement=(
            "The companion's explicit form of the paper's Eq. 4: $G=A^\\top A$ and the conjugate matrix "
            "$K=AA^\\top$, built independently, have the same non-zero eigenvalues."
        ),
        statistic=(
            "max_j |lambda_j(G) - lambda_j(K)| / lambda_max over both losses, float64 "
            f"(tolerance {SPECTRA_TOLERANCE:g}: float64 eigensolvers agree to about 1e-15 relative, so only a real "
            "difference between the spectra fails)"
        ),
        rule=AtMost(SPECTRA_TOLERANCE),
        source="companion",
    ),
    Claim(
        id="conjugate_matrix.first_layer_absent",
        kind="check",
        chapter="conjugate_matrix",
        statement=(
            "The paper says the first-layer weights $W_1$ never appear in $K$: a change of input coordinates "
            "($W_1/c$ on $cx$) divides the Jacobian by $c$ while $K$ changes only through the inputs' Gram factor."
        ),
        statistic=(
            "checks, each to 1e-8 relative (float64 rounding is about 1e-15, so only a real difference fails): the "
            "closed form of K^(1) from the Gram matrix, the outputs unchanged by every rescaling, the later layers' "
            "term unchanged, lambda_max(K_c) non-decreasing in c, and the Jacobian times c constant"
        ),
        rule=Holds(),
        source="paper",
    ),
    Claim(
        id="ansatz.proposition_a_holds",
        kind="check",
        chapter="ansatz",
        statement=(
            "The companion's Proposition A: along training, $\\lambda_{\\max}(G)$ lies between the Jacobian lower "
            "bound (ii) and the layer-wise upper bound (i)."
        ),
        statistic="every snapshot of every seed's squared-error run: lower (ii) <= lambda_max(G) <= upper (i)",
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="ansatz.move_together",
        chapter="ansatz",
        statement=(
            "The paper's ansatz: while the mediating factors stay put, sharpness and the Jacobian over the "
            "training sample move together."
        ),
        statistic=(
            "per seed, squared-error run: the concordance of the directions of change of lambda_max(G) and "
            "max_i ||Jf(x_i)|| between consecutive snapshots, mean of sign(Δλ)·sign(ΔJ) in [-1, 1]; 95 % t "
            "interval over seeds (a trend both series share counts as moving together)"
        ),
        rule=Sign(+1),
        source="paper",
    ),
    Claim(
        id="ansatz.rescaling_mediates",
        kind="check",
        chapter="ansatz",
        statement=(
            "The paper's mediating factor 2 (after Dinh et al. 2017): a function-preserving rescaling of two "
            "layers changes the sharpness but neither the function nor its Jacobian."
        ),
        statistic=(
            "per seed: outputs and Jacobians unchanged to 1e-8 relative over alpha in [0.1, 10] (float64 rounding "
            "is about 1e-15, so 1e-8 fails only on a real change), and the sharpness varying by at least a factor 10 "
            "over that range (an order of magnitude, far beyond the 1e-3 tolerance of the Lanczos measurement)"
        ),
        rule=Count(required=1.0),
        source="paper",
    ),
    Claim(
        id="ansatz.saturation_mediates",
        chapter="ansatz",
        statement=(
            "The paper's mediating factor 1: without label smoothing the cross-entropy saturates (mean $\\|C_i\\|$ "
            "falls towards 0), so sharpness falls from its peak while the Jacobian does not."
        ),
        statistic=(
            "per seed, cross-entropy without smoothing: log(final / peak sharpness) - log(final max ||Jf|| / "
            "max ||Jf|| at the sharpness peak), negative when the sharpness falls more than the Jacobian; 95 % t "
            "interval over seeds (the fall of the mean ||C_i|| is reported beside it)"
        ),
        rule=Sign(-1),
        source="paper",
    ),
    Claim(
        id="ansatz.smoothing_keeps_curvature",
        chapter="ansatz",
        statement="The paper says label smoothing keeps the output curvature $C$ away from 0.",
        statistic=(
            "per seed: log(final mean ||C_i|| with smoothing / final mean ||C_i|| without), the unsmoothed run "
            "from the same initialisation being the control that goes to 0; 95 % t interval over seeds (the floor "
            "lambda_max(diag(t) - t t^T) is reported beside it)"
        ),
        rule=Sign(+1),
        source="paper",
    ),
    Claim(
        id="ansatz.linear_does_not_sharpen",
        kind="check",
        chapter="ansatz",
        statement="The paper's mediating factor 3: a linear model does not sharpen (under squared error).",
        statistic=(
            "(max - min) / mean of the linear model's measured sharpness over training, largest over seeds "
            "(tolerance 1e-3: the Lanczos tolerance of the measurement)"
        ),
        rule=AtMost(1e-3),
        source="paper",
    ),
    Claim(
        id="ansatz.first_layer_blind_spot",
        chapter="ansatz",
        statement=(
            "The paper's mediating factor 3 under training: training only the first layer grows the Jacobian "
            "more than the sharpness, and more so than training only the last layer."
        ),
        statistic=(
            "per seed: r_1 = (Jacobian growth / sharpness growth) of first-layer-only training and r_L the same "
            "for last-layer-only training; the smaller margin min(log r_1, log r_1/r_L), positive when r_1 > 1 "
            "and r_1 > r_L; 95 % t interval over seeds"
        ),
        rule=Sign(+1),
        source="paper",
    ),
)
