"""A student's own datasets: rows (store), files, and the service the routes use."""
