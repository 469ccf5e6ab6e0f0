"""Measurements as tasks: in this process, or on Dask ``distributed`` (a LocalCluster of N worker
processes, or a running cluster by its scheduler address).  Each task quantizes, compiles and runs
one layer-bit map; results come back in the order asked and are stored in the cache as they
arrive, so a sweep stopped halfway keeps what finished.  The measurements are deterministic, so 1
and N workers give identical tables and frontiers."""

from __future__ import annotations

from typing import Callable, Optional

from .cache import ResultCache
from .tables import Evaluator, Metrics


def _measure_on_worker(ev: Evaluator, layer_bits: dict) -> Metrics:
    return ev.measure(layer_bits)


class Runner:
    """Measures lists of maps through the cache, locally or on a Dask cluster."""

    def __init__(self, ev: Evaluator, cache: Optional[ResultCache] = None, context: str = "",
                 workers: int = 1, scheduler: Optional[str] = None,
                 progress: Optional[Callable[[int], None]] = None) -> None:
        self.ev, self.cache, self.context = ev, cache, context
        self.workers, self.scheduler = workers, scheduler
        self.progress = progress
        self._client = None
        self._cluster = None
        self.measured = 0  # maps measured (not found in the cache)

    def client(self):
        """The Dask client: the given scheduler, else a LocalCluster of ``workers`` processes."""
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.scheduler:
                self._client = Client(self.scheduler)
            else:
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None)
                self._client = Client(self._cluster)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def _lookup(self, layer_bits: dict) -> Optional[Metrics]:
        return self.cache.get(self.context, layer_bits) if self.cache is not None else None

    def _store(self, layer_bits: dict, m: Metrics) -> None:
        self.measured += 1
        if self.cache is not None:
            self.cache.put(self.context, layer_bits, m)
        if self.progress:
            self.progress(1)

    def measure_many(self, maps: list[dict]) -> list[Metrics]:
        """Metrics of every map, in order: cached ones looked up, the rest measured (once each)."""
        results: dict[int, Metrics] = {}
        todo: dict[str, list[int]] = {}
        for i, m in enumerate(maps):
            hit = self._lookup(m)
            if hit is not None:
                results[i] = hit
                if self.progress:
                    self.progress(1)
            else:
                todo.setdefault(repr(sorted(m.items())), []).append(i)
        firsts = [idx[0] for idx in todo.values()]
        if self.workers <= 1 and not self.scheduler:
            for i in firsts:
                results[i] = self.ev.measure(maps[i])
                self._store(maps[i], results[i])
        elif firsts:
            self._on_cluster(maps, firsts, results)
        for idx in todo.values():
            for i in idx[1:]:
                results[i] = results[idx[0]]
        return [results[i] for i in range(len(maps))]

    def _on_cluster(self, maps: list[dict], firsts: list[int], results: dict) -> None:
        from distributed import as_completed

        client = self.client()
        ev = client.scatter(self.ev, broadcast=True)
        futures = {client.submit(_measure_on_worker, ev, maps[i], pure=False): i for i in firsts}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            self._store(maps[i], results[i])

    def measure(self, layer_bits: dict) -> Metrics:
        return self.measure_many([layer_bits])[0]
