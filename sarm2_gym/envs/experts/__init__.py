"""One scripted expert per benchmark task."""
