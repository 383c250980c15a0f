"""t-SNE maps of hidden-layer features (Nøkland 2016, Fig. 3)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits  # installed with scikit-learn (its dependency)


def subsample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``min(size, n)`` distinct indices into ``range(n)``, drawn with ``seed`` and sorted:
    the same examples for every run of a report."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


@torch.no_grad()
def hidden_features(net, x: torch.Tensor, batch_size: int = 1000) -> list[np.ndarray]:
    """Each hidden block's output for ``x`` (eval mode), flattened to ``N × features``."""
    was_training = net.training
    net.eval()
    try:
        parts = [net.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        net.train(was_training)
    return [torch.cat([p[layer] for p in parts]).flatten(1).double().cpu().numpy()
            for layer in range(len(parts[0]))]


def embed(features: np.ndarray, seed: int = 0, perplexity: float = 30.0,
          pca_dims: int = 50) -> np.ndarray:
    """A 2-D t-SNE embedding (``N × 2``) of the rows of ``features``.

    Wider features are first reduced to ``pca_dims`` principal components (the usual t-SNE
    preprocessing; it keeps wide and convolutional layers fast). PCA initialisation and a
    fixed ``random_state``, so the same features give the same map; the perplexity is
    lowered to fit small samples. scikit-learn's OpenMP threads are limited to one: on a
    busy machine they contend with each other and run many times slower.
    """
    n = len(features)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 examples; got {n}")
    features = np.asarray(features, dtype=np.float64)
    if np.ptp(features, axis=0).max(initial=0.0) == 0:  # constant features (e.g. a dead layer)
        return np.zeros((n, 2))
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca",
                random_state=seed)
    with threadpool_limits(limits=1):
        if features.shape[1] > pca_dims and n > pca_dims:
            features = PCA(n_components=pca_dims, random_state=seed).fit_transform(features)
        return tsne.fit_transform(features)
