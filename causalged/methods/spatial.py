"""The spatial neighbour graph: each spot's nearest spots, for views that borrow from neighbours.

A spot's prediction carries noise from the spot's own measured genes; spatially neighbouring
spots of the same tissue region share most of the signal but not that noise, so averaging a
prediction over a spot's neighbours can raise its accuracy (the SPRITE idea). Whether it does,
and how far to smooth, is data-dependent: the default chooses it by inner cross-validation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors


def neighbour_graph(coords: np.ndarray, *, n_neighbours: int) -> sp.csr_matrix:
    """Spots x spots, row i = equal weights on the ``n_neighbours`` spots nearest to spot i
    (itself excluded), so ``graph @ values`` is each spot's neighbourhood mean."""
    coords = np.asarray(coords, dtype=float)
    n_spots = coords.shape[0]
    k = min(int(n_neighbours), n_spots - 1)
    if k < 1:
        raise ValueError(f"a spatial neighbour graph needs at least 2 spots, got {n_spots}")
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    keep = idx != np.arange(n_spots)[:, None]
    keep[keep.all(axis=1), -1] = False  # self not among the k + 1 (coinciding spots): drop the farthest instead
    neighbours = idx[keep].reshape(n_spots, k)
    rows = np.repeat(np.arange(n_spots), k)
    return sp.csr_matrix((np.full(rows.size, 1.0 / k), (rows, neighbours.ravel())), shape=(n_spots, n_spots))
