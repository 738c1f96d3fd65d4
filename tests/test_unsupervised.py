"""NumPy references of k-means, PCA and density estimation, checked against scikit-learn and SciPy."""
import numpy as np
import pytest
from scipy.stats import gaussian_kde
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity

from course_lib import unsupervised as U

rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=300, centers=4, cluster_std=1.0, random_state=0)
    return x, y


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data / 16.0, data.target


# --- k-means -----------------------------------------------------------------------------------

def test_assign_picks_the_nearest_centre():
    x = np.array([[0.0, 0.0], [0.9, 0.0], [5.0, 5.0], [4.0, 6.0]])
    centres = np.array([[0.0, 0.0], [5.0, 5.0]])
    assert U.assign(x, centres).tolist() == [0, 0, 1, 1]
    assert np.allclose(U.squared_distances(x, centres)[1], [0.81, 4.1 ** 2 + 25])
    with pytest.raises(ValueError, match="x and centres must have the same number of columns"):
        U.assign(x, np.zeros((2, 3)))


def test_update_averages_over_the_points_axis_and_keeps_empty_clusters():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    centres = np.array([[1.0, 1.0], [9.0, 9.0], [-7.0, 3.0]])
    new = U.update(x, np.array([0, 0, 1]), centres)
    assert np.allclose(new, [[1.0, 0.0], [10.0, 10.0], [-7.0, 3.0]])   # cluster 2 is empty: kept
    assert np.allclose(centres[2], [-7.0, 3.0])                           # input not modified
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        U.update(x, np.array([0, 3, 1]), centres)
    with pytest.raises(ValueError, match="labels must be integer class labels; got an array of shape .3,. and dtype float64"):
        U.update(x, np.array([0.0, 1.0, 1.0]), centres)
    with pytest.raises(ValueError, match="labels must hold 3 labels, one per example; got 2"):
        U.update(x, np.array([0, 1]), centres)


def test_inertia():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    centres = np.array([[1.0, 0.0], [10.0, 9.0]])
    assert U.inertia(x, centres) == pytest.approx(1 + 1 + 1)
    assert U.inertia(x, centres, np.array([1, 0, 0])) == pytest.approx(181 + 1 + 181)


def test_kmeans_matches_sklearn_from_the_same_initial_centres(digits):
    x, _ = digits
    init = U.kmeans_plus_plus(x, 10, seed=3)
    ours = U.kmeans(x, 10, init=init)
    theirs = KMeans(10, init=init, n_init=1, tol=0.0, max_iter=300, algorithm="lloyd").fit(x)
    assert np.array_equal(ours.labels, theirs.labels_)
    assert np.allclose(ours.centres, theirs.cluster_centers_, atol=1e-8)
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-9)


def test_kmeans_lowers_inertia_each_step_and_is_seeded(blobs):
    x, y = blobs
    result = U.kmeans(x, 4, seed=0)
    assert all(later <= earlier + 1e-9 for earlier, later in zip(result.history, result.history[1:]))
    assert result.n_iter == len(result.history)
    assert np.array_equal(U.kmeans(x, 4, seed=0).labels, result.labels)
    assert U.purity(y, result.labels) > 0.9
    best = U.kmeans(x, 4, init="random", n_init=5, seed=1)
    assert best.inertia <= U.kmeans(x, 4, init="random", n_init=1, seed=1).inertia + 1e-9
    with pytest.raises(ValueError, match="k must be in \\[1, 300\\]"):
        U.kmeans(x, 301)
    with pytest.raises(ValueError, match="init must be one of"):
        U.kmeans(x, 4, init="kmeans")
    with pytest.raises(ValueError, match="init must have shape \\(4, 2\\)"):
        U.kmeans(x, 4, init=np.zeros((3, 2)))


def test_kmeans_plus_plus_spreads_its_centres():
    x = np.concatenate([rng.normal(size=(50, 2)) * 0.01 + offset for offset in ([0, 0], [100, 0], [0, 100])])
    centres = U.kmeans_plus_plus(x, 3, seed=0)
    assert sorted(set(U.assign(centres, [[0, 0], [100, 0], [0, 100]]).tolist())) == [0, 1, 2]
    duplicate = U.kmeans_plus_plus(np.ones((5, 2)), 3, seed=0)      # all distances 0: still k centres
    assert duplicate.shape == (3, 2)


