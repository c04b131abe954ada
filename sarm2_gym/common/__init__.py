"""Small shared utilities: plots, videos."""
