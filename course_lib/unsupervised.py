"""Unsupervised learning in NumPy: k-means, PCA and density estimation (lecture: "Generative methods").

Supervised learning fits y = f(x) from pairs (x, y); unsupervised learning has only the x and
looks for structure in them: clusters (k-means), a low-dimensional subspace (PCA), or the
density p(x) itself (histograms, kernel density estimates).

    k-means      minimise the inertia  J = Σ_i ‖x_i − μ_{c_i}‖²  by alternating
                 assign:  c_i = argmin_j ‖x_i − μ_j‖²        update:  μ_j = mean{x_i : c_i = j}
    PCA          X̃ = X − x̄ = U S Vᵀ;  the components are the rows of Vᵀ, and component j
                 keeps the variance S_j² / (n − 1), a share S_j² / Σ_k S_k² of the total
    density      histogram  p̂(x) = n_bin / (n · volume_bin)
                 kernel     p̂(x) = 1/n Σ_i N(x; x_i, H),  H from Scott's or Silverman's rule

Every function here is a NumPy reference; ``tests/test_unsupervised.py`` checks them against
scikit-learn and SciPy. This module imports neither Keras nor TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .validation import check_array, check_choice, check_labels, check_number

BANDWIDTH_RULES = ("scott", "silverman")


def _check_points(name, x, *, dims=None) -> np.ndarray:
    """An (n, d) float array; a 1-d array of n numbers is read as n points in one dimension."""
    x = check_array(name, x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of points, shape (n,) or (n, d); "
                         f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must hold finite numbers; got NaN or inf")
    if dims is not None and x.shape[1] not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} columns; got shape {x.shape}")
    return x


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    check_number("seed", seed, low=0, integer=True)
    return np.random.default_rng(seed)


# --- k-means ----------------------------------------------------------------------------------

def squared_distances(x, centres) -> np.ndarray:
    """D_ij = ‖x_i − μ_j‖² for points x (n, d) and centres μ (k, d); shape (n, k)."""
    x, centres = _check_points("x", x), _check_points("centres", centres)
    if x.shape[1] != centres.shape[1]:
        raise ValueError(f"x and centres must have the same number of columns; "
                         f"got shapes {x.shape} and {centres.shape}")
    return np.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=-1)


def kmeans_plus_plus(x, k: int, seed=0) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre is a point drawn
    uniformly; each next centre is a point drawn with probability D(x)² / Σ D(x')², where D(x)
    is the distance from x to its nearest centre chosen so far. Returns centres, shape (k, d)."""
    x = _check_points("x", x)
    check_number("k", k, low=1, high=len(x), integer=True)
    rng = _rng(seed)
    centres = [x[rng.integers(len(x))]]
    nearest = squared_distances(x, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        probabilities = nearest / total if total > 0 else np.full(len(x), 1 / len(x))
        centres.append(x[rng.choice(len(x), p=probabilities)])
        nearest = np.minimum(nearest, squared_distances(x, centres[-1][None])[:, 0])
    return np.array(centres)


def assign(x, centres) -> np.ndarray:
    """The assignment step: each point joins its nearest centre,

        c_i = argmin_j ‖x_i − μ_j‖²

    x has shape (n, d), centres (k, d); returns the n labels c_i in 0..k−1 (ties: lowest j)."""
    return np.argmin(squared_distances(x, centres), axis=1)


def update(x, labels, centres) -> np.ndarray:
    """The update step: each centre moves to the mean of its points,

        μ_j = (1 / |S_j|) Σ_{i ∈ S_j} x_i,   S_j = {i : c_i = j}

    (the mean over the *points* axis, axis 0). ``centres`` (k, d) are the current centres: a
    cluster left with no points keeps its centre (scikit-learn instead moves it to a far point).
    """
    x, centres = _check_points("x", x), _check_points("centres", centres)
    k = len(centres)
    labels = check_labels("labels", labels, count=len(x), num_classes=k)
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros_like(centres)
    np.add.at(sums, labels, x)
    occupied = counts > 0
    new = centres.copy()
    new[occupied] = sums[occupied] / counts[occupied, None]
    return new


def inertia(x, centres, labels=None) -> float:
    """J = Σ_i ‖x_i − μ_{c_i}‖², the sum of squared distances to the assigned centres
    (labels default to the nearest centres)."""
    distances = squared_distances(x, centres)
    if labels is None:
        labels = np.argmin(distances, axis=1)
    labels = check_labels("labels", labels, count=len(distances), num_classes=distances.shape[1])
    return float(distances[np.arange(len(distances)), labels].sum())


@dataclass
class KMeansResult:
    """What ``kmeans`` found: centres (k, d), labels (n,), final inertia, the number of
    iterations, and the inertia after each iteration (it never increases)."""

    centres: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    history: list[float] = field(default_factory=list)


def kmeans(x, k: int, *, init="k-means++", max_iter: int = 300, n_init: int = 1, seed=0) -> KMeansResult:
    """Lloyd's algorithm: from initial centres, alternate ``assign`` and ``update`` until no
    label changes (or ``max_iter``). Each step lowers J = Σ_i ‖x_i − μ_{c_i}‖² or leaves it.

    init    "k-means++" (``kmeans_plus_plus``), "random" (k distinct points), or an array (k, d)
    n_init  restarts from different seeds; the run with the lowest inertia is returned
    seed    an int or a ``numpy.random.Generator``: the same seed gives the same clustering
    """
    x = _check_points("x", x)
    check_number("k", k, low=1, high=len(x), integer=True)
    check_number("max_iter", max_iter, low=1, integer=True)
    check_number("n_init", n_init, low=1, integer=True)
    if isinstance(init, str):
        check_choice("init", init, ("k-means++", "random"))
    else:
        init = check_array("init", init, shape=(k, x.shape[1]))
        if n_init != 1:
            raise ValueError(f"n_init must be 1 when init is an array of centres; got {n_init}")
    rng = _rng(seed)
    best = None
    for _ in range(n_init):
        if isinstance(init, np.ndarray):
            centres = init.copy()
        elif init == "k-means++":
            centres = kmeans_plus_plus(x, k, rng)
        else:
            centres = x[rng.choice(len(x), size=k, replace=False)]
        result = _lloyd(x, centres, max_iter)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def _lloyd(x, centres, max_iter) -> KMeansResult:
    labels = assign(x, centres)
    history = []
    for iteration in range(1, max_iter + 1):
        centres = update(x, labels, centres)
        new_labels = assign(x, centres)
        history.append(inertia(x, centres, new_labels))
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return KMeansResult(centres, new_labels, history[-1], iteration, history)


def purity(labels_true, labels_pred) -> float:
    """Cluster purity: each cluster votes for its most common true label,

        purity = (1/n) Σ_k max_j |cluster_k ∩ class_j|

    1 when every cluster holds one class; it rises with the number of clusters (n clusters of
    one point each score 1), so compare clusterings with the same k."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.ndim != 1 or labels_true.size == 0:
        raise ValueError(f"labels_true must be a non-empty 1-d array of labels; got shape {labels_true.shape}")
    if labels_pred.shape != labels_true.shape:
        raise ValueError(f"labels_pred must have the shape of labels_true, {labels_true.shape}; "
                         f"got {labels_pred.shape}")
    _, cluster = np.unique(labels_pred, return_inverse=True)
    _, truth = np.unique(labels_true, return_inverse=True)
    table = np.zeros((cluster.max() + 1, truth.max() + 1), dtype=np.int64)
    np.add.at(table, (cluster, truth), 1)
    return float(table.max(axis=1).sum() / len(labels_true))


# --- PCA ----------------------------------------------------------------------------------------

@dataclass
class PCAResult:
    """A fitted PCA: the mean x̄ (d,), components (k, d) with orthonormal rows, the variance each
    keeps S_j²/(n−1), its share S_j²/Σ S², and the singular values S_j."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray

    def transform(self, x) -> np.ndarray:
        """The codes z = (x − x̄) Vₖᵀ, shape (n, k)."""
        return (self._check(x) - self.mean) @ self.components.T

    def inverse_transform(self, z) -> np.ndarray:
        """The reconstructions x̂ = z Vₖ + x̄, shape (n, d)."""
        z = check_array("z", z, ndim=2)
        if z.shape[1] != len(self.components):
            raise ValueError(f"z must have {len(self.components)} columns, one per component; "
                             f"got shape {z.shape}")
        return z @ self.components + self.mean

    def reconstruction_error(self, x) -> float:
        """Mean squared error per point, (1/n) Σ_i ‖x_i − x̂_i‖²; on the training data it equals
        (n−1)/n times the variance left in the dropped components."""
        x = self._check(x)
        return float(np.mean(np.sum((x - self.inverse_transform(self.transform(x))) ** 2, axis=1)))

    def _check(self, x):
        x = check_array("x", x, ndim=2)
        if x.shape[1] != len(self.mean):
            raise ValueError(f"x must have {len(self.mean)} columns, as the data PCA was fitted on; "
                             f"got shape {x.shape}")
        return x


def pca(x, n_components: int | None = None) -> PCAResult:
    """PCA by the SVD of the centred data:

        X̃ = X − x̄ = U S Vᵀ,   components = first k rows of Vᵀ,
        explained variance_j = S_j² / (n − 1),   ratio_j = S_j² / Σ_l S_l²

    Images (n, h, w, c) are flattened to (n, h·w·c). Each component's sign is fixed so that its
    entry of largest magnitude is positive, as scikit-learn ≥ 1.5 does (older versions fix it
    from U instead: compare components up to sign). ``n_components`` defaults to min(n, d)."""
    x = check_array("x", x, min_ndim=2)
    x = x.reshape(len(x), -1)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x must hold at least 2 points to estimate a variance; got shape {x.shape}")
    limit = min(n, d)
    n_components = limit if n_components is None else n_components
    check_number("n_components", n_components, low=1, high=limit, integer=True)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    largest = np.argmax(np.abs(vt), axis=1)
    vt *= np.sign(vt[np.arange(len(vt)), largest])[:, None]
    variance = s ** 2 / (n - 1)
    total = np.sum(s ** 2)
    ratio = s ** 2 / total if total > 0 else np.zeros_like(s)
    k = n_components
    return PCAResult(mean, vt[:k], variance[:k], ratio[:k], s[:k])


# --- density estimation -------------------------------------------------------------------------

def histogram_density(x, bins=10, range=None):
    """The histogram density estimate in 1-d or 2-d,

        p̂(x) = n_b / (n · V_b)   for x in bin b with n_b points and volume (length, area) V_b,

    so p̂ integrates to 1 over the bins. ``bins`` is a count (or one per dimension), ``range``
    the bounds, ((low, high) or one pair per dimension; default: the data's). Returns
    ``(density, edges)``: density has shape (bins,) or (bins_x, bins_y), edges is one array per
    dimension. Points outside ``range`` are dropped from the counts but not from n."""
    x = _check_points("x", x, dims=(1, 2))
    n, d = x.shape
    bins = [bins] * d if np.ndim(bins) == 0 else list(bins)
    if len(bins) != d:
        raise ValueError(f"bins must be one count or {d} counts; got {bins!r}")
    for count in bins:
        check_number("bins", count, low=1, integer=True)
    if range is None:
        range = [(column.min(), column.max()) for column in x.T]
    else:
        range = [range] if d == 1 and np.ndim(range) == 1 else list(range)
        if np.shape(range) != (d, 2):
            raise ValueError(f"range must be (low, high){' per dimension' if d > 1 else ''}; got {range!r}")
    edges = []
    for (low, high), count in zip(range, bins):
        if low == high:
            low, high = low - 0.5, high + 0.5
        if not low < high:
            raise ValueError(f"range must have low < high; got ({low}, {high})")
        edges.append(np.linspace(low, high, count + 1))
    counts, edges = np.histogramdd(x, bins=edges)
    volume = np.ones_like(counts)
    for axis, edge in enumerate(edges):
        shape = [1] * d
        shape[axis] = -1
        volume = volume * np.diff(edge).reshape(shape)
    density = counts / (n * volume)
    return density, list(edges)


def bandwidth_factor(n: int, d: int, rule: str = "scott") -> float:
    """The kernel's scale relative to the data's spread, as in ``scipy.stats.gaussian_kde``:

        Scott:      f = n^(−1/(d+4))
        Silverman:  f = (n (d + 2) / 4)^(−1/(d+4))

    The kernel covariance is H = f² Σ̂ (Σ̂ the sample covariance); in 1-d the bandwidth is
    h = f σ̂."""
    check_number("n", n, low=1, integer=True)
    check_number("d", d, low=1, integer=True)
    check_choice("rule", rule, BANDWIDTH_RULES)
    if rule == "scott":
        return float(n ** (-1.0 / (d + 4)))
    return float((n * (d + 2) / 4.0) ** (-1.0 / (d + 4)))


def kernel_density(data, points, bandwidth="scott") -> np.ndarray:
    """The Gaussian kernel density estimate of ``data`` (n, d) at ``points`` (m, d), d = 1 or 2:

        p̂(x) = (1/n) Σ_i N(x; x_i, H)
             = (1/n) Σ_i (2π)^(−d/2) |H|^(−1/2) exp(−½ (x − x_i)ᵀ H⁻¹ (x − x_i))

    bandwidth  "scott" or "silverman": H = f² Σ̂ with f from ``bandwidth_factor`` (what
               ``scipy.stats.gaussian_kde`` does); a positive number h: H = h² I (what
               ``sklearn.neighbors.KernelDensity(bandwidth=h)`` does).
    Returns the m densities. 1-d arrays are read as points on a line."""
    data = _check_points("data", data, dims=(1, 2))
    points = _check_points("points", points, dims=(1, 2))
    n, d = data.shape
    if points.shape[1] != d:
        raise ValueError(f"points must have {d} columns, like data; got shape {points.shape}")
    if isinstance(bandwidth, str):
        check_choice("bandwidth", bandwidth, BANDWIDTH_RULES)
        if n < 2:
            raise ValueError(f"data must hold at least 2 points for the {bandwidth!r} rule; got {n}")
        covariance = np.atleast_2d(np.cov(data, rowvar=False)) * bandwidth_factor(n, d, bandwidth) ** 2
        if np.linalg.det(covariance) <= 0:
            raise ValueError("data has no spread in some direction, so the rule's bandwidth is 0; "
                             "pass a number as bandwidth")
    else:
        check_number("bandwidth", bandwidth, low=0, low_inclusive=False)
        covariance = bandwidth ** 2 * np.eye(d)
    precision = np.linalg.inv(covariance)
    diff = points[:, None, :] - data[None, :, :]
    mahalanobis = np.einsum("mni,ij,mnj->mn", diff, precision, diff)
    norm = np.sqrt((2 * np.pi) ** d * np.linalg.det(covariance))
    return np.exp(-0.5 * mahalanobis).sum(axis=1) / (n * norm)
