"""A square-bucket index over polygons in metric coordinates, backed by a shapely STRtree.

The plane is cut into squares of ``size`` metres aligned to multiples of ``size``. At
compile time each square is classified: empty, wholly covered by polygons that do not
cross it (``full``), or ``mixed`` (some polygon boundary crosses it; the polygons meeting
it are kept as its candidates). A point in a full square is answered by arithmetic; a
point in a mixed square by point-in-polygon tests against that square's few candidates
(``shapely.intersects_xy``, boundary inclusive; ``engine="strtree"`` uses an STRtree
``query(points, predicate="covered_by")`` instead — same answers). A point exactly on a
square's edge, and nearest-polygon snapping, go through the STRtree. For the generated
100 m cell grid (aligned to the same squares) most points take the arithmetic path.

``single=True`` indexes a tiling (cells): each point gets one polygon — the lowest index
among those covering it, which is the documented tie-break (polygons are sorted by code).
``single=False`` indexes overlapping polygons (zones): each point gets all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

EMPTY, MIXED = -1, -2
I64 = NDArray[np.int64]


def _to_multipolygons(geoms: NDArray[Any]) -> NDArray[Any]:
    parts, idx = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == 3  # polygons only
    out: NDArray[Any] = shapely.multipolygons(parts[keep], indices=idx[keep])
    return out


@dataclass
class SquareIndex:
    size: float
    ox: float
    oy: float
    nx: int
    ny: int
    state: NDArray[np.int32]  # per square: EMPTY, polygon (single) or set id, or -2 - k for
    # the k-th mixed square, whose candidates are tree positions cand[cand_offsets[k]:...[k+1]]
    set_offsets: I64  # set mode: members of set k are set_members[off[k]:off[k+1]]
    set_members: I64
    tree_ids: I64  # polygon ids of the STRtree geometries
    tree_geoms: NDArray[Any]  # shapely geometries (metric) of those polygons
    n: int  # number of polygons indexed
    single: bool
    cand_offsets: I64
    cand: I64

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.tree_geoms)
        self._full_box_sets: dict[int, np.ndarray] = {}

    # ---------------------------------------------------------------- compile
    @classmethod
    def compile(cls, geoms: NDArray[Any], size: float = 100.0, single: bool = True) -> SquareIndex:
        geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(geoms)
        b = shapely.bounds(geoms)
        b[np.isnan(b).any(axis=1)] = np.nanmin(b, axis=0) if len(b) else 0  # empty geometries
        ox = float(np.floor(np.nanmin(b[:, 0]) / size) * size) if len(geoms) else 0.0
        oy = float(np.floor(np.nanmin(b[:, 1]) / size) * size) if len(geoms) else 0.0
        nx = int(np.ceil((np.nanmax(b[:, 2]) - ox) / size)) + 1 if len(geoms) else 1
        ny = int(np.ceil((np.nanmax(b[:, 3]) - oy) / size)) + 1 if len(geoms) else 1
        ix0 = np.floor((b[:, 0] - ox) / size).astype(np.int64)
        iy0 = np.floor((b[:, 1] - oy) / size).astype(np.int64)
        ix1 = np.maximum(np.ceil((b[:, 2] - ox) / size).astype(np.int64) - 1, ix0)
        iy1 = np.maximum(np.ceil((b[:, 3] - oy) / size).astype(np.int64) - 1, iy0)
        wx, wy = ix1 - ix0 + 1, iy1 - iy0 + 1
        cnt = wx * wy
        poly = np.repeat(np.arange(len(geoms)), cnt)
        k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        ix = np.repeat(ix0, cnt) + k % np.repeat(wx, cnt)
        iy = np.repeat(iy0, cnt) + k // np.repeat(wx, cnt)
        boxes = shapely.box(ox + ix * size, oy + iy * size,
                            ox + (ix + 1) * size, oy + (iy + 1) * size)
        g = geoms[poly]
        full = shapely.covers(g, boxes)
        part = ~full & shapely.intersects(g, boxes) & ~shapely.touches(g, boxes)
        keep = full | part
        poly, key, full = poly[keep], (iy * nx + ix)[keep], full[keep]
        nsq = nx * ny
        n_part = np.bincount(key[~full], minlength=nsq)
        n_full = np.bincount(key[full], minlength=nsq)
        state = np.full(nsq, EMPTY, dtype=np.int32)
        mixed_sq = n_part > 0
        if single:
            mixed_sq |= n_full > 1
            one = (n_full == 1) & ~mixed_sq
            sel = full & one[key]
            state[key[sel]] = poly[sel]
            offsets, members = np.zeros(1, np.int64), np.zeros(0, np.int64)
        else:
            sel = full & ~mixed_sq[key]
            order = np.lexsort((poly[sel], key[sel]))
            skey, spoly = key[sel][order], poly[sel][order]
            sets: dict[tuple[int, ...], int] = {}
            bounds_ = np.flatnonzero(np.diff(skey)) + 1
            starts = np.r_[0, bounds_] if len(skey) else np.zeros(0, np.int64)
            ends = np.r_[bounds_, len(skey)] if len(skey) else np.zeros(0, np.int64)
            for s, e in zip(starts, ends, strict=True):
                members_ = tuple(int(p) for p in spoly[s:e])
                state[skey[s]] = sets.setdefault(members_, len(sets))
            flat = [m for t in sets for m in t]
            offsets = np.r_[0, np.cumsum([len(t) for t in sets])].astype(np.int64)
            members = np.asarray(flat, dtype=np.int64)
        mixed_keys = np.flatnonzero(mixed_sq)
        ordinal = np.full(nsq, -1, dtype=np.int64)
        ordinal[mixed_keys] = np.arange(len(mixed_keys))
        state[mixed_keys] = (MIXED - np.arange(len(mixed_keys))).astype(np.int32)
        sel = mixed_sq[key]
        tree_ids = np.unique(poly[sel]).astype(np.int64)
        o, local = ordinal[key[sel]], np.searchsorted(tree_ids, poly[sel])
        order = np.lexsort((local, o))
        cand = local[order].astype(np.int64)
        cand_offsets = np.r_[0, np.cumsum(np.bincount(o, minlength=len(mixed_keys)))]
        return cls(size, ox, oy, nx, ny, state, offsets, members, tree_ids, geoms[tree_ids],
                   len(geoms), single, cand_offsets.astype(np.int64), cand)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path, **extra: np.ndarray) -> None:
        mp = _to_multipolygons(self.tree_geoms)
        _, coords, offs = shapely.to_ragged_array(mp) if len(mp) else (None, np.zeros((0, 2)), ())
        arrays = {f"offs{i}": o for i, o in enumerate(offs)}
        np.savez(
            path, meta=np.array([self.size, self.ox, self.oy, self.nx, self.ny, self.n,
                                 int(self.single)], dtype=np.float64),
            state=self.state, set_offsets=self.set_offsets, set_members=self.set_members,
            tree_ids=self.tree_ids, coords=coords, cand_offsets=self.cand_offsets,
            cand=self.cand, **arrays, **extra,
        )

    @classmethod
    def load(cls, path: str | Path) -> tuple[SquareIndex, dict[str, np.ndarray]]:
        z = np.load(path, allow_pickle=False)
        size, ox, oy, nx, ny, n, single = z["meta"]
        offs = tuple(z[f"offs{i}"] for i in range(3) if f"offs{i}" in z)
        if len(z["tree_ids"]):
            geoms = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, z["coords"], offs)
        else:
            geoms = np.zeros(0, dtype=object)
        known = {"meta", "state", "set_offsets", "set_members", "tree_ids", "coords",
                 "offs0", "offs1", "offs2", "cand_offsets", "cand"}
        extra = {k: z[k] for k in z.files if k not in known}
        idx = cls(float(size), float(ox), float(oy), int(nx), int(ny), z["state"],
                  z["set_offsets"], z["set_members"], z["tree_ids"], geoms, int(n), bool(single),
                  z["cand_offsets"], z["cand"])
        return idx, extra

    # ---------------------------------------------------------------- queries
    def _squares(self, x: np.ndarray, y: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        fx, fy = (x - self.ox) / self.size, (y - self.oy) / self.size
        ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        key = np.where(inside, iy * self.nx + ix, 0)
        st = np.where(inside, self.state[key], EMPTY)
        on_edge = inside & ((fx == ix) | (fy == iy))
        return ix, iy, st, on_edge

    def _full_of(self, ix: int, iy: int) -> list[int]:
        if not (0 <= ix < self.nx and 0 <= iy < self.ny):
            return []
        s = int(self.state[iy * self.nx + ix])
        if s < 0:
            return []
        if self.single:
            return [s]
        return [int(m) for m in self.set_members[self.set_offsets[s]:self.set_offsets[s + 1]]]

    def _edge_extra(self, x: float, y: float, ix: int, iy: int) -> list[int]:
        """Full polygons of the neighbouring squares whose closed box holds (x, y)."""
        fx = x - self.ox - ix * self.size == 0
        fy = y - self.oy - iy * self.size == 0
        out: list[int] = []
        for dx in (-1, 0) if fx else (0,):
            for dy in (-1, 0) if fy else (0,):
                out += self._full_of(ix + dx, iy + dy)
        return out

    def _mixed_pairs(self, x: np.ndarray, y: np.ndarray, pts: np.ndarray, st: np.ndarray,
                     engine: str) -> tuple[I64, I64]:
        """(point, polygon) pairs for points ``pts`` lying in mixed squares ``st``."""
        if engine == "strtree":
            p, t = self.tree.query(shapely.points(x[pts], y[pts]), predicate="covered_by")
            return pts[p], self.tree_ids[t]
        o = (MIXED - st).astype(np.int64)
        start = self.cand_offsets[o]
        cnt = self.cand_offsets[o + 1] - start
        rep = np.repeat(pts, cnt)
        k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        cand = self.cand[np.repeat(start, cnt) + k]
        hit = shapely.intersects_xy(self.tree_geoms[cand], x[rep], y[rep])
        return rep[hit], self.tree_ids[cand[hit]]

    def query_pairs(self, x: np.ndarray, y: np.ndarray, engine: str = "squares"
                    ) -> tuple[I64, I64]:
        """All (point, polygon) pairs with the polygon covering the point (boundary counts)."""
        ix, iy, st, on_edge = self._squares(x, y)
        pts, polys = [], []
        full = (st >= 0) & ~on_edge
        fi = np.flatnonzero(full)
        if self.single:
            pts.append(fi)
            polys.append(st[fi].astype(np.int64))
        elif len(fi):
            s = st[fi].astype(np.int64)
            cnt = self.set_offsets[s + 1] - self.set_offsets[s]
            rep = np.repeat(fi, cnt)
            k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            pts.append(rep)
            polys.append(self.set_members[np.repeat(self.set_offsets[s], cnt) + k])
        mixed = np.flatnonzero((st <= MIXED) & ~on_edge)
        if len(mixed):
            p, q = self._mixed_pairs(x, y, mixed, st[mixed], engine)
            pts.append(p)
            polys.append(q)
        edge = np.flatnonzero(on_edge)
        if len(edge) and len(self.tree_ids):
            p, t = self.tree.query(shapely.points(x[edge], y[edge]), predicate="covered_by")
            pts.append(edge[p])
            polys.append(self.tree_ids[t])
        for i in edge:
            extra = self._edge_extra(float(x[i]), float(y[i]), int(ix[i]), int(iy[i]))
            pts.append(np.full(len(extra), i, dtype=np.int64))
            polys.append(np.asarray(extra, dtype=np.int64))
        if not pts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(pts).astype(np.int64), np.concatenate(polys).astype(np.int64)

    def query_single(self, x: np.ndarray, y: np.ndarray, engine: str = "squares") -> I64:
        """For a tiling: the covering polygon of each point (lowest id on ties), or -1."""
        ix, iy, st, on_edge = self._squares(x, y)
        out = np.where((st >= 0) & ~on_edge, st, -1).astype(np.int64)
        slow = np.flatnonzero((st <= MIXED) | on_edge)
        if len(slow):
            p, q = self.query_pairs(x[slow], y[slow], engine)
            best = np.full(len(slow), np.iinfo(np.int64).max)
            np.minimum.at(best, p, q)
            out[slow] = np.where(best == np.iinfo(np.int64).max, -1, best)
        return out

    def nearest(self, x: np.ndarray, y: np.ndarray, max_m: float) -> tuple[I64, np.ndarray]:
        """Nearest polygon within ``max_m`` metres (lowest id on ties), or -1 and inf."""
        n = len(x)
        best_d = np.full(n, np.inf)
        best = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return best, best_d
        if len(self.tree_ids):
            p, t = self.tree.query_nearest(shapely.points(x, y), max_distance=max_m,
                                           return_distance=True, all_matches=True)
            (pi, ti), dist = p, t
            cand = self.tree_ids[ti]
            order = np.lexsort((cand, dist, pi))
            pi, cand, dist = pi[order], cand[order], dist[order]
            first = np.r_[True, pi[1:] != pi[:-1]][: len(pi)]
            best[pi[first]], best_d[pi[first]] = cand[first], dist[first]
        r = int(np.ceil(max_m / self.size))
        fx = (x - self.ox) / self.size
        fy = (y - self.oy) / self.size
        ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                jx, jy = ix + dx, iy + dy
                ok = (jx >= 0) & (jx < self.nx) & (jy >= 0) & (jy < self.ny)
                st = np.where(ok, self.state[np.where(ok, jy * self.nx + jx, 0)], EMPTY)
                has = st >= 0
                if not has.any():
                    continue
                ddx = np.maximum(np.maximum(jx - fx, fx - (jx + 1)), 0) * self.size
                ddy = np.maximum(np.maximum(jy - fy, fy - (jy + 1)), 0) * self.size
                d = np.hypot(ddx, ddy)
                for i in np.flatnonzero(has & (d <= max_m)):
                    for poly in self._full_of(int(jx[i]), int(jy[i])):
                        if (d[i], poly) < (best_d[i], best[i] if best[i] >= 0 else 1 << 62):
                            best_d[i], best[i] = d[i], poly
        return best, best_d
