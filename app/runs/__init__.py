"""Training runs: a manager of worker processes (`manager`), their SQLite history (`store`,
`history`), live viewers (`stream`), and what a worker runs (`spec`, `worker`)."""