def test_purity():
    assert U.purity([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert U.purity([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    assert U.purity(["a", "b", "b", "c"], [0, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="labels_pred must have the shape of labels_true"):
        U.purity([0, 1], [0])


# --- PCA ---------------------------------------------------------------------------------------

def test_pca_matches_sklearn_up_to_sign(digits):
    x, _ = digits
    ours = U.pca(x, 10)
    theirs = PCA(10, svd_solver="full").fit(x)
    assert np.allclose(ours.explained_variance_ratio, theirs.explained_variance_ratio_)
    assert np.allclose(ours.explained_variance, theirs.explained_variance_)
    signs = np.sign(np.sum(ours.components * theirs.components_, axis=1))
    assert np.allclose(ours.components, signs[:, None] * theirs.components_, atol=1e-8)
    assert np.allclose(ours.transform(x), signs * theirs.transform(x), atol=1e-8)
    assert np.allclose(ours.inverse_transform(ours.transform(x)),
                       theirs.inverse_transform(theirs.transform(x)), atol=1e-8)


def test_pca_components_are_orthonormal_and_errors_add_up(digits):
    x, _ = digits
    full = U.pca(x)
    assert full.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert np.allclose(full.components @ full.components.T, np.eye(len(full.components)), atol=1e-10)
    k, n = 5, len(x)
    five = U.pca(x, k)
    left = full.explained_variance[k:].sum()                 # the variance in the dropped components
    assert five.reconstruction_error(x) == pytest.approx(left * (n - 1) / n)
    assert U.pca(x).reconstruction_error(x) == pytest.approx(0.0, abs=1e-20)
    images = x.reshape(-1, 8, 8, 1)
    assert np.allclose(U.pca(images, 3).components, U.pca(x, 3).components)


def test_pca_needs_centring():
    x = rng.normal(size=(200, 2)) * [3.0, 0.5] + [50.0, 50.0]
    first = U.pca(x, 1).components[0]
    assert abs(first[0]) > 0.99                         # the wide axis, not the direction of the mean
    uncentred = np.linalg.svd(x, full_matrices=False)[2][0]
    assert abs(uncentred @ [1, 1]) / np.sqrt(2) > 0.99   # what forgetting x̄ finds instead


def test_pca_checks_its_arguments():
    x = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="n_components must be in \\[1, 4\\]"):
        U.pca(x, 5)
    with pytest.raises(ValueError, match="x must have 4 columns"):
        U.pca(x, 2).transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="z must have 2 columns"):
        U.pca(x, 2).inverse_transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2 points"):
        U.pca(x[:1])


# --- density estimation ------------------------------------------------------------------------

def test_histogram_density_matches_numpy_and_integrates_to_one():
    x = rng.normal(size=500)
    density, (edges,) = U.histogram_density(x, bins=20)
    reference, reference_edges = np.histogram(x, bins=20, density=True)
    assert np.allclose(density, reference) and np.allclose(edges, reference_edges)
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    xy = rng.normal(size=(500, 2))
    density2, (ex, ey) = U.histogram_density(xy, bins=(8, 6), range=[(-4, 4), (-3, 3)])
    reference2, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=(8, 6), range=[(-4, 4), (-3, 3)], density=True)
    inside = np.all(np.abs(xy) < [4, 3], axis=1).mean()
    assert density2.shape == (8, 6) and np.allclose(ex, np.linspace(-4, 4, 9)) and np.allclose(ey, np.linspace(-3, 3, 7))
    assert np.allclose(density2, reference2 * inside)   # NumPy renormalizes over the range; we divide by n
    with pytest.raises(ValueError, match="x must have 1 or 2 columns"):
        U.histogram_density(rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="range must have low < high"):
        U.histogram_density(x, range=(1, 0))


@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("d", [1, 2])
def test_kernel_density_matches_scipy(rule, d):
    data = rng.normal(size=(200, d)) * ([1.0, 0.3][:d]) + ([0.0, 2.0][:d])
    points = rng.normal(size=(50, d))
    ours = U.kernel_density(data, points, rule)
    theirs = gaussian_kde(data.T, bw_method=rule)(points.T)
    assert np.allclose(ours, theirs, rtol=1e-10)


def test_kernel_density_with_a_number_matches_sklearn():
    data, points = rng.normal(size=(300, 2)), rng.normal(size=(40, 2))
    ours = U.kernel_density(data, points, 0.4)
    theirs = np.exp(KernelDensity(bandwidth=0.4).fit(data).score_samples(points))
    assert np.allclose(ours, theirs, rtol=1e-8)
    line = rng.normal(size=100)
    grid = np.linspace(-8, 8, 4001)
    assert np.sum(U.kernel_density(line, grid)) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-6)
    assert U.bandwidth_factor(100, 1) == pytest.approx(100 ** -0.2)


def test_kernel_density_checks_its_arguments():
    with pytest.raises(ValueError, match="bandwidth must be in \\(0, inf\\]"):
        U.kernel_density(rng.normal(size=10), [0.0], 0.0)
    with pytest.raises(ValueError, match="bandwidth must be one of 'scott', 'silverman'"):
        U.kernel_density(rng.normal(size=10), [0.0], "auto")
    with pytest.raises(ValueError, match="points must have 2 columns"):
        U.kernel_density(rng.normal(size=(10, 2)), [0.0])
    with pytest.raises(ValueError, match="no spread"):
        U.kernel_density(np.ones(10), [0.0])
