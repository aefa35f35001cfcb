"""The run wing: the session (model and sampler for a whole run), the task loop, typed task records,
the run dir, the time budget, shards and worker processes."""
