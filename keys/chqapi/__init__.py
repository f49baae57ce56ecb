"""The /chqapi/ side: what integrators' programs call with an ApiKey header.

- the ApiKey guard and the handler registry are keys.guard's (the keys app's, which never imports this package);
- views, urls, errors, paths: the routes, which paths are the API's, and JSON answers for every failure;
- handlers: the API types this installation serves itself;
- writer, spool: storing API documents exactly once.
- documents, tasks, worker: asynchronous documents, their task, and the task worker that
  rides out database outages and writes the heartbeat /healthz and status read.
"""
