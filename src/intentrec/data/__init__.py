"""Data: readers -> Dataset (Parquet + card) -> split -> sequences."""
