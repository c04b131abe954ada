"""One module per benchmark task."""
