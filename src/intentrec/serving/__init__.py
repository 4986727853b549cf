"""Getting recommendations out of a trained run: over HTTP (``intentrec serve``) and in batch.

:mod:`~intentrec.serving.index` searches item vectors (exact or HNSW), :mod:`~intentrec.serving.service`
answers one request at a time, :mod:`~intentrec.serving.app` puts it behind FastAPI, and
:mod:`~intentrec.serving.batch` writes recommendations for many users to Parquet.
"""
